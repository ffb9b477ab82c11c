"""An HTTPS backend: `openssl s_server -WWW` (a real TLS server that serves files for GET) with a
self-signed certificate for 127.0.0.1. Granary must verify the certificate: trusted through
--backend-ca-file it works; untrusted, or for another host name, the request fails without a byte
of the backend's content reaching the client."""
import os
import socket
import subprocess
import tempfile
import time
import unittest

from botocore.exceptions import ClientError

import harness

tmp = server = port = None


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def make_cert(name, san):
    key, crt = os.path.join(tmp, name + ".key"), os.path.join(tmp, name + ".pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt,
                    "-days", "2", "-subj", "/CN=granary-test", "-addext", "subjectAltName=" + san],
                   check=True, capture_output=True)
    return key, crt


def setUpModule():
    global tmp, server, port
    tmp = tempfile.mkdtemp(prefix="granary-tls-")
    os.makedirs(os.path.join(tmp, "www", "tls-bucket"))
    with open(os.path.join(tmp, "www", "tls-bucket", "hello.txt"), "wb") as f:
        f.write(b"served over TLS")
    key, crt = make_cert("ip", "IP:127.0.0.1")
    make_cert("other", "DNS:not-this-host.example")
    port = free_port()
    server = subprocess.Popen(["openssl", "s_server", "-accept", "127.0.0.1:%d" % port, "-key", key, "-cert", crt,
                               "-WWW", "-quiet"], cwd=os.path.join(tmp, "www"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)


def tearDownModule():
    server.kill()
    server.wait()


def through(extra):
    g = harness.Granary("https://127.0.0.1:%d" % port, extra=["--backend-max-retries", "0"] + extra)
    return g, harness.boto3_client(g.url)


class Tls(unittest.TestCase):
    def test_trusted_through_ca_file(self):
        g, s3 = through(["--backend-ca-file", os.path.join(tmp, "ip.pem")])
        try:
            self.assertEqual(s3.get_object(Bucket="tls-bucket", Key="hello.txt")["Body"].read(), b"served over TLS")
        finally:
            g.stop()

    def test_untrusted_certificate_is_refused(self):
        g, s3 = through([])  # the system trust store does not know this self-signed certificate
        try:
            with self.assertRaises(ClientError) as e:
                s3.get_object(Bucket="tls-bucket", Key="hello.txt")
            self.assertEqual(harness.error_code(e.exception), ("ServiceUnavailable", 503))
            self.assertIn("certificate verify failed", g.log_text())
        finally:
            g.stop()

    def test_certificate_for_another_host_is_refused(self):
        g, s3 = through(["--backend-ca-file", os.path.join(tmp, "other.pem")])
        try:
            with self.assertRaises(ClientError) as e:
                s3.get_object(Bucket="tls-bucket", Key="hello.txt")
            self.assertEqual(harness.error_code(e.exception)[1], 503)
        finally:
            g.stop()

    def test_missing_ca_file_is_a_startup_error(self):
        p = subprocess.run([harness.GRANARY, "--listen", "127.0.0.1:0", "--backend-endpoint",
                            "https://127.0.0.1:%d" % port, "--backend-access-key", "a", "--backend-secret-key", "b",
                            "--client-key", "c:d", "--backend-ca-file", "/nonexistent.pem"],
                           capture_output=True, text=True, timeout=20)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("cannot start", p.stderr)


if __name__ == "__main__":
    unittest.main()

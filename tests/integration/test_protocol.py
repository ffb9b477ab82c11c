"""Bad input and failures through the whole stack: malformed HTTP, header limits, unknown methods, a
backend that dies (s3rver exits on some malformed requests) or stops answering, backend error documents
passed through unchanged, keep-alive, and a graceful stop with a request in flight."""
import http.client
import socket
import threading
import time
import unittest

from botocore.exceptions import ClientError

import harness

origin = granary = s3 = None
BUCKET = "protocol-bucket"


def setUpModule():
    global origin, granary, s3
    origin = harness.Origin()
    granary = harness.Granary(origin.url, extra=["--read-timeout", "2s", "--backend-connect-timeout", "2s",
                                                 "--backend-max-retries", "2"])
    s3 = harness.boto3_client(granary.url)
    s3.create_bucket(Bucket=BUCKET)


def tearDownModule():
    granary.stop()
    origin.stop()


def send_raw(data, port=None, timeout=10):
    s = socket.create_connection(("127.0.0.1", port or granary.port), timeout=timeout)
    s.sendall(data)
    chunks = []
    try:
        while True:
            c = s.recv(65536)
            if not c:
                break
            chunks.append(c)
    except socket.timeout:
        pass
    s.close()
    return b"".join(chunks)


class Base(unittest.TestCase):
    def setUp(self):
        origin.ensure_alive()  # s3rver exits on some requests; later tests get a fresh one


class MalformedInput(Base):
    def assertS3Error(self, resp, status, code):
        self.assertTrue(resp.startswith(b"HTTP/1.1 %d" % status), resp[:200])
        self.assertIn(b"<Code>" + code + b"</Code>", resp)
        self.assertIn(b"x-amz-request-id", resp.lower())

    def test_garbage_request_line(self):
        resp = send_raw(b"NOT HTTP AT ALL\r\n\r\n")
        self.assertS3Error(resp, 400, b"BadRequest")
        request_id = resp.split(b"<RequestId>")[1].split(b"</RequestId>")[0].decode()
        self.assertEqual(granary.wait_for_log("access id=%s op=- status=400 error=BadRequest" % request_id), 1)

    def test_header_line_over_8_kib(self):
        req = b"GET /%s/k HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n" % (BUCKET.encode(), b"a" * 9000)
        self.assertS3Error(send_raw(req), 431, b"RequestHeaderSectionTooLarge")

    def test_headers_over_64_kib(self):
        hdrs = b"".join(b"X-H%d: %s\r\n" % (i, b"b" * 1000) for i in range(70))
        self.assertS3Error(send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n" + hdrs + b"\r\n"), 431,
                           b"RequestHeaderSectionTooLarge")

    def test_bad_percent_escape_is_invalid_uri(self):
        self.assertS3Error(send_raw(b"GET /bucket/%zz HTTP/1.1\r\nHost: x\r\n\r\n"), 400, b"InvalidURI")

    def test_unsigned_request_gets_access_denied_xml(self):
        self.assertS3Error(send_raw(b"GET /%s/k HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % BUCKET.encode()),
                           403, b"AccessDenied")

    def test_slow_client_is_cut_off(self):
        t0 = time.time()
        resp = send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n", timeout=10)  # header never finished
        self.assertEqual(resp, b"")
        self.assertLess(time.time() - t0, 8)

    def test_absurd_range_is_416_or_ignored(self):
        s3.put_object(Bucket=BUCKET, Key="small", Body=b"0123456789")
        with self.assertRaises(ClientError) as e:
            s3.get_object(Bucket=BUCKET, Key="small", Range="bytes=99999999999-")
        self.assertEqual(harness.error_code(e.exception), ("InvalidRange", 416))
        r = s3.get_object(Bucket=BUCKET, Key="small", Range="bytes=5-2")  # malformed: whole object, as S3 does
        self.assertEqual(r["Body"].read(), b"0123456789")

    def test_granary_survived_all_of_it(self):
        s3.put_object(Bucket=BUCKET, Key="still-alive", Body=b"yes")
        self.assertEqual(s3.get_object(Bucket=BUCKET, Key="still-alive")["Body"].read(), b"yes")


class BackendBehaviour(Base):
    def test_backend_error_documents_pass_through_unchanged(self):
        direct = harness.boto3_client(origin.url, key=harness.ORIGIN_KEY)
        for call in (lambda c: c.get_object(Bucket=BUCKET, Key="nope"),
                     lambda c: c.list_objects_v2(Bucket="no-such-bucket-x")):
            with self.assertRaises(ClientError) as via:
                call(s3)
            with self.assertRaises(ClientError) as d:
                call(direct)
            self.assertEqual(via.exception.response["Error"], d.exception.response["Error"])
            self.assertEqual(via.exception.response["ResponseMetadata"]["HTTPStatusCode"],
                             d.exception.response["ResponseMetadata"]["HTTPStatusCode"])

    def test_backend_down_gives_503_then_recovers(self):
        s3.put_object(Bucket=BUCKET, Key="before", Body=b"1")
        origin.kill()
        try:
            with self.assertRaises(ClientError) as e:
                s3.get_object(Bucket=BUCKET, Key="before")
            self.assertEqual(harness.error_code(e.exception), ("ServiceUnavailable", 503))
        finally:
            origin.start()
        self.assertEqual(s3.get_object(Bucket=BUCKET, Key="before")["Body"].read(), b"1")

    def test_request_that_crashes_s3rver(self):
        # s3rver exits on a CompleteMultipartUpload naming a part that does not exist. Granary refuses such
        # a Complete itself (InvalidPart) for uploads created through it, so this one is created at the
        # origin directly: Granary has no record of its parts and forwards the Complete.
        up = harness.boto3_client(origin.url, key=harness.ORIGIN_KEY).create_multipart_upload(Bucket=BUCKET, Key="crashy")
        try:
            s3.complete_multipart_upload(Bucket=BUCKET, Key="crashy", UploadId=up["UploadId"],
                                         MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"00"'}]})
        except ClientError as e:
            if harness.ON_RGW:  # RGW answers as S3 does, and its error comes through
                self.assertEqual(harness.error_code(e), ("InvalidPart", 400))
            else:
                self.assertGreaterEqual(harness.error_code(e)[1], 500)  # the backend died mid-request
        origin.ensure_alive()
        s3.put_object(Bucket=BUCKET, Key="after-crash", Body=b"ok")
        self.assertEqual(s3.get_object(Bucket=BUCKET, Key="after-crash")["Body"].read(), b"ok")

    def test_unresponsive_backend_times_out_with_504(self):
        # A listener that accepts and never answers.
        lst = socket.socket()
        lst.bind(("127.0.0.1", 0))
        lst.listen(16)
        port = lst.getsockname()[1]
        g = harness.Granary("http://127.0.0.1:%d" % port, extra=["--backend-read-timeout", "1s",
                                                                 "--backend-max-retries", "1"])
        try:
            c = harness.boto3_client(g.url)
            t0 = time.time()
            with self.assertRaises(ClientError) as e:
                c.head_bucket(Bucket=BUCKET)
            self.assertEqual(harness.error_code(e.exception)[1], 504)
            self.assertLess(time.time() - t0, 10)
        finally:
            g.stop()
            lst.close()


class Connections(Base):
    def test_keep_alive_across_requests(self):
        conn = http.client.HTTPConnection("127.0.0.1", granary.port, timeout=10)
        for _ in range(3):
            conn.request("GET", "/")
            r = conn.getresponse()
            r.read()
            self.assertEqual(r.status, 403)
            self.assertNotEqual(r.getheader("Connection", "").lower(), "close")
        conn.close()

    def test_sighup_reloads_client_keys(self):
        import os
        import signal
        import tempfile
        fd, path = tempfile.mkstemp(suffix=".toml")
        os.close(fd)

        def write(ak, sk):
            with open(path, "w") as f:
                f.write('[backend]\nendpoint = "%s"\naccess_key = "S3RVER"\nsecret_key = "S3RVER"\n'
                        '[[client_keys]]\naccess_key = "%s"\nsecret_key = "%s"\n' % (origin.url, ak, sk))
        write("OLDKEY", "old-secret")
        g = harness.Granary(origin.url, extra=["--config", path], client_keys=())
        try:
            harness.boto3_client(g.url, key=("OLDKEY", "old-secret")).list_buckets()
            write("NEWKEY", "new-secret")
            g.proc.send_signal(signal.SIGHUP)
            self.assertEqual(g.wait_for_log("reloaded 1 client keys"), 1)
            harness.boto3_client(g.url, key=("NEWKEY", "new-secret")).list_buckets()
            with self.assertRaises(ClientError) as e:
                harness.boto3_client(g.url, key=("OLDKEY", "old-secret")).list_buckets()
            self.assertEqual(harness.error_code(e.exception), ("InvalidAccessKeyId", 403))
        finally:
            g.stop()
            os.unlink(path)

    def test_graceful_stop_finishes_in_flight_download(self):
        g = harness.Granary(origin.url)
        data = b"q" * (64 << 20)
        s3.put_object(Bucket=BUCKET, Key="in-flight", Body=data)
        c = harness.boto3_client(g.url)
        body = c.get_object(Bucket=BUCKET, Key="in-flight")["Body"]
        first = body.read(1 << 20)  # the response has started
        g.proc.send_signal(__import__("signal").SIGTERM)
        rest = body.read()
        self.assertEqual(len(first) + len(rest), len(data))
        self.assertEqual(g.proc.wait(timeout=40), 0)  # exits cleanly once the download is done
        self.assertIn("shutting down", g.log_text())


if __name__ == "__main__":
    unittest.main()

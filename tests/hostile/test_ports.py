"""Class 8, one process per port, private files: a second Granary (or any socket, SO_REUSEPORT or not)
cannot share Granary's S3 or admin port, and Granary refuses a port another process holds, saying so;
files holding cached data, write-back spool data, journals and scripts/run's configuration are readable
by their owner only, whatever the umask."""
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import unittest

import hostile
import doubles

origin = None
SOURCE = hostile.harness.SOURCE_DIR


@hostile.guarded(lambda: tearDownModule())
def setUpModule():
    global origin
    origin = hostile.harness.Origin()


def tearDownModule():
    origin.stop()


class Proc:
    """A Granary process started by hand (fixed ports), its output collected."""

    def __init__(self, args, umask=None):
        self.out = b""
        self.lock = threading.Lock()
        pre = (lambda: os.umask(umask)) if umask is not None else None
        self.proc = subprocess.Popen([hostile.harness.GRANARY] + args, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=pre)
        self.pump = threading.Thread(target=self._pump, daemon=True)
        self.pump.start()

    def _pump(self):
        for line in iter(self.proc.stdout.readline, b""):
            with self.lock:
                self.out += line

    def text(self):
        with self.lock:
            return self.out.decode("utf-8", "replace")

    def wait_listening(self, timeout=30):
        ok = hostile.wait_until(lambda: "granary listening on" in self.text() or self.proc.poll() is not None,
                                timeout=timeout)
        if "granary listening on" not in self.text():
            raise AssertionError("granary did not start (exit %s):\n%s" % (self.proc.poll(), self.text()[-3000:]))
        return ok

    def wait_exit(self, timeout):
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self.pump.join(timeout=5)  # the output is all read once the pipe closes, not when the process exits
        return code

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def granary_args(listen, admin, *extra):
    return (["--listen", listen, "--admin-listen", admin, "--threads", "2", "--backend-endpoint", origin.url,
             "--backend-access-key", "S3RVER", "--backend-secret-key", "S3RVER",
             "--client-key", "%s:%s" % hostile.harness.CLIENT_KEY] + list(extra))


def reuseport_socket():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return s


class OneProcessPerPort(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.p, cls.a = hostile.free_port(), hostile.free_port()
        cls.first = Proc(granary_args("127.0.0.1:%d" % cls.p, "127.0.0.1:%d" % cls.a))
        cls.first.wait_listening()

    @classmethod
    def tearDownClass(cls):
        cls.first.stop()

    def assertRefusedToStart(self, proc, address):
        code = proc.wait_exit(15 if hostile.SANITIZED else 8)  # "within a few seconds"
        out = proc.text()
        proc.stop()
        self.assertIsNotNone(code, "a second granary on %s kept running:\n%s" % (address, out[-2000:]))
        self.assertNotEqual(code, 0, out)
        self.assertIn(address, out, "the message does not name the address")
        self.assertRegex(out.lower(), r"another process|already in use|in use",
                         "the message does not say the address is taken")
        self.assertNotIn("granary listening on", out)

    def assertFirstStillServes(self):
        r = hostile.call(self.p, "PUT", "/ports-bucket")
        self.assertIn(r.status, (200, 409), r)
        self.assertIsNone(self.first.proc.poll())

    def test_second_granary_on_the_same_s3_port(self):
        second = Proc(granary_args("127.0.0.1:%d" % self.p, "127.0.0.1:0"))
        self.assertRefusedToStart(second, "127.0.0.1:%d" % self.p)
        self.assertFirstStillServes()

    def test_second_granary_on_the_same_admin_port(self):
        second = Proc(granary_args("127.0.0.1:0", "127.0.0.1:%d" % self.a))
        self.assertRefusedToStart(second, "127.0.0.1:%d" % self.a)
        self.assertFirstStillServes()

    def test_reuseport_socket_cannot_join_granarys_ports(self):
        for port in (self.p, self.a):
            with self.subTest(port=port):
                s = reuseport_socket()
                try:
                    with self.assertRaises(OSError) as e:
                        s.bind(("127.0.0.1", port))
                        s.listen(8)
                    self.assertEqual(e.exception.errno, 98, e.exception)  # EADDRINUSE
                finally:
                    s.close()
        self.assertFirstStillServes()

    def test_granary_refuses_a_port_held_by_a_reuseport_socket(self):
        for which in ("s3", "admin"):
            with self.subTest(port=which):
                s = reuseport_socket()
                s.bind(("127.0.0.1", 0))
                s.listen(8)
                x = s.getsockname()[1]
                try:
                    args = (granary_args("127.0.0.1:%d" % x, "127.0.0.1:0") if which == "s3"
                            else granary_args("127.0.0.1:0", "127.0.0.1:%d" % x))
                    self.assertRefusedToStart(Proc(args), "127.0.0.1:%d" % x)
                finally:
                    s.close()


def modes_under(top):
    """{path: mode} of top and everything below it."""
    out = {top: stat.S_IMODE(os.stat(top).st_mode)}
    for root, dirs, files in os.walk(top):
        for n in dirs + files:
            p = os.path.join(root, n)
            out[p] = stat.S_IMODE(os.lstat(p).st_mode)
    return out


class PrivateFiles(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="granary-modes-")
        self.proxy = doubles.FaultProxy(origin.port)
        self.proxy.set_mode("503")  # write-back uploads keep failing: the spool keeps its data files
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            p.stop()
        self.proxy.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start(self, cache, spool):
        cfg = os.path.join(self.tmp, "granary.toml")
        with open(cfg, "w") as f:
            f.write('[[bucket]]\nname = "spooled"\nwrite_mode = "write-back"\n')
        os.chmod(cfg, 0o600)
        args = ["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--threads", "2", "--config", cfg,
                "--backend-endpoint", self.proxy.url, "--backend-access-key", "S3RVER", "--backend-secret-key",
                "S3RVER", "--backend-max-retries", "0", "--client-key", "%s:%s" % hostile.harness.CLIENT_KEY,
                "--cache-dir", "%s:64MiB" % cache, "--ram-cache", "8MiB", "--chunk-size", "64KiB",
                "--writeback-dir", "%s:64MiB" % spool]
        p = Proc(args, umask=0o022)  # a permissive umask: privacy must not depend on the caller's
        self.procs.append(p)
        p.wait_listening()
        import re
        port = int(re.search(r"granary listening on http://127\.0\.0\.1:(\d+)", p.text()).group(1))
        for i in range(3):
            r = hostile.call(port, "PUT", "/spooled/obj-%d" % i, body=b"spooled bytes %d" % i)
            self.assertEqual(r.status, 200, r)
        return p

    def files_of(self, top):
        m = modes_under(top)
        return [p for p in m if os.path.isfile(p)], m

    def check_private(self, tops, check_dirs=True):
        problems = []
        for top in tops:
            files, modes = self.files_of(top)
            self.assertTrue(files, "nothing was written under %s" % top)
            for p, mode in modes.items():
                if os.path.isdir(p):
                    if check_dirs and mode & 0o077:
                        problems.append("directory %s is %o" % (p, mode))
                elif mode & 0o077:
                    problems.append("file %s is %o" % (p, mode))
        if problems:
            self.fail("\n".join(problems))

    def test_directories_granary_creates_and_their_files_are_private(self):
        cache, spool = os.path.join(self.tmp, "cache"), os.path.join(self.tmp, "spool")
        self.start(cache, spool)
        self.assertTrue(hostile.wait_until(lambda: len(self.files_of(spool)[0]) >= 2, timeout=10),
                        "no spool files: %r" % modes_under(spool))
        self.check_private([cache, spool])

    def test_files_in_existing_open_directories_are_private(self):
        cache, spool = os.path.join(self.tmp, "cache-open"), os.path.join(self.tmp, "spool-open")
        for d in (cache, spool):
            os.mkdir(d)
            os.chmod(d, 0o755)
        self.start(cache, spool)
        self.assertTrue(hostile.wait_until(lambda: len(self.files_of(spool)[0]) >= 2, timeout=10))
        self.check_private([cache, spool], check_dirs=False)

    def test_files_stay_private_across_a_restart(self):
        cache, spool = os.path.join(self.tmp, "cache"), os.path.join(self.tmp, "spool")
        p = self.start(cache, spool)
        p.proc.kill()  # kill -9: the next start recovers the journal and spool
        p.proc.wait()
        self.start(cache, spool)
        self.check_private([cache, spool])


class RunScriptConfig(unittest.TestCase):
    """scripts/run writes .run/granary.toml (client secret, admin token) readable by its owner only.
    It runs in a sandbox: a copy of the script, with stand-ins for the build, node, aws and granary that
    only listen on the ports they are given."""

    STUB_LISTENER = r'''#!/usr/bin/env python3
import re, socket, sys, time
args = sys.argv[1:]
port = None
if "-p" in args:
    port = int(args[args.index("-p") + 1])
elif "--config" in args:
    text = open(args[args.index("--config") + 1]).read()
    port = int(re.search(r'^listen = "127\.0\.0\.1:(\d+)"', text, re.M).group(1))
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(8)
s.settimeout(0.2)
end = time.time() + 30
while time.time() < end:
    try:
        s.accept()[0].close()
    except OSError:
        pass
'''

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="granary-run-")
        os.makedirs(os.path.join(self.tmp, "scripts"))
        os.makedirs(os.path.join(self.tmp, "build"))
        os.makedirs(os.path.join(self.tmp, "bin"))
        shutil.copy(os.path.join(SOURCE, "scripts", "run"), os.path.join(self.tmp, "scripts", "run"))
        self.write("scripts/deps", "#!/bin/sh\nexit 0\n")
        self.write("scripts/build", "#!/bin/sh\nexit 0\n")
        self.write("bin/aws", "#!/bin/sh\nexit 0\n")
        self.write("bin/node", self.STUB_LISTENER)
        self.write("build/granary", self.STUB_LISTENER)

    def write(self, rel, text):
        p = os.path.join(self.tmp, rel)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, 0o755)

    def tearDown(self):
        env = dict(os.environ, PATH=os.path.join(self.tmp, "bin") + ":" + os.environ.get("PATH", ""))
        subprocess.run(["bash", os.path.join(self.tmp, "scripts", "run"), "stop"], cwd=self.tmp, env=env,
                       capture_output=True, timeout=30)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_config_and_token_are_private(self):
        env = dict(os.environ, PATH=os.path.join(self.tmp, "bin") + ":" + os.environ.get("PATH", ""),
                   GRANARY_PORT=str(hostile.free_port()), ORIGIN_PORT=str(hostile.free_port()),
                   GRANARY_ADMIN_PORT=str(hostile.free_port()), GRANARY_SECRET_KEY="run-secret-xyz")
        p = subprocess.run(["bash", os.path.join(self.tmp, "scripts", "run")], cwd=self.tmp, env=env,
                           capture_output=True, text=True, timeout=60, preexec_fn=lambda: os.umask(0o022))
        cfg = os.path.join(self.tmp, ".run", "granary.toml")
        self.assertTrue(os.path.exists(cfg), "scripts/run wrote no config:\n%s\n%s" % (p.stdout, p.stderr))
        with open(cfg) as f:
            self.assertIn("run-secret-xyz", f.read(), "the sandbox's config is not the one holding the secret")
        for name in ("granary.toml", "admin-token"):
            mode = stat.S_IMODE(os.stat(os.path.join(self.tmp, ".run", name)).st_mode)
            self.assertEqual(mode & 0o077, 0, ".run/%s is %o" % (name, mode))


if __name__ == "__main__":
    unittest.main()

"""Integration harness: a supervised origin (s3rver, or Ceph RGW with GRANARY_ORIGIN=rgw), Granary processes in
front of it, and real clients.

Everything binds 127.0.0.1 on ports the kernel picks. Works on Debian's python3 (boto3 1.26) and on the
image's current Python (boto3 1.43); the aws CLI binary is chosen by run_suite.py (--aws).
"""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

SOURCE_DIR = os.environ.get("GRANARY_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
GRANARY = os.environ.get("GRANARY_BIN", os.path.join(SOURCE_DIR, "build", "granary"))
AWS = os.environ.get("GRANARY_AWS", shutil.which("aws") or "aws")
# Which origin Origin() starts: "s3rver" (checks no signature) or "rgw" (Ceph RGW via scripts/rgw: checks SigV4).
ORIGIN_KIND = os.environ.get("GRANARY_ORIGIN", "s3rver")
ON_RGW = ORIGIN_KIND == "rgw"
S3RVER_KEY = ("S3RVER", "S3RVER")  # s3rver accepts any signature
RGW_KEY = ("RGWTESTERACCESSKEY0", "rgw-tester-secret/key+0")  # scripts/rgw's user `tester`
ORIGIN_KEY = RGW_KEY if ON_RGW else S3RVER_KEY  # what Granary signs with, and direct clients use
CLIENT_KEY = ("GRANARYTESTAK", "granary-test-secret/with+chars")


def _wait_for_line(proc, pattern, timeout, log_path):
    """Reads proc's stdout until `pattern` matches; tees everything into log_path."""
    deadline = time.time() + timeout
    found = {}
    done = threading.Event()

    def pump():
        with open(log_path, "ab", buffering=0) as log:
            for raw in iter(proc.stdout.readline, b""):
                log.write(raw)
                if not done.is_set():
                    m = re.search(pattern, raw.decode("utf-8", "replace"))
                    if m:
                        found["m"] = m
                        done.set()
        done.set()

    threading.Thread(target=pump, daemon=True).start()
    done.wait(max(0.0, deadline - time.time()))
    if "m" not in found:
        proc.kill()
        with open(log_path, "rb") as f:
            tail = f.read()[-3000:].decode("utf-8", "replace")
        raise RuntimeError("process did not print %r in %ss; log tail:\n%s" % (pattern, timeout, tail))
    return found["m"]


def s3rver_only(reason):
    """Skips a test (or class) on RGW: it relies on something only s3rver does (`reason`)."""
    import unittest
    return unittest.skipIf(ON_RGW, "s3rver only: " + reason)


def Origin(key=None, large=False):
    """The origin the suites run against (GRANARY_ORIGIN): S3rverOrigin or RgwOrigin, one interface.
    large: the suite stores hundreds of MiB (RGW then keeps them on disk, bluestore, not in RAM)."""
    return RgwOrigin(key, large) if ON_RGW else S3rverOrigin(key)


class S3rverOrigin:
    """s3rver on 127.0.0.1:<ephemeral>, restarted on the same port and data directory if it dies
    (it exits on some malformed requests)."""

    def __init__(self, key=None):
        """key: (access key, secret) the origin accepts instead of ORIGIN_KEY (tests/integration/origin.js)."""
        self.dir = tempfile.mkdtemp(prefix="granary-origin-")
        self.key = key or ORIGIN_KEY
        self.custom_key = key is not None
        self.port = 0
        self.proc = None
        self.log = os.path.join(self.dir, "s3rver.log")
        self.start()

    def start(self):
        js = os.path.join(SOURCE_DIR, "node_modules", "s3rver", "bin", "s3rver.js")
        pre = [js]
        if self.custom_key:
            pre = [os.path.join(SOURCE_DIR, "tests", "integration", "origin.js"), self.key[0], self.key[1]]
        self.proc = subprocess.Popen(
            ["node", "--openssl-legacy-provider"] + pre + ["-d", os.path.join(self.dir, "data"), "-a", "127.0.0.1",
             "-p", str(self.port), "--no-vhost-buckets", "--silent"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        m = _wait_for_line(self.proc, r"listening on 127\.0\.0\.1:(\d+)", 30, self.log)
        self.port = int(m.group(1))

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def alive(self):
        return self.proc.poll() is None

    def ensure_alive(self):
        if not self.alive():
            self.start()

    def kill(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait()

    def stop(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class _RgwCluster:
    """One scripts/rgw cluster per suite process, shared by the RgwOrigins alive at the same time (a cold start
    costs seconds); stopped and deleted when the last of them stops, or when this process exits."""
    current = None
    SCRIPT = os.path.join(SOURCE_DIR, "scripts", "rgw")

    def __init__(self, large):
        self.dir = tempfile.mkdtemp(prefix="granary-rgw-")
        self.users = 0
        self.refs = 0
        # RGW_OWNER_PID: scripts/rgw stops the daemons should this process be killed (a ctest timeout).
        env = dict(os.environ, RGW_OWNER_PID=str(os.getpid()))
        if large:  # memstore held 1.3 GiB for test_large's 3 x 200 MiB; bluestore 0.46 GiB (and 9 s more)
            env["OBJECTSTORE"] = "bluestore"
        p = subprocess.run([self.SCRIPT, "start", self.dir], capture_output=True, text=True, timeout=180, env=env)
        if p.returncode != 0:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise RuntimeError("scripts/rgw start failed (%d):\n%s\n%s" % (p.returncode, p.stdout, p.stderr))
        out = dict(line.split("=", 1) for line in p.stdout.splitlines() if "=" in line)
        self.url = out["RGW_ENDPOINT"]
        self.port = int(self.url.rsplit(":", 1)[1])
        assert (out["RGW_ACCESS_KEY"], out["RGW_SECRET_KEY"]) == RGW_KEY, "scripts/rgw's tester keys changed"

    def rgw(self, *args, check=True):
        p = subprocess.run([self.SCRIPT, args[0], self.dir] + list(args[1:]), capture_output=True, text=True,
                           timeout=120)
        if check and p.returncode != 0:
            raise RuntimeError("scripts/rgw %s failed (%d):\n%s" % (args[0], p.returncode, p.stderr))
        return p

    @classmethod
    def acquire(cls, large):
        if cls.current is None:
            cls.current = _RgwCluster(large)
            import atexit
            atexit.register(cls.current.shutdown)
        cls.current.refs += 1
        return cls.current

    def release(self):
        self.refs -= 1
        if self.refs == 0:
            self.shutdown()

    def shutdown(self):
        if _RgwCluster.current is self:
            _RgwCluster.current = None
            self.rgw("stop", check=False)
            shutil.rmtree(self.dir, ignore_errors=True)


class RgwOrigin:
    """Ceph RGW (scripts/rgw): the same interface as S3rverOrigin. Without a key it is the user `tester`
    (ORIGIN_KEY); with one, a user of its own in a tenant of its own, so its buckets are apart from every other
    origin's. kill()/start() stop and restart radosgw (mon and OSD stay up, the objects too)."""

    def __init__(self, key=None, large=False):
        self.cluster = _RgwCluster.acquire(large)
        self.key = key or ORIGIN_KEY
        self.uid = None
        if key is not None:
            self.cluster.users += 1
            self.uid = "origin%d$user" % self.cluster.users
            self.cluster.rgw("user", self.uid, key[0], key[1])
        self.port = self.cluster.port
        self.log = os.path.join(self.cluster.dir, "log", "client.rgw.a.log")

    @property
    def url(self):
        return self.cluster.url

    def _answers(self):
        import socket
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def alive(self):
        return self._answers()

    def start(self):
        self.cluster.rgw("gw-start")

    def ensure_alive(self):
        # radosgw's restart loop brings it back within a second or two of a crash.
        deadline = time.time() + 10
        while not self._answers():
            if time.time() > deadline:
                self.start()
                return
            time.sleep(0.1)

    def kill(self):
        self.cluster.rgw("gw-stop")

    def stop(self):
        if self.cluster is None:
            return
        if self.uid and self.cluster.refs > 1:  # the access key must be free for a later origin
            subprocess.run(["radosgw-admin", "-c", os.path.join(self.cluster.dir, "ceph.conf"), "user", "rm",
                            "--uid", self.uid, "--purge-data"], capture_output=True, timeout=60)
        self.cluster.release()
        self.cluster = None


STARTED = []  # every Granary started in this process, for the failure report


class Granary:
    def __init__(self, backend_url=None, extra=(), client_keys=(CLIENT_KEY,), backend_key=ORIGIN_KEY, threads=2,
                 config=None):
        """backend_url: the default backend (flags); config: TOML text written to a file for --config
        (backends and buckets), flags still applied over it."""
        fd, self.log = tempfile.mkstemp(prefix="granary-", suffix=".log")
        os.close(fd)
        args = [GRANARY, "--listen", "127.0.0.1:0", "--threads", str(threads)]
        if config is not None:
            fd, self.config = tempfile.mkstemp(prefix="granary-", suffix=".toml")
            with os.fdopen(fd, "w") as f:
                f.write(config)
            args += ["--config", self.config]
        if backend_url is not None:
            args += ["--backend-endpoint", backend_url, "--backend-access-key", backend_key[0],
                     "--backend-secret-key", backend_key[1]]
        for ak, sk in client_keys:
            args += ["--client-key", "%s:%s" % (ak, sk)]
        args += list(extra)
        if "--admin-listen" not in args:
            args += ["--admin-listen", "127.0.0.1:0"]  # never the default 127.0.0.1:9001: tests run in parallel
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        m = _wait_for_line(self.proc, r"granary listening on http://127\.0\.0\.1:(\d+)", 30, self.log)
        self.port = int(m.group(1))
        STARTED.append(self)

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def admin_url(self):
        """The admin endpoint's base URL (start Granary with --admin-listen 127.0.0.1:0)."""
        self.wait_for_log("granary admin on http://")
        m = re.search(r"granary admin on http://127\.0\.0\.1:(\d+)/metrics", self.log_text())
        return "http://127.0.0.1:%s" % m.group(1)

    def metrics(self, token=None):
        """The admin endpoint's /metrics as {"name{labels}": value}."""
        import urllib.request
        req = urllib.request.Request(self.admin_url() + "/metrics")
        if token:
            req.add_header("Authorization", "Bearer " + token)
        with urllib.request.urlopen(req, timeout=10) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def admin(self, *args, token=None, check=True, timeout=300):
        """Runs `granary admin ARGS --admin URL [--token T]`; returns CompletedProcess (text)."""
        cmd = [GRANARY, "admin", "--admin", self.admin_url()] + (["--token", token] if token else []) + list(args)
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError("granary admin %s failed (%d):\n%s\n%s" % (" ".join(args), p.returncode, p.stdout, p.stderr))
        return p

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def log_text(self):
        with open(self.log, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_for_log(self, text, count=1, timeout=5.0):
        """Waits until `text` appears `count` times in the log; returns the count seen."""
        deadline = time.time() + timeout
        while True:
            n = self.log_text().count(text)
            if n >= count or time.time() > deadline:
                return n
            time.sleep(0.05)

    def stop(self, expect_clean=True):
        """SIGTERM and wait; returns the exit code (a crash or sanitizer report fails the caller)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("granary did not stop within 40s of SIGTERM")
        time.sleep(0.1)  # let the log pump drain
        code = self.proc.returncode
        if expect_clean and code != 0:
            raise AssertionError("granary exited with %s; log tail:\n%s" % (code, self.log_text()[-4000:]))
        broken = [line for line in self.log_text().splitlines() if "response framing:" in line]
        if expect_clean and broken:  # a handler broke its own Content-Length
            raise AssertionError("granary wrote a body of another length than declared:\n%s" % "\n".join(broken))
        return code


def boto3_client(endpoint, key=CLIENT_KEY, addressing="path", **cfg):
    import boto3
    from botocore.config import Config
    return boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id=key[0], aws_secret_access_key=key[1],
        region_name="us-east-1",
        config=Config(s3={"addressing_style": addressing}, retries={"max_attempts": 1, "mode": "standard"},
                      connect_timeout=10, read_timeout=120, **cfg))


def aws_env(key=CLIENT_KEY):
    env = dict(os.environ)
    env.update({"AWS_ACCESS_KEY_ID": key[0], "AWS_SECRET_ACCESS_KEY": key[1], "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
                "AWS_EC2_METADATA_DISABLED": "true", "AWS_PAGER": "", "AWS_MAX_ATTEMPTS": "1"})
    env.pop("AWS_SESSION_TOKEN", None)
    env.pop("AWS_PROFILE", None)
    return env


def aws(endpoint, *args, key=CLIENT_KEY, check=True, timeout=600):
    """Runs the aws CLI against `endpoint`; returns CompletedProcess (text)."""
    args = list(args)
    if len(args) > 1 and args[0] == "s3" and args[1] in ("cp", "mv", "sync", "rm"):
        args.insert(2, "--no-progress")
    p = subprocess.run([AWS, "--endpoint-url", endpoint] + args, env=aws_env(key), capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("aws %s failed (%d):\n%s\n%s" % (" ".join(args), p.returncode, p.stdout, p.stderr))
    return p


def file_digest(path, algorithm="sha256"):
    """Hex digest of a file, read in 1 MiB blocks."""
    import hashlib
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def error_code(exc):
    """The S3 error code and HTTP status of a botocore ClientError."""
    return exc.response["Error"]["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"]


class CountingProxy:
    """A TCP relay in front of the origin that records every request line (method, path, Range header)
    Granary sends it: how the tests count what reached the origin. Request bodies with Content-Length are
    relayed; responses are relayed untouched, their bytes (headers included) counted in `bytes`."""

    def __init__(self, origin_port):
        import socket
        self.origin_port = origin_port
        self.requests = []
        self.bytes = 0
        self.lock = threading.Lock()
        self.held = None  # (method, path) whose requests wait for `released` before they are relayed
        self.released = threading.Event()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def hold(self, method, path):
        """Requests `method path` (query ignored) wait, counted, until release()."""
        self.released.clear()
        self.held = (method, path)

    def release(self):
        self.held = None
        self.released.set()

    def reset(self):
        with self.lock:
            self.requests = []
            self.bytes = 0

    def count(self, method=None, path=None):
        with self.lock:
            return sum(1 for m, p, r in self.requests if (method is None or m == method) and (path is None or p == path))

    def ranges(self, path):
        with self.lock:
            return [r for m, p, r in self.requests if m == "GET" and p == path]

    def _accept(self):
        import socket
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                o = socket.create_connection(("127.0.0.1", self.origin_port))
            except OSError:
                c.close()
                continue
            threading.Thread(target=self._upstream, args=(c, o), daemon=True).start()
            threading.Thread(target=self._downstream, args=(o, c), daemon=True).start()

    @staticmethod
    def _close(*socks):
        import socket
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _downstream(self, o, c):
        try:
            while True:
                b = o.recv(1 << 16)
                if not b:
                    break
                with self.lock:
                    self.bytes += len(b)
                c.sendall(b)
        except OSError:
            pass
        self._close(o, c)

    def _upstream(self, c, o):
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    b = c.recv(1 << 16)
                    if not b:
                        raise EOFError
                    buf += b
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                method, target = lines[0].split(" ")[:2]
                headers = {}
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    headers[k.strip().lower()] = v.strip()
                with self.lock:
                    self.requests.append((method, target.split("?")[0], headers.get("range")))
                if self.held == (method, target.split("?")[0]):
                    self.released.wait(60)
                o.sendall(head + b"\r\n\r\n")
                left = int(headers.get("content-length", "0"))
                while left > 0:
                    if not buf:
                        buf = c.recv(min(left, 1 << 16))
                        if not buf:
                            raise EOFError
                    part, buf = buf[:left], buf[left:]
                    o.sendall(part)
                    left -= len(part)
        except (EOFError, OSError, ValueError):
            pass
        self._close(c, o)

    def stop(self):
        self.sock.close()

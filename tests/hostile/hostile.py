"""Shared pieces of the hostile suites: a raw HTTP/1.1 client over plain sockets (every read bounded by a
deadline, responses parsed by hand so that malformed framing is seen as it is), request signing with
tests/integration/sigv4.py, and small helpers around tests/integration/harness.py.

Nothing here trusts the server: a response is read by its own framing, what follows it on the connection
is collected, and a connection that neither answers nor closes is reported as such, never waited on
forever."""
import hashlib
import os
import re
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(1, os.path.join(HERE, "..", "integration"))

import harness  # noqa: E402
import sigv4  # noqa: E402

AK, SK = harness.CLIENT_KEY
SANITIZED = bool(os.environ.get("GRANARY_SANITIZED"))
SLOW = 4 if SANITIZED else 1  # time allowances scale by this under ASan/UBSan
EMPTY_SHA256 = sigv4.EMPTY_SHA256


class NoResponse(AssertionError):
    """The server sent no (complete) status line and header before the deadline or closed."""


class Response:
    def __init__(self):
        self.version = self.reason = ""
        self.status = 0
        self.headers = []  # (name as sent, value), in order
        self.head = b""  # the raw status line and header section
        self.body = b""
        self.complete = True  # False: the connection ended (or stalled) before the framing's end
        self.stalled = False  # True: neither the rest of the body nor a close came before the deadline
        self.framing = ""  # "length", "chunked", "close" or "none"

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def xml(self, tag):
        """The text of the first <tag> element of the body (None when absent)."""
        m = re.search(rb"<" + tag.encode() + rb">(.*?)</" + tag.encode() + rb">", self.body, re.S)
        return m.group(1).decode("utf-8", "replace") if m else None

    @property
    def code(self):
        return self.xml("Code")

    def __repr__(self):
        return "<Response %d %s code=%s body=%r>" % (self.status, self.reason, self.code, self.body[:300])


class Conn:
    """One client connection. Reads are bounded by `timeout` seconds each."""

    def __init__(self, port, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.timeout = timeout
        self.buf = b""
        self.eof = False
        self.reset = False
        self.send_error = None

    def send(self, data):
        try:
            self.sock.sendall(data)
        except OSError as e:  # the server may refuse and close before taking everything: that is its right
            self.send_error = e

    def send_in_background(self, pieces):
        """Sends an iterable of byte strings from a thread (large hostile bodies), stopping quietly when
        the server closes. Returns the thread."""
        def run():
            try:
                for p in pieces:
                    self.sock.sendall(p)
            except OSError as e:
                self.send_error = e
        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t

    def _fill(self, deadline):
        """Reads more into buf; False at EOF/reset or when the deadline passed."""
        if self.eof:
            return False
        left = deadline - time.time()
        if left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            b = self.sock.recv(1 << 16)
        except socket.timeout:
            return False
        except ConnectionResetError:
            self.eof = self.reset = True
            return False
        except OSError:
            self.eof = True
            return False
        if not b:
            self.eof = True
            return False
        self.buf += b
        return True

    def _line(self, deadline):
        while b"\r\n" not in self.buf:
            if not self._fill(deadline):
                return None
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def response(self, head=False, timeout=None):
        """Reads one final response (1xx interim responses skipped). head: the request was a HEAD."""
        deadline = time.time() + (timeout or self.timeout)
        while True:
            while b"\r\n\r\n" not in self.buf:
                if not self._fill(deadline):
                    raise NoResponse("no complete response header (eof=%s, got %r)" % (self.eof, self.buf[:300]))
            raw, self.buf = self.buf.split(b"\r\n\r\n", 1)
            lines = raw.split(b"\r\n")
            m = re.match(rb"(HTTP/\d\.\d) (\d{3}) ?(.*)", lines[0])
            if not m:
                raise NoResponse("not an HTTP status line: %r" % lines[0][:200])
            r = Response()
            r.head = raw
            r.version, r.status, r.reason = m.group(1).decode(), int(m.group(2)), m.group(3).decode("latin-1")
            for line in lines[1:]:
                k, _, v = line.partition(b":")
                r.headers.append((k.decode("latin-1"), v.strip().decode("latin-1")))
            if 100 <= r.status < 200:
                continue
            break
        te = (r.header("transfer-encoding") or "").lower()
        if head or r.status in (204, 304):
            r.framing = "none"
        elif "chunked" in te:
            r.framing = "chunked"
            self._chunked(r, deadline)
        elif r.header("content-length") is not None:
            r.framing = "length"
            n = int(r.header("content-length"))
            while len(self.buf) < n and self._fill(deadline):
                pass
            r.body, self.buf = self.buf[:n], self.buf[n:]
            if len(r.body) < n:
                r.complete = False
                r.stalled = not self.eof
        else:
            r.framing = "close"
            while self._fill(deadline):
                pass
            r.body, self.buf = self.buf, b""
            r.stalled = not self.eof
            r.complete = self.eof
        return r

    def _chunked(self, r, deadline):
        body = []
        while True:
            line = self._line(deadline)
            if line is None:
                r.complete, r.stalled = False, not self.eof
                break
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while True:  # trailer section
                    t = self._line(deadline)
                    if t is None:
                        r.complete, r.stalled = False, not self.eof
                    if not t:
                        break
                break
            while len(self.buf) < size + 2 and self._fill(deadline):
                pass
            if len(self.buf) < size + 2:
                body.append(self.buf[:size])
                self.buf = b""
                r.complete, r.stalled = False, not self.eof
                break
            body.append(self.buf[:size])
            self.buf = self.buf[size + 2:]
        r.body = b"".join(body)

    def closed(self, timeout=5.0):
        """True when the server closes the connection within `timeout` and sends nothing more; bytes that
        do arrive are kept in self.buf (the caller can see a smuggled response there)."""
        deadline = time.time() + timeout
        while self._fill(deadline):
            pass
        return self.eof and not self.buf

    def rest(self, timeout=3.0):
        """Whatever else arrives before EOF or the deadline."""
        deadline = time.time() + timeout
        while self._fill(deadline):
            pass
        out, self.buf = self.buf, b""
        return out

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def request_bytes(method, target, headers, body=b"", version="HTTP/1.1"):
    """headers: dict or list of (name, value); values may be bytes (sent verbatim)."""
    items = headers.items() if isinstance(headers, dict) else headers
    out = [("%s %s %s\r\n" % (method, target, version)).encode("latin-1")]
    for k, v in items:
        k = k if isinstance(k, bytes) else k.encode("latin-1")
        v = v if isinstance(v, bytes) else str(v).encode("utf-8")
        out.append(k + b": " + v + b"\r\n")
    out.append(b"\r\n")
    return b"".join(out) + body


def host_of(port):
    return "127.0.0.1:%d" % port


def signed(port, method, path, query=(), headers=None, body=b"", payload_hash=None, key=(AK, SK),
           region="us-east-1", service="s3", content_length=None, unsigned=None, host=None):
    """A SigV4 header-signed request for Granary on `port`. path: decoded "/bucket/key". Returns
    (target, headers dict). `unsigned`: headers added after signing."""
    ph = payload_hash or hashlib.sha256(body).hexdigest()
    s = sigv4.sign(method, host or host_of(port), path, list(query), headers or {}, ph, key[0], key[1],
                   region=region, service=service)
    hs = dict(s.headers)
    if content_length is None:
        content_length = len(body) if (body or method in ("PUT", "POST")) else None
    if content_length is not None:
        hs["content-length"] = str(content_length)
    hs.update(unsigned or {})
    return s.path + ("?" + s.query if s.query else ""), hs


def exchange(port, method, target, headers, body=b"", timeout=None, version="HTTP/1.1"):
    """One request on a fresh connection; returns (Response, Conn) with the connection still open."""
    c = Conn(port, timeout=timeout or 15 * SLOW)
    c.send(request_bytes(method, target, headers, body, version))
    return c.response(head=method == "HEAD"), c


def call(port, method, path, query=(), headers=None, body=b"", **kw):
    """A signed request on a fresh connection; returns the Response (connection closed)."""
    timeout = kw.pop("timeout", None)
    target, hs = signed(port, method, path, query, headers, body, **kw)
    r, c = exchange(port, method, target, hs, body, timeout=timeout)
    c.close()
    return r


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def metric(g, name):
    """Sum of every series of metric `name` (any labels) on Granary g's /metrics; 0 when absent."""
    total = 0.0
    for k, v in g.metrics().items():
        if k == name or k.startswith(name + "{"):
            total += v
    return total


def payload(size, seed):
    """Deterministic bytes with no period (a chunk served at the wrong offset shows), differing per seed."""
    return hashlib.shake_256(b"granary-hostile:%d" % seed).digest(size)


def direct_client(origin):
    return harness.boto3_client(origin.url, key=harness.ORIGIN_KEY)


def origin_has(direct, bucket, key):
    from botocore.exceptions import ClientError
    try:
        direct.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError:
        return False


def origin_bytes(direct, bucket, key):
    """The object's bytes at the origin, or None."""
    from botocore.exceptions import ClientError
    try:
        return direct.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError:
        return None


def wait_until(predicate, timeout=10.0, interval=0.05):
    """Polls predicate() until true or the timeout; returns its last value."""
    deadline = time.time() + timeout * SLOW
    while True:
        v = predicate()
        if v or time.time() > deadline:
            return v
        time.sleep(interval)


def guarded(teardown):
    """Decorates setUpModule: when it fails, `teardown` (tearDownModule, which unittest then skips) still
    runs, so that no origin or Granary outlives the suite."""
    def wrap(setup):
        def run():
            try:
                setup()
            except BaseException:
                try:
                    teardown()
                except BaseException:
                    pass
                raise
        return run
    return wrap


class Granaries:
    """Granary processes a test module started, stopped at its end (a crash or sanitizer report among
    them fails the module's last test through tearDownModule)."""

    def __init__(self):
        self.started = []

    def start(self, backend_url, *extra, **kw):
        g = harness.Granary(backend_url, extra=list(extra), **kw)
        self.started.append(g)
        return g

    def stop_all(self):
        errors = []
        for g in self.started:
            try:
                g.stop()
            except AssertionError as e:
                errors.append(str(e))
        self.started = []
        if errors:
            raise AssertionError("\n".join(errors))

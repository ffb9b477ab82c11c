"""Backend doubles for faults s3rver cannot produce.

ScriptedOrigin: an HTTP object store whose objects the test sets directly, ETag included, so it can
report the same ETag for bytes of another size (GET/HEAD with Range, If-Match, If-None-Match; PUT and
DELETE for convenience). It checks no signatures.

FaultProxy: an HTTP-aware relay in front of a real origin (s3rver) that the test switches, per request,
between relaying ("pass"), answering 502/503/403/404 itself, accepting and never answering ("hang"), and
closing the connection at once ("close")."""
import email.utils
import hashlib
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


class ScriptedOrigin:
    def __init__(self):
        self.objects = {}  # (bucket, key) -> (bytes, etag, last-modified)
        self.requests = []  # (method, path, headers dict)
        self.lock = threading.Lock()
        self.ignore_range = False  # answer ranged GETs with the whole object (200), as s3rver sometimes does
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                owner._serve(self, True)

            def do_HEAD(self):
                owner._serve(self, False)

            def do_PUT(self):
                n = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(n)
                b, k = owner._split(self)
                if k:
                    owner.set(b, k, data)
                etag = owner.objects.get((b, k), (None, '""'))[1]
                self.send_response(200)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_DELETE(self):
                b, k = owner._split(self)
                with owner.lock:
                    owner.objects.pop((b, k), None)
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def set(self, bucket, key, data, etag=None):
        """Stores `data` under the given ETag (default: its MD5), keeping Last-Modified stable."""
        with self.lock:
            old = self.objects.get((bucket, key))
            modified = old[2] if old else email.utils.formatdate(time.time() - 3600, usegmt=True)
            self.objects[(bucket, key)] = (data, etag or '"%s"' % hashlib.md5(data).hexdigest(), modified)

    def count(self, method=None):
        with self.lock:
            return sum(1 for r in self.requests if method is None or r[0] == method)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    @staticmethod
    def _split(h):
        parts = unquote(urlsplit(h.path).path).lstrip("/").split("/", 1)
        return parts[0], (parts[1] if len(parts) > 1 else "")

    @staticmethod
    def _error(h, status, code, body):
        xml = ('<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s</Message></Error>'
               % (code, code)).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/xml")
        h.send_header("Content-Length", str(len(xml)))
        h.end_headers()
        if body:
            h.wfile.write(xml)

    def _serve(self, h, body):
        b, k = self._split(h)
        with self.lock:
            self.requests.append((h.command, h.path, dict(h.headers)))
            obj = self.objects.get((b, k))
        if obj is None:
            return self._error(h, 404, "NoSuchKey", body)
        data, etag, modified = obj
        im, inm = h.headers.get("If-Match"), h.headers.get("If-None-Match")
        if im and im.strip() not in (etag, "*"):
            return self._error(h, 412, "PreconditionFailed", body)
        if inm and inm.strip() in (etag, "*"):
            h.send_response(304)
            h.send_header("ETag", etag)
            h.send_header("Last-Modified", modified)
            h.end_headers()
            return
        n = len(data)
        status, first, last = 200, 0, n - 1
        rng = h.headers.get("Range")
        if rng and not self.ignore_range:
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
            if m and (m.group(1) or m.group(2)):
                if m.group(1):
                    first = int(m.group(1))
                    last = min(int(m.group(2)), n - 1) if m.group(2) else n - 1
                else:
                    first, last = max(0, n - int(m.group(2))), n - 1
                if first >= n or first > last:
                    h.send_response(416)
                    xml = b"<Error><Code>InvalidRange</Code></Error>"
                    h.send_header("Content-Range", "bytes */%d" % n)
                    h.send_header("Content-Length", str(len(xml)))
                    h.end_headers()
                    if body:
                        h.wfile.write(xml)
                    return
                status = 206
        h.send_response(status)
        h.send_header("ETag", etag)
        h.send_header("Last-Modified", modified)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Accept-Ranges", "bytes")
        h.send_header("Content-Length", str(last - first + 1 if n else 0))
        if status == 206:
            h.send_header("Content-Range", "bytes %d-%d/%d" % (first, last, n))
        h.end_headers()
        if body and n:
            h.wfile.write(data[first:last + 1])


class FaultProxy:
    """An HTTP/1.1 relay in front of 127.0.0.1:origin_port. `mode` is read once per request:
    "pass" relays it (one origin connection per request), "502"/"503"/"500"/"403"/"404" answer with that
    status and an S3 error document, "hang" reads the request and never answers, "close" closes the
    connection without answering."""

    CODES = {"500": "InternalError", "502": "BadGateway", "503": "ServiceUnavailable", "403": "AccessDenied",
             "404": "NoSuchKey"}

    def __init__(self, origin_port):
        self.origin_port = origin_port
        self.mode = "pass"
        self.requests = []  # (mode, method, target)
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.clients = set()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def set_mode(self, mode):
        with self.lock:
            self.mode = mode

    def count(self, mode=None):
        with self.lock:
            return sum(1 for r in self.requests if mode is None or r[0] == mode)

    def stop(self):
        self.stopping.set()
        self.sock.close()
        with self.lock:
            clients = list(self.clients)
        for c in clients:
            self._close(c)

    @staticmethod
    def _close(s):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()

    def _accept(self):
        while not self.stopping.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.clients.add(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    @staticmethod
    def _read_head(s, buf):
        while b"\r\n\r\n" not in buf:
            b = s.recv(1 << 16)
            if not b:
                raise EOFError
            buf += b
        head, rest = buf.split(b"\r\n\r\n", 1)
        return head, rest

    @staticmethod
    def _headers(head):
        out = {}
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            out[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
        return out

    def _read_body(self, s, buf, hs):
        """Reads a request body (Content-Length or chunked); returns (raw body bytes, leftover)."""
        if "chunked" in hs.get("transfer-encoding", "").lower():
            out = b""
            while True:
                while b"\r\n" not in buf:
                    b = s.recv(1 << 16)
                    if not b:
                        raise EOFError
                    buf += b
                line, buf = buf.split(b"\r\n", 1)
                out += line + b"\r\n"
                size = int(line.split(b";")[0] or b"0", 16)
                if size == 0:
                    while not buf.startswith(b"\r\n") and b"\r\n\r\n" not in buf:
                        b = s.recv(1 << 16)
                        if not b:
                            raise EOFError
                        buf += b
                    end = 2 if buf.startswith(b"\r\n") else buf.index(b"\r\n\r\n") + 4
                    return out + buf[:end], buf[end:]
                while len(buf) < size + 2:
                    b = s.recv(1 << 16)
                    if not b:
                        raise EOFError
                    buf += b
                out += buf[:size + 2]
                buf = buf[size + 2:]
        n = int(hs.get("content-length", "0") or 0)
        while len(buf) < n:
            b = s.recv(1 << 16)
            if not b:
                raise EOFError
            buf += b
        return buf[:n], buf[n:]

    def _serve(self, c):
        buf = b""
        try:
            while not self.stopping.is_set():
                head, buf = self._read_head(c, buf)
                hs = self._headers(head)
                body, buf = self._read_body(c, buf, hs)
                method, target = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")[:2]
                with self.lock:
                    mode = self.mode
                    self.requests.append((mode, method, target))
                if mode == "pass":
                    if not self._relay(c, method, head, body):
                        break
                elif mode == "hang":
                    while not self.stopping.is_set():  # until the client gives up
                        try:
                            c.settimeout(0.5)
                            if not c.recv(1 << 16):
                                break
                        except socket.timeout:
                            continue
                    break
                elif mode == "close":
                    break
                else:
                    xml = ('<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>injected %s'
                           '</Message></Error>' % (self.CODES.get(mode, "InternalError"), mode)).encode()
                    resp = ("HTTP/1.1 %s Injected\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n"
                            "x-amz-request-id: FAULTPROXY\r\n\r\n" % (mode, len(xml))).encode()
                    c.sendall(resp + (b"" if method == "HEAD" else xml))
        except (EOFError, OSError, ValueError):
            pass
        with self.lock:
            self.clients.discard(c)
        self._close(c)

    def _relay(self, c, method, head, body):
        """Sends one request to the origin on a fresh connection and relays its response; False when the
        client connection should close."""
        try:
            o = socket.create_connection(("127.0.0.1", self.origin_port), timeout=60)
        except OSError:
            return False  # origin down: the client sees its connection closed
        try:
            o.sendall(head + b"\r\n\r\n" + body)
            buf = b""
            rhead, buf = self._read_head(o, buf)
            status = int(rhead.split(b" ", 2)[1])
            hs = self._headers(rhead)
            c.sendall(rhead + b"\r\n\r\n")
            if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
                return True
            if "chunked" in hs.get("transfer-encoding", "").lower():
                raw, _ = self._read_body(o, buf, hs)
                c.sendall(raw)
                return True
            if "content-length" in hs:
                n = int(hs["content-length"])
                sent = 0
                while sent < n:
                    if not buf:
                        buf = o.recv(1 << 16)
                        if not buf:
                            return False
                    part, buf = buf[:n - sent], buf[n - sent:]
                    c.sendall(part)
                    sent += len(part)
                return True
            while True:  # delimited by close
                if buf:
                    c.sendall(buf)
                buf = o.recv(1 << 16)
                if not buf:
                    return False
        except (EOFError, OSError, ValueError):
            return False
        finally:
            self._close(o)

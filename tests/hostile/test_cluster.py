"""Hostile peers of a Granary cluster (issue 16). Granary n0 runs with a static membership naming a second
member, "evil", whose peer port is a Python socket server here: a peer that accepts and never answers, or
one that answers an endless body a few bytes at a time. A write through n0 drops the object's metadata on
each key's owner before it is acknowledged; such a peer must cost the client's write at most a timeout or
two, never one per key, and never hold it forever; a chunk read from it has a deadline. HostileEtcd: a fake
etcd v3 gateway answering a listing with JSON that is not an object, or a watch without chunked framing."""
import base64
import hashlib
import http.server
import json
import socket
import threading
import time
import unittest
import urllib.parse

import hostile
from hostile import call

import cluster_harness  # noqa: E402 (tests/integration, on the path hostile sets)

origin = direct = None
granaries = hostile.Granaries()
g = None
evil = None
BUCKET = "cluster-hostile"
READ_TIMEOUT_S = 1


class EvilPeer:
    """A peer port that reads each request's header and then does what `mode` says:
    "stall": nothing (the connection stays open); "endless": 200 with a huge Content-Length, then 64
    bytes every 50 ms until the connection closes; "trickle": a chunk request gets 200 with the right
    Content-Length and the right bytes (self.data), 64 of them every 300 ms."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.mode = "stall"
        self.requests = 0
        self.data = b""
        self.conns = []
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        buf = b""
        try:
            while not self.stopping:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                head, buf = buf.split(b"\r\n\r\n", 1)
                self.requests += 1
                if self.mode in ("trickle", "half", "longer", "garbage-after"):
                    self._trickle(c, head)
                    return
                if self.mode == "stall":
                    while c.recv(65536):
                        pass
                    return
                if self.mode == "chunkext":
                    c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;e=")
                else:
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000\r\n\r\n")
                while not self.stopping:
                    c.sendall(b"x" * 64)
                    time.sleep(0.05)
        except OSError:
            return
        finally:
            c.close()

    def _trickle(self, c, head):
        target = head.split(b" ")[1].decode()
        q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(target).query))
        cs, i, frm = int(q.get("cs", 1)), int(q.get("i", 0)), int(q.get("from", 0))
        chunk = self.data[i * cs:(i + 1) * cs][frm:]
        if self.mode != "trickle":  # the right bytes, then: close at half / a length one more / bytes past it
            declared = len(chunk) + (1 if self.mode == "longer" else 0)
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % declared)
            c.sendall(chunk[:len(chunk) // 2] if self.mode == "half" else chunk)
            if self.mode == "garbage-after":
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nEVIL!" * 3)
            return
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(chunk))
        for at in range(0, len(chunk), 64):
            if self.stopping:
                return
            c.sendall(chunk[at:at + 64])
            time.sleep(0.3)

    def close(self):
        self.stopping = True
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


@hostile.guarded(lambda: tearDownModule())
def setUpModule():
    global origin, direct, g, evil
    origin = hostile.harness.Origin()
    direct = hostile.direct_client(origin)
    direct.create_bucket(Bucket=BUCKET)
    evil = EvilPeer()
    peer_port = hostile.free_port()
    args = cluster_harness.node_args("n0", peer_port=peer_port,
                                     members=["n0=127.0.0.1:%d" % peer_port, "evil=127.0.0.1:%d" % evil.port])
    g = granaries.start(origin.url, *(args + ["--ram-cache", "64MiB", "--chunk-size", "64KiB"]),
                        config=cluster_harness.cluster_config(
                            extra='peer_read_timeout = "%ds"\n' % READ_TIMEOUT_S))


def tearDownModule():
    try:
        granaries.stop_all()
    finally:
        if evil:
            evil.close()
        origin.stop()


def delete_xml(keys):
    return (b'<?xml version="1.0" encoding="UTF-8"?><Delete>' +
            b"".join(b"<Object><Key>%s</Key></Object>" % k for k in keys) + b"<Quiet>false</Quiet></Delete>")


class HostilePeers(unittest.TestCase):
    def delete_many(self, prefix, n=64):
        """DeleteObjects of n keys (about half of them owned by "evil") through n0; (response, seconds)."""
        keys = [b"%s-%03d" % (prefix, i) for i in range(n)]
        for k in keys:
            direct.put_object(Bucket=BUCKET, Key=k.decode(), Body=b"v")
        body = delete_xml(keys)
        md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
        t0 = time.monotonic()
        r = call(g.port, "POST", "/%s" % BUCKET, [("delete", "")], headers={"content-md5": md5}, body=body,
                 timeout=60 * hostile.SLOW)
        return r, time.monotonic() - t0

    def test_stalled_owner_costs_one_timeout_not_one_per_key(self):
        evil.mode = "stall"
        before = evil.requests
        r, took = self.delete_many(b"stall")
        self.assertEqual(r.status, 200, r)
        self.assertGreater(evil.requests, before, "no key of the 64 was owned by the evil peer")
        # Without the fix: one peer_read_timeout per key "evil" owns (about 32 s).
        self.assertLess(took, 4 * READ_TIMEOUT_S * hostile.SLOW + 2, "DeleteObjects took %.1f s" % took)

    def test_endless_chunk_extension_does_not_hold_the_write(self):
        evil.mode = "chunkext"
        before = evil.requests
        r, took = self.delete_many(b"chunkext")
        self.assertEqual(r.status, 200, r)
        self.assertGreater(evil.requests, before, "no key of the 64 was owned by the evil peer")
        self.assertLess(took, 4 * READ_TIMEOUT_S * hostile.SLOW + 2, "DeleteObjects took %.1f s" % took)

    def test_endless_answer_does_not_hold_the_write(self):
        evil.mode = "endless"
        before = evil.requests
        r, took = self.delete_many(b"endless")
        self.assertEqual(r.status, 200, r)
        self.assertGreater(evil.requests, before, "no key of the 64 was owned by the evil peer")
        # Without the fix the invalidation reads the endless body for ever (the client times out).
        self.assertLess(took, 4 * READ_TIMEOUT_S * hostile.SLOW + 2, "DeleteObjects took %.1f s" % took)

    def test_trickling_owner_costs_a_read_no_more_than_a_deadline(self):
        # A peer answering each chunk with the right bytes, 64 every 300 ms (each read well within
        # peer_read_timeout): without a deadline on the whole body a 64 KiB chunk takes 5 minutes.
        data = hostile.payload(4 * 65536 + 1000, 16)
        direct.put_object(Bucket=BUCKET, Key="trickle", Body=data)
        evil.data = data
        evil.mode = "trickle"
        before = evil.requests
        t0 = time.monotonic()
        r = call(g.port, "GET", "/%s/trickle" % BUCKET, timeout=40 * hostile.SLOW)
        took = time.monotonic() - t0
        self.assertEqual(r.status, 200, r)
        self.assertEqual(hashlib.md5(r.body).hexdigest(), hashlib.md5(data).hexdigest(), "not the object's bytes")
        self.assertGreater(evil.requests, before, "no chunk was asked of the evil peer")
        self.assertLess(took, 5 * 2 * READ_TIMEOUT_S * hostile.SLOW + 3, "GET took %.1f s" % took)

    def test_a_peer_that_cuts_lies_about_length_or_sends_extra_costs_no_byte(self):
        # Each answer's bytes are right as far as they go: the reader resumes elsewhere at the byte
        # reached (half), refuses a length other than asked (longer), and never reads what follows a
        # body as another answer (garbage-after): the client gets the object's exact bytes.
        for n, mode in enumerate(("half", "longer", "garbage-after")):
            with self.subTest(mode=mode):
                data = hostile.payload(5 * 65536 + 123, 40 + n)
                key = "lie-%s" % mode
                direct.put_object(Bucket=BUCKET, Key=key, Body=data)
                evil.data = data
                evil.mode = mode
                before = evil.requests
                r = call(g.port, "GET", "/%s/%s" % (BUCKET, key), timeout=30 * hostile.SLOW)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(hashlib.md5(r.body).hexdigest(), hashlib.md5(data).hexdigest())
                self.assertGreater(evil.requests, before, "no chunk was asked of the evil peer")


class FakeEtcd:
    """An etcd v3 JSON gateway that grants leases, takes puts and keepalives, holds watches open, and
    answers its first `bad_ranges` listings with 200 and a JSON body that is not an object; later listings
    hold one record, member n9."""

    def __init__(self, bad_ranges=1, watch_length=False):
        owner = self
        self.bad_ranges = bad_ranges
        self.watch_length = watch_length  # answer watches with a Content-Length, not chunked
        self.members = ["n9"]
        self.ranges = 0
        self.stopping = False

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("content-length", 0)))
                owner.handle(self)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def handle(self, h):
        if h.path == "/v3/watch":
            h.send_response(200)
            if self.watch_length:
                h.send_header("Content-Length", str(1 << 40))
            else:
                h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            while not self.stopping:
                time.sleep(0.1)
            return
        if h.path == "/v3/kv/range":
            self.ranges += 1
            if self.ranges <= self.bad_ranges:
                body = b"[]"
            else:
                kvs = []
                for m in list(self.members):
                    key = "/granary/clusters/%s/members/%s" % (cluster_harness.CLUSTER_NAME, m)
                    rec = json.dumps({"id": m, "address": "127.0.0.1:9", "state": "active"})
                    kvs.append({"key": base64.b64encode(key.encode()).decode(),
                                "value": base64.b64encode(rec.encode()).decode(), "mod_revision": "5", "lease": "0"})
                body = json.dumps({"header": {"revision": str(4 + len(kvs))}, "count": str(len(kvs)),
                                   "kvs": kvs}).encode()
        elif h.path == "/v3/lease/grant":
            body = b'{"header":{"revision":"1"},"ID":"7","TTL":"10"}'
        elif h.path == "/v3/lease/keepalive":
            body = b'{"result":{"header":{"revision":"1"},"ID":"7","TTL":"10"}}'
        else:
            body = b'{"header":{"revision":"1"}}'
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def close(self):
        self.stopping = True
        self.server.shutdown()
        self.server.server_close()


class HostileEtcd(unittest.TestCase):
    def test_a_listing_that_is_not_an_object_does_not_stop_the_membership_thread(self):
        etcd = FakeEtcd(bad_ranges=1)
        try:
            node = cluster_harness.Node("n1", origin.url, etcd=etcd.url)
            granaries.started.append(node)

            def sees_n9():
                return any(m.get("id") == "n9" for m in node.cluster_json().get("members", []))

            self.assertTrue(hostile.wait_until(sees_n9, timeout=15 * hostile.SLOW),
                            "the node never listed etcd again after a bad listing (%d listings)" % etcd.ranges)
            self.assertNotIn("membership thread stopped", node.log_text())
        finally:
            etcd.close()

    def test_a_watch_answer_that_is_not_chunked_is_not_followed_for_ever(self):
        # Events reach the node only as chunks of a chunked body; an answer with a Content-Length (a proxy
        # in the way) was read whole, with no limit and no timeout: the node never saw a change again.
        etcd = FakeEtcd(bad_ranges=0, watch_length=True)
        try:
            node = cluster_harness.Node("n1", origin.url, etcd=etcd.url)
            granaries.started.append(node)
            ids = lambda: {m.get("id") for m in node.cluster_json().get("members", [])}  # noqa: E731
            self.assertTrue(hostile.wait_until(lambda: "n9" in ids(), timeout=15 * hostile.SLOW), ids())
            etcd.members.append("n8")
            self.assertTrue(hostile.wait_until(lambda: "n8" in ids(), timeout=15 * hostile.SLOW),
                            "a change in etcd never reached the node (%d listings)" % etcd.ranges)
        finally:
            etcd.close()


if __name__ == "__main__":
    unittest.main()

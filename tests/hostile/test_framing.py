"""Class 4, HTTP framing (RFC 9112 section 6.3): every ambiguous Transfer-Encoding is refused with an S3
error and the connection closed, so a request hidden in the body (a signed DELETE) is never executed;
"chunked" in any case is chunked; absolute-form targets are routed and signed by their authority; more
than 200 header fields are refused with 431. Runs against a real s3rver origin."""
import unittest

import hostile
import sigv4
from hostile import Conn, exchange, request_bytes, signed

origin = direct = None
granaries = hostile.Granaries()
g = None
BUCKET = "framing-bucket"
READABLE = b"the readable object"


@hostile.guarded(lambda: tearDownModule())
def setUpModule():
    global origin, direct, g
    origin = hostile.harness.Origin()
    direct = hostile.direct_client(origin)
    direct.create_bucket(Bucket=BUCKET)
    direct.put_object(Bucket=BUCKET, Key="readable", Body=READABLE)
    g = granaries.start(origin.url, "--read-timeout", "5s")


def tearDownModule():
    try:
        granaries.stop_all()
    finally:
        origin.stop()


def host():
    return hostile.host_of(g.port)


def smuggled_delete(victim):
    target, hs = signed(g.port, "DELETE", "/%s/%s" % (BUCKET, victim))
    return request_bytes("DELETE", target, hs)


class AmbiguousTransferEncoding(unittest.TestCase):
    """Each refused with one S3 error response, the connection closed, the smuggled DELETE never run."""

    def setUp(self):
        origin.ensure_alive()

    def attack(self, name, te_lines, status=400, code=None, version="HTTP/1.1", content_length=None):
        victim = "victim-" + name
        direct.put_object(Bucket=BUCKET, Key=victim, Body=b"must survive " + name.encode())
        hidden = smuggled_delete(victim)
        body = b"0\r\n\r\n" + hidden
        target, hs = signed(g.port, "GET", "/%s/readable" % BUCKET, payload_hash="UNSIGNED-PAYLOAD")
        head = [(k, v) for k, v in hs.items()]
        for line in te_lines:
            head.append(("Transfer-Encoding", line))
        if content_length is not None:
            head.append(("Content-Length", str(len(body) if content_length == "all" else content_length)))
        c = Conn(g.port, timeout=10 * hostile.SLOW)
        try:
            c.send(request_bytes("GET", target, head, body, version=version))
            r = c.response()
            self.assertEqual(r.status, status, r)
            self.assertIsNotNone(r.code, "no S3 error document: %r" % r)
            self.assertIn("xml", (r.header("content-type") or "").lower())
            if code:
                self.assertEqual(r.code, code, r)
            self.assertNotEqual(r.body, READABLE)
            closed = c.closed(5 * hostile.SLOW)
            self.assertNotIn(b"HTTP/1.", c.buf, "a second response came back: the hidden request was served")
            self.assertTrue(closed, "the connection stayed open after a refused framing")
        finally:
            c.close()
        self.assertEqual(hostile.origin_bytes(direct, BUCKET, victim), b"must survive " + name.encode(),
                         "the smuggled DELETE reached the origin")

    def test_identity(self):
        self.attack("identity", ["identity"])

    def test_xchunked(self):
        self.attack("xchunked", ["xchunked"])

    def test_chunked_then_identity(self):
        self.attack("chunked-identity", ["chunked, identity"])

    def test_chunked_with_parameter(self):
        self.attack("chunked-param", ["chunked;x"])

    def test_chunked_twice(self):
        self.attack("chunked-twice", ["chunked", "chunked"])

    def test_chunked_listed_twice_in_one_line(self):
        self.attack("chunked-chunked", ["chunked, chunked"])

    def test_with_content_length_covering_everything(self):
        self.attack("te-cl-all", ["chunked"], content_length="all")

    def test_with_short_content_length(self):
        self.attack("te-cl-short", ["chunked"], content_length=5)

    def test_chunked_on_http_1_0(self):
        self.attack("http10", ["chunked"], version="HTTP/1.0")

    def test_gzip_chunked_is_not_implemented(self):
        self.attack("gzip-chunked", ["gzip, chunked"], status=501, code="NotImplemented")

    def test_smuggling_without_any_transfer_encoding_is_just_a_body(self):
        # Control: a Content-Length body holding a request is only bytes; the connection stays usable and
        # serves exactly the requests that were sent as requests.
        victim = "victim-control"
        direct.put_object(Bucket=BUCKET, Key=victim, Body=b"keep")
        hidden = smuggled_delete(victim)
        target, hs = signed(g.port, "PUT", "/%s/control-body" % BUCKET, body=hidden)
        c = Conn(g.port)
        try:
            c.send(request_bytes("PUT", target, hs, hidden))
            self.assertEqual(c.response().status, 200)
            t2, h2 = signed(g.port, "GET", "/%s/readable" % BUCKET)
            c.send(request_bytes("GET", t2, h2))
            r = c.response()
            self.assertEqual((r.status, r.body), (200, READABLE))
        finally:
            c.close()
        self.assertEqual(hostile.origin_bytes(direct, BUCKET, victim), b"keep")
        self.assertEqual(hostile.origin_bytes(direct, BUCKET, "control-body"), hidden)


class ChunkedInAnyCase(unittest.TestCase):
    def test_get_with_empty_chunked_body_in_mixed_case_keeps_the_connection(self):
        for te in ("Chunked", "CHUNKED", "cHuNkEd"):
            with self.subTest(te=te):
                c = Conn(g.port)
                try:
                    target, hs = signed(g.port, "GET", "/%s/readable" % BUCKET, payload_hash="UNSIGNED-PAYLOAD")
                    hs["Transfer-Encoding"] = te
                    c.send(request_bytes("GET", target, hs, b"0\r\n\r\n"))
                    r = c.response()
                    self.assertEqual((r.status, r.body), (200, READABLE), r)
                    t2, h2 = signed(g.port, "GET", "/%s/readable" % BUCKET)
                    c.send(request_bytes("GET", t2, h2))
                    r = c.response()
                    self.assertEqual((r.status, r.body), (200, READABLE), r)
                finally:
                    c.close()

    def test_aws_chunked_put_inside_mixed_case_chunked(self):
        data = bytes(range(256)) * 1000
        hdrs = {"content-encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(data))}
        s = sigv4.sign("PUT", host(), "/%s/te-mixed-case" % BUCKET, [], hdrs, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
                       hostile.AK, hostile.SK)
        wire = sigv4.aws_chunked(data, 65536, signed=s)
        outer = b"".join(b"%x\r\n%s\r\n" % (len(wire[i:i + 30000]), wire[i:i + 30000])
                         for i in range(0, len(wire), 30000)) + b"0\r\n\r\n"
        hs = dict(s.headers)
        hs["Transfer-Encoding"] = "Chunked"
        r, c = exchange(g.port, "PUT", s.path, hs, outer)
        c.close()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(hostile.origin_bytes(direct, BUCKET, "te-mixed-case"), data)


class AbsoluteForm(unittest.TestCase):
    def test_absolute_target_matching_the_signed_host(self):
        target, hs = signed(g.port, "GET", "/%s/readable" % BUCKET)
        r, c = exchange(g.port, "GET", "http://%s%s" % (host(), target), hs)
        c.close()
        self.assertEqual((r.status, r.body), (200, READABLE), r)

    def test_authority_replaces_the_host_header(self):
        # Signed for the authority; the Host header says something else: the authority is what counts.
        target, hs = signed(g.port, "GET", "/%s/readable" % BUCKET)
        hs["host"] = "elsewhere.example:1"
        r, c = exchange(g.port, "GET", "http://%s%s" % (host(), target), hs)
        c.close()
        self.assertEqual((r.status, r.body), (200, READABLE), r)

    def test_authority_differing_from_the_signed_host_is_refused(self):
        target, hs = signed(g.port, "GET", "/%s/readable" % BUCKET)
        r, c = exchange(g.port, "GET", "http://localhost:%d%s" % (g.port, target), hs)
        c.close()
        self.assertEqual((r.status, r.code), (403, "SignatureDoesNotMatch"), r)
        self.assertNotEqual(r.body, READABLE)

    def test_delete_with_a_differing_authority_deletes_nothing(self):
        direct.put_object(Bucket=BUCKET, Key="abs-victim", Body=b"stay")
        target, hs = signed(g.port, "DELETE", "/%s/abs-victim" % BUCKET)
        r, c = exchange(g.port, "DELETE", "http://127.0.0.2:%d%s" % (g.port, target), hs)
        c.close()
        self.assertEqual((r.status, r.code), (403, "SignatureDoesNotMatch"), r)
        self.assertEqual(hostile.origin_bytes(direct, BUCKET, "abs-victim"), b"stay")


class HeaderCount(unittest.TestCase):
    def test_more_than_200_fields_is_431(self):
        for n in (201, 500, 3000):
            with self.subTest(fields=n):
                target, hs = signed(g.port, "GET", "/%s/readable" % BUCKET)
                head = list(hs.items()) + [("X-F%d" % i, "v") for i in range(n)]
                r, c = exchange(g.port, "GET", target, head)
                self.assertEqual(r.status, 431, r)
                self.assertNotEqual(r.body, READABLE)
                self.assertTrue(c.closed(5 * hostile.SLOW))
                c.close()

    def test_under_200_fields_is_served(self):
        target, hs = signed(g.port, "GET", "/%s/readable" % BUCKET)
        head = list(hs.items()) + [("X-F%d" % i, "v") for i in range(190)]
        r, c = exchange(g.port, "GET", target, head)
        c.close()
        self.assertEqual((r.status, r.body), (200, READABLE), r)


if __name__ == "__main__":
    unittest.main()


class HeaderSectionsBeastWouldRepair(unittest.TestCase):
    """Beast quietly joins folded lines and counts the request line apart from the fields: a header section
    longer than Granary's own scan must be refused, not handed to Beast to repair."""

    def test_padding_cannot_hide_a_folded_line(self):
        target, hs = signed(g.port, "GET", "/%s/readable" % BUCKET)
        head = [(k, v) for k, v in hs.items()]
        pad = " " * 2000
        head += [("X-P%d" % i, pad + "a") for i in range(34)]  # ~68 KiB raw, under 64 KiB once trimmed
        raw = request_bytes("GET", target + "?" + "q" * 4000 if "?" not in target else target, head)
        raw = raw[:-2] + b"X-A: a\r\n b\r\n\r\n"  # a folded line at the end
        c = Conn(g.port)
        c.send(raw)
        r = c.response()
        self.assertIn(r.status, (400, 431), r)
        self.assertTrue(c.closed(), "the connection stayed open")

    def test_header_section_past_the_limit_is_431(self):
        c = Conn(g.port)
        c.send(b"GET /%s/readable HTTP/1.1\r\nHost: %s\r\n" % (BUCKET.encode(), host().encode()) +
               b"".join(b"X-F%d: %s\r\n" % (i, b"v" * 4000) for i in range(20)))  # 80 KiB, never ended
        r = c.response()
        self.assertEqual(r.status, 431, r)


class TrailersAreNotHeaders(unittest.TestCase):
    """HTTP chunked trailers arrive after the header was checked and signed: a Range there must not shape
    the answer."""

    def test_range_in_a_trailer_is_ignored(self):
        target, hs = signed(g.port, "GET", "/%s/readable" % BUCKET, payload_hash="UNSIGNED-PAYLOAD")
        hs.pop("content-length", None)
        head = [(k, v) for k, v in hs.items()] + [("Transfer-Encoding", "chunked")]
        body = b"0\r\nRange: bytes=0-2\r\n\r\n"
        r, c = exchange(g.port, "GET", target, head, body)
        c.close()
        self.assertEqual((r.status, r.body), (200, READABLE), r)

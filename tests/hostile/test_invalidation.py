"""Class 6, invalidation is complete. Granary runs with a RAM cache and metadata TTL "forever", so only
invalidation can make it notice a change: every way a client can change or delete an object THROUGH
Granary must drop what it cached (DeleteObjects sent chunked, large, with keys spelled through XML
comments, CDATA or character references; browser POST uploads; write operations Granary does not know,
which invalidate the whole bucket), and a DeleteObjects body with a DOCTYPE is refused untouched.
Runs against a real s3rver origin, which is the judge of "the new state"."""
import base64
import hashlib
import unittest
import uuid
import zlib

import hostile
import sigv4
from hostile import call, exchange, signed

origin = direct = None
granaries = hostile.Granaries()
g = None
BUCKET = "inval-bucket"
OTHER = "inval-other"


@hostile.guarded(lambda: tearDownModule())
def setUpModule():
    global origin, direct, g
    origin = hostile.harness.Origin()
    direct = hostile.direct_client(origin)
    direct.create_bucket(Bucket=BUCKET)
    direct.create_bucket(Bucket=OTHER)
    g = granaries.start(origin.url, "--ram-cache", "64MiB", "--chunk-size", "64KiB", "--metadata-ttl", "forever",
                        "--cache-status-header", "true")


def tearDownModule():
    try:
        granaries.stop_all()
    finally:
        origin.stop()


def md5_b64(b):
    return base64.b64encode(hashlib.md5(b).digest()).decode()


def delete_xml(*keys, pad=b""):
    return (b'<?xml version="1.0" encoding="UTF-8"?><Delete>' + pad +
            b"".join(b"<Object><Key>%s</Key></Object>" % k for k in keys) + b"<Quiet>false</Quiet></Delete>")


class Base(unittest.TestCase):
    bucket = BUCKET

    def setUp(self):
        origin.ensure_alive()

    def prime(self, key, data=None, bucket=None):
        """Puts `key` at the origin and reads it through Granary until it is a cache hit."""
        bucket = bucket or self.bucket
        data = data if data is not None else hostile.payload(150_000, hash(key) & 0xffff)
        direct.put_object(Bucket=bucket, Key=key, Body=data)
        seen = []

        def cached():
            r = call(g.port, "GET", "/%s/%s" % (bucket, key))
            self.assertEqual((r.status, r.body), (200, data), r)
            seen.append(r.header("x-granary-cache"))
            return seen[-1] == "hit"
        self.assertTrue(hostile.wait_until(cached, timeout=5),
                        "the object never became a cache hit (%r): the test would prove nothing" % seen)
        return data

    def assertServesOriginState(self, key, bucket=None, expect_deleted=None):
        """The next GET through Granary answers what the origin holds now (404 when it holds nothing)."""
        bucket = bucket or self.bucket
        now = hostile.origin_bytes(direct, bucket, key)
        if expect_deleted is not None:
            self.assertEqual(now is None, expect_deleted,
                             "test premise: the origin %s %r" % ("still has" if now is not None else "lost", key))
        r = call(g.port, "GET", "/%s/%s" % (bucket, key))
        if now is None:
            self.assertEqual(r.status, 404, "deleted at the origin, still served by Granary: %r" % r)
        else:
            self.assertEqual((r.status, len(r.body)), (200, len(now)), r)
            self.assertTrue(r.body == now, "Granary served stale bytes of %r" % key)

    def delete_objects(self, body, chunked=False, mode="UNSIGNED-PAYLOAD", extra=None):
        """DeleteObjects through Granary; chunked: sent with Transfer-Encoding: chunked (no length)."""
        hdrs = {"content-md5": md5_b64(body)}
        hdrs.update(extra or {})
        if not chunked:
            return call(g.port, "POST", "/%s" % self.bucket, [("delete", "")], headers=hdrs, body=body)
        target, hs = signed(g.port, "POST", "/%s" % self.bucket, [("delete", "")], hdrs, payload_hash=mode)
        hs.pop("content-length", None)
        hs["transfer-encoding"] = "chunked"
        wire = body
        if mode.startswith("STREAMING"):
            wire = sigv4.aws_chunked(body, 1000, trailer=[("x-amz-checksum-crc32", crc32_b64(body))])
        outer = b"".join(b"%x\r\n%s\r\n" % (len(wire[i:i + 700]), wire[i:i + 700])
                         for i in range(0, len(wire), 700)) + b"0\r\n\r\n"
        r, c = exchange(g.port, "POST", target, hs, outer)
        c.close()
        return r


def crc32_b64(data):
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


class ChunkedDeleteObjects(Base):
    """(a) DeleteObjects sent with Transfer-Encoding: chunked."""

    def test_unsigned_payload(self):
        self.prime("te-a")
        self.prime("te-b")
        r = self.delete_objects(delete_xml(b"te-a", b"te-b"), chunked=True)
        self.assertEqual(r.status, 200, r)
        self.assertServesOriginState("te-a", expect_deleted=True)
        self.assertServesOriginState("te-b", expect_deleted=True)

    def test_streaming_unsigned_payload_trailer(self):
        self.prime("te-trailer")
        body = delete_xml(b"te-trailer")
        r = self.delete_objects(body, chunked=True, mode="STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                                extra={"content-encoding": "aws-chunked",
                                       "x-amz-decoded-content-length": str(len(body)),
                                       "x-amz-trailer": "x-amz-checksum-crc32"})
        self.assertEqual(r.status, 200, r)
        self.assertServesOriginState("te-trailer", expect_deleted=True)

    def test_aws_chunked_with_content_length(self):
        # aws-chunked framing with a Content-Length (the body Granary sees is not the XML itself).
        self.prime("awschunked-cl")
        body = delete_xml(b"awschunked-cl")
        hdrs = {"content-md5": md5_b64(body), "content-encoding": "aws-chunked",
                "x-amz-decoded-content-length": str(len(body)), "x-amz-trailer": "x-amz-checksum-crc32"}
        target, hs = signed(g.port, "POST", "/%s" % self.bucket, [("delete", "")], hdrs,
                            payload_hash="STREAMING-UNSIGNED-PAYLOAD-TRAILER")
        wire = sigv4.aws_chunked(body, 64, trailer=[("x-amz-checksum-crc32", crc32_b64(body))])
        hs["content-length"] = str(len(wire))
        r, c = exchange(g.port, "POST", target, hs, wire)
        c.close()
        self.assertEqual(r.status, 200, r)
        self.assertServesOriginState("awschunked-cl", expect_deleted=True)


class LargeDeleteObjects(Base):
    """(b) DeleteObjects bodies between 1 and 4 MiB."""

    def test_whitespace_padding(self):
        self.prime("big-ws")
        r = self.delete_objects(delete_xml(b"big-ws", pad=b" \n\t" * (700 << 10)))  # 2.1 MB
        self.assertEqual(r.status, 200, r)
        self.assertServesOriginState("big-ws", expect_deleted=True)

    def test_comment_padding(self):
        self.prime("big-comment")
        pad = b"<!-- " + b"c" * (3 << 20) + b" -->"
        r = self.delete_objects(delete_xml(b"big-comment", pad=pad))
        self.assertEqual(r.status, 200, r)
        self.assertServesOriginState("big-comment", expect_deleted=True)

    def test_padding_sent_chunked(self):
        self.prime("big-chunked")
        r = self.delete_objects(delete_xml(b"big-chunked", pad=b" " * (1536 << 10)), chunked=True)
        self.assertEqual(r.status, 200, r)
        self.assertServesOriginState("big-chunked", expect_deleted=True)


class KeySpelling(Base):
    """(c) the key a DeleteObjects names, spelled through XML comments, CDATA or character references."""

    def check(self, key, spelled):
        self.prime(key)
        r = self.delete_objects(delete_xml(spelled))
        self.assertEqual(r.status, 200, r)
        self.assertServesOriginState(key, expect_deleted=True)

    def test_split_by_a_comment(self):
        self.check("foo", b"fo<!-- x -->o")

    def test_cdata(self):
        self.check("foo-cdata", b"<![CDATA[foo-cdata]]>")

    def test_numeric_character_references(self):
        self.check("foo-ref", b"&#102;&#x6F;o-ref")

    def test_cdata_inside_text(self):
        self.check("foo-mixed", b"f<![CDATA[oo]]>-mixed")

    def test_entity_and_ampersand(self):
        self.check("a&b<c", b"a&amp;b&lt;c")


class PostFormUpload(Base):
    """(d) a browser POST upload (multipart/form-data to /bucket), signed with SigV4 header auth."""

    def form(self, fields, data):
        boundary = "----granary" + uuid.uuid4().hex
        out = []
        for name, value in fields:
            out.append(("--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n"
                        % (boundary, name, value)).encode())
        out.append(("--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.bin\"\r\n"
                    "Content-Type: application/octet-stream\r\n\r\n" % boundary).encode())
        out.append(data + ("\r\n--%s--\r\n" % boundary).encode())
        return b"".join(out), "multipart/form-data; boundary=" + boundary

    def upload(self, key, data, fields=()):
        body, ctype = self.form([("key", key)] + list(fields), data)
        return call(g.port, "POST", "/%s" % self.bucket, headers={"content-type": ctype}, body=body)

    def test_overwrite_is_seen(self):
        self.prime("form-key")
        new = b"uploaded by a browser form"
        r = self.upload("form-key", new)
        self.assertIn(r.status, (200, 201, 204), r)
        self.assertEqual(hostile.origin_bytes(direct, self.bucket, "form-key"), new, "test premise: origin overwritten")
        self.assertServesOriginState("form-key")

    def test_overwrite_with_other_fields_first(self):
        self.prime("form-key2")
        new = b"second form upload"
        r = self.upload("form-key2", new, fields=[("Content-Type", "text/plain"), ("x-amz-meta-a", "b")])
        self.assertIn(r.status, (200, 201, 204), r)
        self.assertServesOriginState("form-key2")

    def test_key_with_filename_variable(self):
        # ${filename} is replaced by the file's name: Granary cannot know the key in advance.
        self.prime("uploads/x.bin")
        new = b"named by the file"
        body, ctype = self.form([("key", "uploads/${filename}")], new)
        r = call(g.port, "POST", "/%s" % self.bucket, headers={"content-type": ctype}, body=body)
        self.assertIn(r.status, (200, 201, 204), r)
        self.assertServesOriginState("uploads/x.bin")
        self.assertServesOriginState("uploads/${filename}")


class UnknownWriteOperations(Base):
    """(e) a write Granary does not understand invalidates the bucket's cached metadata."""

    def test_put_with_unknown_subresource(self):
        self.prime("unk-put")
        new = b"written through an unknown subresource"
        r = call(g.port, "PUT", "/%s/unk-put" % self.bucket, [("unknownsubresource", "")], body=new)
        # s3rver treats it as a plain PutObject: the object changed at the origin.
        self.assertLess(r.status, 500, r)
        self.assertServesOriginState("unk-put")

    def test_delete_with_unknown_subresource(self):
        self.prime("unk-del")
        call(g.port, "DELETE", "/%s/unk-del" % self.bucket, [("unknownsubresource", "")])
        self.assertServesOriginState("unk-del")

    def test_unknown_bucket_post_then_change_at_origin(self):
        self.prime("unk-other-key")
        keep = self.prime("unk-unchanged")
        call(g.port, "POST", "/%s" % self.bucket, [("unknownop", "")], body=b"<x/>")
        direct.put_object(Bucket=self.bucket, Key="unk-other-key", Body=b"changed at the origin afterwards")
        self.assertServesOriginState("unk-other-key")
        # An object that did not change is still served, and correctly.
        r = call(g.port, "GET", "/%s/unk-unchanged" % self.bucket)
        self.assertEqual((r.status, r.body), (200, keep), r)

    def test_unknown_object_put_then_change_of_another_key_at_origin(self):
        self.prime("unk-sibling")
        keep = self.prime("unk-still-fine")
        call(g.port, "PUT", "/%s/unk-x" % self.bucket, [("unknownsubresource", "")], body=b"whatever")
        direct.delete_object(Bucket=self.bucket, Key="unk-sibling")
        self.assertServesOriginState("unk-sibling", expect_deleted=True)
        r = call(g.port, "GET", "/%s/unk-still-fine" % self.bucket)
        self.assertEqual((r.status, r.body), (200, keep), r)

    def test_other_buckets_are_not_required_to_change(self):
        # Control: objects of another bucket are served as before (correct bytes either way).
        keep = self.prime("other-object", bucket=OTHER)
        call(g.port, "POST", "/%s" % self.bucket, [("unknownop", "")], body=b"<x/>")
        r = call(g.port, "GET", "/%s/other-object" % OTHER)
        self.assertEqual((r.status, r.body), (200, keep), r)


class Doctype(Base):
    """(f) a DeleteObjects body with a DOCTYPE -> 400 MalformedXML; nothing is deleted."""

    def check(self, key, body):
        keep = self.prime(key)
        r = self.delete_objects(body)
        self.assertEqual((r.status, r.code), (400, "MalformedXML"), r)
        self.assertEqual(hostile.origin_bytes(direct, self.bucket, key), keep, "the object was deleted at the origin")
        r = call(g.port, "GET", "/%s/%s" % (self.bucket, key))
        self.assertEqual((r.status, r.body), (200, keep), r)

    def test_plain_doctype(self):
        self.check("dt-plain", b'<?xml version="1.0"?><!DOCTYPE Delete><Delete><Object><Key>dt-plain</Key>'
                               b"</Object></Delete>")

    def test_internal_entity(self):
        self.check("dt-entity", b'<?xml version="1.0"?><!DOCTYPE Delete [<!ENTITY k "dt-entity">]>'
                                b"<Delete><Object><Key>&k;</Key></Object><Object><Key>dt-entity</Key></Object></Delete>")

    def test_external_entity(self):
        self.check("dt-external", b'<?xml version="1.0"?><!DOCTYPE Delete [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                                  b"<Delete><Object><Key>dt-external</Key></Object><Object><Key>&x;</Key></Object></Delete>")


if __name__ == "__main__":
    unittest.main()


class PresignedUploadsOfJavaScriptSdk(Base):
    """The AWS SDKs for JavaScript v3 and Java v2 move x-amz-* headers into a presigned PUT's query: such a
    PUT changes its key only, and must not revalidate the whole bucket (nor leave its key stale)."""

    def test_query_headers_invalidate_the_key_only(self):
        old = self.prime("presigned-js")
        before = hostile.metric(g, "granary_cache_bucket_invalidations_total")
        new = b"written with a presigned URL carrying x-amz-* parameters"
        query = [("x-amz-checksum-crc32", crc32_b64(new)), ("x-amz-sdk-checksum-algorithm", "CRC32"),
                 ("x-id", "PutObject")]
        r = call(g.port, "PUT", "/%s/presigned-js" % self.bucket, query, body=new)
        self.assertEqual(r.status, 200, r)
        self.assertNotEqual(old, new)
        self.assertServesOriginState("presigned-js")
        self.assertEqual(hostile.metric(g, "granary_cache_bucket_invalidations_total"), before)


class BucketNamesFromTheHost(unittest.TestCase):
    """A virtual-hosted bucket comes from the Host header, which can hold what no bucket name may: a '/'
    would make the backend write another bucket's key than the one Granary invalidates."""

    def test_slash_in_a_virtual_hosted_bucket_is_refused(self):
        gv = granaries.start(origin.url, "--ram-cache", "64MiB", "--metadata-ttl", "forever", "--domain", "s3.test")
        data = hostile.payload(1000, 5)
        direct.put_object(Bucket=BUCKET, Key="sub/file", Body=data)
        for host in ("%s/sub.s3.test" % BUCKET, "%s%%2Fsub.s3.test" % BUCKET, "a b.s3.test"):
            with self.subTest(host=host):
                target, hs = signed(gv.port, "PUT", "/file", body=b"smuggled", host=host)
                r, c = exchange(gv.port, "PUT", target, hs, b"smuggled")
                c.close()
                self.assertEqual((r.status, r.code), (400, "InvalidBucketName"), r)
        self.assertEqual(hostile.origin_bytes(direct, BUCKET, "sub/file"), data, "the origin's object changed")

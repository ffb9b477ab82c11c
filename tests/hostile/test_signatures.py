"""Class 2, signature coverage: what a signature does not cover must not act. An x-amz-* header outside
SignedHeaders (header auth or presigned) is refused with AccessDenied and <HeadersNotSigned>; SigV2
covers every x-amz-* header; the credential scope must name a region Granary serves and the service
's3'. Correctly signed requests keep working. Runs against a real s3rver origin."""
import unittest

import hostile
import sigv4
from hostile import call, exchange

origin = direct = None
granaries = hostile.Granaries()
g = None
BUCKET = "sig-bucket"
UNSIGNED_MSG = "There were headers present in the request which were not signed"


@hostile.guarded(lambda: tearDownModule())
def setUpModule():
    global origin, direct, g
    origin = hostile.harness.Origin()
    direct = hostile.direct_client(origin)
    direct.create_bucket(Bucket=BUCKET)
    direct.put_object(Bucket=BUCKET, Key="source", Body=b"the copy source's bytes")
    direct.put_object(Bucket=BUCKET, Key="readable", Body=b"readable bytes")
    g = granaries.start(origin.url)


def tearDownModule():
    try:
        granaries.stop_all()
    finally:
        origin.stop()


def host():
    return hostile.host_of(g.port)


class Base(unittest.TestCase):
    def setUp(self):
        origin.ensure_alive()

    def assertError(self, r, status, code):
        self.assertEqual((r.status, r.code), (status, code), r)
        self.assertIn("xml", (r.header("content-type") or "").lower(), r)


class HeaderAuthUnsignedAmzHeaders(Base):
    """(a) SigV4 header auth with an x-amz-* header that SignedHeaders does not list."""

    def check_refused(self, method, key, header, value, body=b""):
        r = call(g.port, method, "/%s/%s" % (BUCKET, key), body=body, unsigned={header: value})
        self.assertError(r, 403, "AccessDenied")
        self.assertEqual(r.xml("Message"), UNSIGNED_MSG, r)
        self.assertIsNotNone(r.xml("HeadersNotSigned"), r)
        self.assertIn(header.lower(), r.xml("HeadersNotSigned").lower(), r)
        return r

    def test_unsigned_copy_source_on_put_is_refused_and_copies_nothing(self):
        self.check_refused("PUT", "copy-dest-a", "x-amz-copy-source", "/%s/source" % BUCKET)
        self.assertFalse(hostile.origin_has(direct, BUCKET, "copy-dest-a"), "the copy must not happen")

    def test_unsigned_user_metadata_on_put_is_refused_and_stores_nothing(self):
        self.check_refused("PUT", "meta-dest", "x-amz-meta-foo", "injected", body=b"data")
        self.assertFalse(hostile.origin_has(direct, BUCKET, "meta-dest"))

    def test_unsigned_acl_on_put_is_refused(self):
        self.check_refused("PUT", "acl-dest", "x-amz-acl", "public-read", body=b"data")
        self.assertFalse(hostile.origin_has(direct, BUCKET, "acl-dest"))

    def test_unsigned_amz_header_on_get_is_refused(self):
        self.check_refused("GET", "readable", "x-amz-request-payer", "requester")

    def test_several_unsigned_headers_are_all_named(self):
        r = call(g.port, "PUT", "/%s/two-unsigned" % BUCKET, body=b"x",
                 unsigned={"x-amz-meta-one": "1", "x-amz-tagging": "a=b"})
        self.assertError(r, 403, "AccessDenied")
        named = (r.xml("HeadersNotSigned") or "").lower()
        self.assertIn("x-amz-meta-one", named, r)
        self.assertIn("x-amz-tagging", named, r)

    def test_all_amz_headers_signed_still_works(self):
        extra = {"x-amz-meta-foo": "bar", "x-amz-meta-colour": "blue", "x-amz-tagging": "k=v"}
        r = call(g.port, "PUT", "/%s/fully-signed" % BUCKET, headers=extra, body=b"signed everything")
        self.assertEqual(r.status, 200, r)
        got = direct.get_object(Bucket=BUCKET, Key="fully-signed")
        self.assertEqual(got["Body"].read(), b"signed everything")
        self.assertEqual(got["Metadata"].get("foo"), "bar")
        r = call(g.port, "GET", "/%s/fully-signed" % BUCKET, headers={"x-amz-request-payer": "requester"})
        self.assertEqual((r.status, r.body), (200, b"signed everything"), r)
        # A signed copy is a copy.
        r = call(g.port, "PUT", "/%s/signed-copy" % BUCKET, headers={"x-amz-copy-source": "/%s/source" % BUCKET})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(hostile.origin_bytes(direct, BUCKET, "signed-copy"), b"the copy source's bytes")


class PresignedUnsignedAmzHeaders(Base):
    """(b), (c) presigned URLs signed over host only, sent with x-amz-* headers they do not cover."""

    def test_presigned_put_with_unsigned_copy_source_creates_nothing(self):
        p = sigv4.presign("PUT", host(), "/%s/presigned-copy-dest" % BUCKET, [], hostile.AK, hostile.SK)
        r, c = exchange(g.port, "PUT", p.target, {"host": host(), "content-length": "0",
                                                  "x-amz-copy-source": "/%s/source" % BUCKET})
        c.close()
        self.assertError(r, 403, "AccessDenied")
        self.assertFalse(hostile.origin_has(direct, BUCKET, "presigned-copy-dest"),
                         "an unsigned x-amz-copy-source turned a presigned PUT into a copy")

    def test_presigned_put_with_unsigned_copy_source_leaves_existing_object_unchanged(self):
        direct.put_object(Bucket=BUCKET, Key="presigned-existing", Body=b"original")
        p = sigv4.presign("PUT", host(), "/%s/presigned-existing" % BUCKET, [], hostile.AK, hostile.SK)
        r, c = exchange(g.port, "PUT", p.target, {"host": host(), "content-length": "0",
                                                  "x-amz-copy-source": "/%s/source" % BUCKET})
        c.close()
        self.assertError(r, 403, "AccessDenied")
        self.assertEqual(hostile.origin_bytes(direct, BUCKET, "presigned-existing"), b"original")

    def test_presigned_put_with_unsigned_metadata_is_refused(self):
        p = sigv4.presign("PUT", host(), "/%s/presigned-meta" % BUCKET, [], hostile.AK, hostile.SK)
        r, c = exchange(g.port, "PUT", p.target, {"host": host(), "content-length": "4", "x-amz-meta-evil": "1"},
                        b"data")
        c.close()
        self.assertError(r, 403, "AccessDenied")
        self.assertFalse(hostile.origin_has(direct, BUCKET, "presigned-meta"))

    def test_presigned_get_with_unsigned_amz_header_is_refused(self):
        p = sigv4.presign("GET", host(), "/%s/readable" % BUCKET, [], hostile.AK, hostile.SK)
        for name, value in (("x-amz-request-payer", "requester"), ("x-amz-meta-x", "y"),
                            ("x-amz-server-side-encryption-customer-algorithm", "AES256")):
            with self.subTest(header=name):
                r, c = exchange(g.port, "GET", p.target, {"host": host(), name: value})
                c.close()
                self.assertError(r, 403, "AccessDenied")
                self.assertNotEqual(r.body, b"readable bytes")

    def test_presigned_with_signed_amz_headers_works(self):
        p = sigv4.presign("GET", host(), "/%s/readable" % BUCKET, [], hostile.AK, hostile.SK)
        r, c = exchange(g.port, "GET", p.target, {"host": host()})
        c.close()
        self.assertEqual((r.status, r.body), (200, b"readable bytes"), r)
        p = sigv4.presign("PUT", host(), "/%s/presigned-signed-meta" % BUCKET, [], hostile.AK, hostile.SK,
                          headers={"x-amz-meta-ok": "yes"})
        r, c = exchange(g.port, "PUT", p.target, {"host": host(), "x-amz-meta-ok": "yes", "content-length": "2"}, b"ok")
        c.close()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(direct.head_object(Bucket=BUCKET, Key="presigned-signed-meta")["Metadata"].get("ok"), "yes")


class SigV2CoversAmzHeaders(Base):
    """(d) SigV2 signs every x-amz-* header: one added after signing breaks the signature."""

    def test_v2_header_auth_with_added_amz_header(self):
        for method, key, added in (("GET", "readable", {"x-amz-request-payer": "requester"}),
                                   ("PUT", "v2-added-copy", {"x-amz-copy-source": "/%s/source" % BUCKET}),
                                   ("PUT", "v2-added-meta", {"x-amz-meta-foo": "bar"})):
            with self.subTest(method=method, header=list(added)[0]):
                target, hs = sigv4.sign_v2(method, "/%s/%s" % (BUCKET, key), [], {"host": host()},
                                           hostile.AK, hostile.SK)
                hs.update(added)
                if method == "PUT":
                    hs["content-length"] = "0"
                r, c = exchange(g.port, method, target, hs)
                c.close()
                self.assertError(r, 403, "SignatureDoesNotMatch")
                if method == "PUT":
                    self.assertFalse(hostile.origin_has(direct, BUCKET, key))

    def test_v2_presigned_with_added_amz_header(self):
        for method, key, added in (("GET", "readable", {"x-amz-request-payer": "requester"}),
                                   ("PUT", "v2q-added-copy", {"x-amz-copy-source": "/%s/source" % BUCKET}),
                                   ("PUT", "v2q-added-meta", {"x-amz-meta-foo": "bar"})):
            with self.subTest(method=method, header=list(added)[0]):
                target = sigv4.presign_v2(method, "/%s/%s" % (BUCKET, key), [], hostile.AK, hostile.SK)
                hs = {"host": host()}
                hs.update(added)
                if method == "PUT":
                    hs["content-length"] = "0"
                r, c = exchange(g.port, method, target, hs)
                c.close()
                self.assertError(r, 403, "SignatureDoesNotMatch")
                if method == "PUT":
                    self.assertFalse(hostile.origin_has(direct, BUCKET, key))

    def test_v2_with_amz_headers_signed_works(self):
        target, hs = sigv4.sign_v2("PUT", "/%s/v2-signed-meta" % BUCKET, [],
                                   {"host": host(), "x-amz-meta-foo": "bar", "content-length": "2"},
                                   hostile.AK, hostile.SK)
        r, c = exchange(g.port, "PUT", target, hs, b"v2")
        c.close()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(hostile.origin_bytes(direct, BUCKET, "v2-signed-meta"), b"v2")
        target = sigv4.presign_v2("GET", "/%s/readable" % BUCKET, [], hostile.AK, hostile.SK)
        r, c = exchange(g.port, "GET", target, {"host": host()})
        c.close()
        self.assertEqual((r.status, r.body), (200, b"readable bytes"), r)


class CredentialScope(Base):
    """(e), (f) the scope's region must be one Granary serves (us-east-1 by default, with a us-east-1
    backend) and its service 's3'."""
    WRONG_REGION = "the region 'us-west-2' is wrong; expecting 'us-east-1'"

    def test_header_auth_wrong_region(self):
        for method, key, body in (("GET", "readable", b""), ("PUT", "wrong-region-put", b"data")):
            with self.subTest(method=method):
                r = call(g.port, method, "/%s/%s" % (BUCKET, key), body=body, region="us-west-2")
                self.assertError(r, 400, "AuthorizationHeaderMalformed")
                self.assertIn(self.WRONG_REGION, r.xml("Message") or "", r)
                self.assertEqual(r.xml("Region"), "us-east-1", r)
        self.assertFalse(hostile.origin_has(direct, BUCKET, "wrong-region-put"))

    def test_presigned_wrong_region(self):
        for method in ("GET", "PUT"):
            with self.subTest(method=method):
                key = "readable" if method == "GET" else "wrong-region-presigned"
                p = sigv4.presign(method, host(), "/%s/%s" % (BUCKET, key), [], hostile.AK, hostile.SK,
                                  region="us-west-2")
                hs = {"host": host()}
                if method == "PUT":
                    hs["content-length"] = "0"
                r, c = exchange(g.port, method, p.target, hs)
                c.close()
                self.assertError(r, 400, "AuthorizationQueryParametersError")
                self.assertIn(self.WRONG_REGION, r.xml("Message") or "", r)
                self.assertEqual(r.xml("Region"), "us-east-1", r)
        self.assertFalse(hostile.origin_has(direct, BUCKET, "wrong-region-presigned"))

    def test_wrong_service(self):
        r = call(g.port, "GET", "/%s/readable" % BUCKET, service="ec2")
        self.assertError(r, 400, "AuthorizationHeaderMalformed")
        p = sigv4.presign("GET", host(), "/%s/readable" % BUCKET, [], hostile.AK, hostile.SK, service="ec2")
        r, c = exchange(g.port, "GET", p.target, {"host": host()})
        c.close()
        self.assertError(r, 400, "AuthorizationQueryParametersError")
        # Even a correct region with a wrong service, and a wrong region with a wrong service, are refused.
        r = call(g.port, "PUT", "/%s/wrong-service-put" % BUCKET, body=b"x", service="iam")
        self.assertError(r, 400, "AuthorizationHeaderMalformed")
        self.assertFalse(hostile.origin_has(direct, BUCKET, "wrong-service-put"))

    def test_configured_regions(self):
        # --region R (repeatable) names the regions Granary serves: each is accepted, others refused.
        g2 = granaries.start(origin.url, "--region", "us-west-2", "--region", "eu-central-1")
        try:
            for region in ("us-west-2", "eu-central-1"):
                r = call(g2.port, "GET", "/%s/readable" % BUCKET, region=region)
                self.assertEqual((r.status, r.body), (200, b"readable bytes"), (region, r))
            r = call(g2.port, "GET", "/%s/readable" % BUCKET, region="ap-south-1")
            self.assertError(r, 400, "AuthorizationHeaderMalformed")
            self.assertIn("the region 'ap-south-1' is wrong", r.xml("Message") or "", r)
        finally:
            g2.stop()
            granaries.started.remove(g2)

    def test_right_scope_works(self):
        r = call(g.port, "GET", "/%s/readable" % BUCKET, region="us-east-1", service="s3")
        self.assertEqual((r.status, r.body), (200, b"readable bytes"), r)


if __name__ == "__main__":
    unittest.main()

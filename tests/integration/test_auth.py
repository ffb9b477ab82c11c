"""Signature verification end to end: wrong secrets and keys, clock skew, expired presigned URLs,
anonymous access, signed payload hashes and aws-chunked uploads (signed, tampered, unsigned trailer).
A refused upload must leave nothing at the origin."""
import base64
import datetime
import hashlib
import http.client
import subprocess
import time
import unittest
import zlib

from botocore.exceptions import ClientError

import harness
import sigv4

origin = granary = s3 = direct = None
BUCKET = "auth-bucket"
AK, SK = harness.CLIENT_KEY


def setUpModule():
    global origin, granary, s3, direct
    origin = harness.Origin()
    granary = harness.Granary(origin.url)
    s3 = harness.boto3_client(granary.url)
    direct = harness.boto3_client(origin.url, key=harness.ORIGIN_KEY)
    s3.create_bucket(Bucket=BUCKET)


def tearDownModule():
    granary.stop()
    origin.stop()


def raw(method, path, body=b"", headers=None, query=(), port=None):
    """Sends a request signed by sigv4.sign (or `headers` as given when they hold authorization)."""
    conn = http.client.HTTPConnection("127.0.0.1", port or granary.port, timeout=30)
    target = path + ("?" + query if query else "")
    conn.request(method, target, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data


def signed(method, key, body=b"", payload_hash=None, extra=None, when=None, secret=SK, access=AK):
    host = "127.0.0.1:%d" % granary.port
    ph = payload_hash or hashlib.sha256(body).hexdigest()
    s = sigv4.sign(method, host, "/%s/%s" % (BUCKET, key), [], extra or {}, ph, access, secret, when=when)
    return s


def exists_at_origin(key):
    try:
        direct.head_object(Bucket=BUCKET, Key=key)
        return True
    except ClientError:
        return False


class ClientCredentials(unittest.TestCase):
    def test_wrong_secret_is_signature_does_not_match(self):
        bad = harness.boto3_client(granary.url, key=(AK, "wrong-secret"))
        with self.assertRaises(ClientError) as e:
            bad.list_objects_v2(Bucket=BUCKET)
        self.assertEqual(harness.error_code(e.exception), ("SignatureDoesNotMatch", 403))
        p = harness.aws(granary.url, "s3", "ls", "s3://%s" % BUCKET, key=(AK, "wrong-secret"), check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("SignatureDoesNotMatch", p.stderr)

    def test_unknown_key_is_invalid_access_key_id(self):
        with self.assertRaises(ClientError) as e:
            harness.boto3_client(granary.url, key=("NOSUCHKEY", "x")).list_buckets()
        self.assertEqual(harness.error_code(e.exception), ("InvalidAccessKeyId", 403))

    def test_our_signer_agrees_with_botocore(self):
        s = signed("PUT", "signer-check", b"abc")
        status, _ = raw("PUT", s.path, b"abc", s.headers)
        self.assertEqual(status, 200)

    def test_clock_skew_over_15_minutes(self):
        old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=20)
        s = signed("GET", "x", when=old)
        status, body = raw("GET", s.path, b"", s.headers)
        self.assertEqual(status, 403)
        self.assertIn(b"<Code>RequestTimeTooSkewed</Code>", body)
        near = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=10)
        s = signed("PUT", "skew-ok", b"1", when=near)
        self.assertEqual(raw("PUT", s.path, b"1", s.headers)[0], 200)

    def test_expired_presigned_url(self):
        s3.put_object(Bucket=BUCKET, Key="soon-expired", Body=b"x")
        from botocore.config import Config
        v4 = harness.boto3_client(granary.url, signature_version="s3v4")
        for client in (s3, v4):
            url = client.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "soon-expired"},
                                                ExpiresIn=1)
            time.sleep(2.1)
            out = subprocess.run(["curl", "-sS", "-w", "%{http_code}", url], capture_output=True, text=True, timeout=30)
            self.assertTrue(out.stdout.endswith("403"), out.stdout)
            self.assertIn("<Code>AccessDenied</Code>", out.stdout)
            self.assertIn("expired", out.stdout)

    def test_sigv4_presigned_get(self):
        s3.put_object(Bucket=BUCKET, Key="v4 presigned", Body=b"v4!")
        v4 = harness.boto3_client(granary.url, signature_version="s3v4")
        url = v4.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "v4 presigned"}, ExpiresIn=60)
        self.assertIn("X-Amz-Signature=", url)
        out = subprocess.run(["curl", "-sS", "-f", url], capture_output=True, timeout=30)
        self.assertEqual(out.stdout, b"v4!")

    def test_unsigned_request_refused_unless_anonymous(self):
        status, body = raw("GET", "/%s/x" % BUCKET)
        self.assertEqual(status, 403)
        self.assertIn(b"<Code>AccessDenied</Code>", body)
        anon = harness.Granary(origin.url, extra=["--anonymous", "true"])
        try:
            s3.put_object(Bucket=BUCKET, Key="public", Body=b"hello anyone")
            status, body = raw("GET", "/%s/public" % BUCKET, port=anon.port)
            self.assertEqual((status, body), (200, b"hello anyone"))
            # A wrong signature is still refused when anonymous access is on.
            bad = harness.boto3_client(anon.url, key=(AK, "wrong"))
            with self.assertRaises(ClientError) as e:
                bad.get_object(Bucket=BUCKET, Key="public")
            self.assertEqual(harness.error_code(e.exception)[0], "SignatureDoesNotMatch")
        finally:
            anon.stop()


class PayloadHash(unittest.TestCase):
    def test_body_not_matching_signed_hash_is_refused_and_not_stored(self):
        s = signed("PUT", "tampered-hash", b"original body")
        status, body = raw("PUT", s.path, b"tampered body", s.headers)
        self.assertEqual(status, 400)
        self.assertIn(b"<Code>XAmzContentSHA256Mismatch</Code>", body)
        self.assertFalse(exists_at_origin("tampered-hash"))

    def test_large_tampered_body_never_reaches_the_origin_complete(self):
        # Over 1 MiB the body streams and its last byte is held back until the hash checks out. Real S3
        # discards a cut-off upload; s3rver keeps whatever arrived, so the check is that the origin
        # never holds the complete tampered body.
        good, bad = b"g" * (3 << 20), b"b" * (3 << 20)
        s = signed("PUT", "tampered-large", good)
        status, body = raw("PUT", s.path, bad, s.headers)
        self.assertEqual(status, 400)
        self.assertIn(b"<Code>XAmzContentSHA256Mismatch</Code>", body)
        if exists_at_origin("tampered-large"):
            stored = direct.get_object(Bucket=BUCKET, Key="tampered-large")["Body"].read()
            self.assertLess(len(stored), len(bad))

    def test_matching_hash_is_stored(self):
        data = b"z" * 100000
        s = signed("PUT", "good-hash", data)
        self.assertEqual(raw("PUT", s.path, data, s.headers)[0], 200)
        self.assertEqual(direct.get_object(Bucket=BUCKET, Key="good-hash")["Body"].read(), data)

    def test_unsigned_payload(self):
        s = signed("PUT", "unsigned", b"anything", payload_hash="UNSIGNED-PAYLOAD")
        self.assertEqual(raw("PUT", s.path, b"anything", s.headers)[0], 200)
        self.assertEqual(direct.get_object(Bucket=BUCKET, Key="unsigned")["Body"].read(), b"anything")


class AwsChunked(unittest.TestCase):
    payload = bytes(range(256)) * 1000  # 256,000 bytes: four chunks of 64 KiB

    def upload(self, key, mode, tamper=None, trailer=None, decoded=None):
        hdrs = {"content-encoding": "aws-chunked",
                "x-amz-decoded-content-length": str(decoded if decoded is not None else len(self.payload))}
        if trailer:
            hdrs["x-amz-trailer"] = trailer[0][0]
        s = signed("PUT", key, payload_hash=mode, extra=hdrs)
        wire = sigv4.aws_chunked(self.payload, 65536, signed=s if "HMAC" in mode else None, trailer=trailer)
        if tamper:
            wire = tamper(wire)
        s.headers["content-length"] = str(len(wire))
        return raw("PUT", s.path, wire, s.headers)

    def test_signed_chunks_store_exactly_the_payload(self):
        status, body = self.upload("chunked-ok", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
        self.assertEqual(status, 200, body)
        self.assertEqual(direct.get_object(Bucket=BUCKET, Key="chunked-ok")["Body"].read(), self.payload)

    def test_a_tampered_chunk_is_refused_and_not_stored(self):
        def flip(w):
            i = w.index(b"\r\n") + 500
            return w[:i] + bytes([w[i] ^ 1]) + w[i + 1:]
        status, body = self.upload("chunked-bad", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", tamper=flip)
        self.assertEqual(status, 403)
        self.assertIn(b"<Code>SignatureDoesNotMatch</Code>", body)
        self.assertFalse(exists_at_origin("chunked-bad"))

    def test_a_body_missing_its_last_chunk_is_refused(self):
        status, body = self.upload("chunked-short", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
                                   tamper=lambda w: w[:w.rindex(b"0;chunk-signature")])
        self.assertEqual(status, 400)
        self.assertIn(b"<Code>IncompleteBody</Code>", body)
        self.assertFalse(exists_at_origin("chunked-short"))

    def test_decoded_length_mismatch_is_refused(self):
        status, body = self.upload("chunked-len", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", decoded=1000)
        self.assertEqual(status, 400)
        self.assertFalse(exists_at_origin("chunked-len"))

    def test_signed_chunks_with_signed_trailer(self):
        status, body = self.upload("chunked-trailer", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
                                   trailer=[("x-amz-checksum-crc32", crc32_b64(self.payload))])
        self.assertEqual(status, 200, body)
        self.assertEqual(direct.get_object(Bucket=BUCKET, Key="chunked-trailer")["Body"].read(), self.payload)

    def test_unsigned_payload_trailer_as_the_js_sdk_sends(self):
        status, body = self.upload("chunked-unsigned", "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                                   trailer=[("x-amz-checksum-crc32", crc32_b64(self.payload))])
        self.assertEqual(status, 200, body)
        self.assertEqual(direct.get_object(Bucket=BUCKET, Key="chunked-unsigned")["Body"].read(), self.payload)


def crc32_b64(data):
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def digest_b64(name, data):
    return base64.b64encode(hashlib.new(name, data).digest()).decode()


class Checksums(unittest.TestCase):
    """Content-MD5 and x-amz-checksum-* (headers and aws-chunked trailers) are verified before the
    backend gets the whole body."""
    payload = bytes(range(256)) * 1000

    def put_with(self, key, data, extra):
        s = signed("PUT", key, data, extra=extra)
        return raw("PUT", s.path, data, s.headers)

    def chunked(self, key, data, trailer, mode="STREAMING-UNSIGNED-PAYLOAD-TRAILER"):
        hdrs = {"content-encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(data)),
                "x-amz-trailer": trailer[0]}
        s = signed("PUT", key, payload_hash=mode, extra=hdrs)
        wire = sigv4.aws_chunked(data, 65536, signed=s if "HMAC" in mode else None, trailer=[trailer])
        s.headers["content-length"] = str(len(wire))
        return raw("PUT", s.path, wire, s.headers)

    def test_content_md5_checked(self):
        data = b"checked by md5"
        good = digest_b64("md5", data)
        self.assertEqual(self.put_with("md5-good", data, {"content-md5": good})[0], 200)
        status, body = self.put_with("md5-bad", data, {"content-md5": digest_b64("md5", b"other")})
        self.assertEqual(status, 400)
        self.assertIn(b"<Code>BadDigest</Code>", body)
        self.assertFalse(exists_at_origin("md5-bad"))
        status, body = self.put_with("md5-malformed", data, {"content-md5": "not-base64"})
        self.assertEqual(status, 400)
        self.assertIn(b"<Code>InvalidDigest</Code>", body)

    def test_checksum_headers_checked(self):
        data = b"x" * 5000
        algs = {"x-amz-checksum-crc32": crc32_b64, "x-amz-checksum-sha256": lambda d: digest_b64("sha256", d),
                "x-amz-checksum-sha1": lambda d: digest_b64("sha1", d)}
        for name, f in algs.items():
            with self.subTest(name=name):
                self.assertEqual(self.put_with("ck-" + name, data, {name: f(data)})[0], 200)
                status, body = self.put_with("ck-bad-" + name, data, {name: f(data + b"!")})
                self.assertEqual(status, 400, body)
                self.assertIn(b"<Code>BadDigest</Code>", body)
                self.assertFalse(exists_at_origin("ck-bad-" + name))
        status, body = self.put_with("ck-two", data, {"x-amz-checksum-crc32": crc32_b64(data),
                                                      "x-amz-checksum-sha1": digest_b64("sha1", data)})
        self.assertEqual(status, 400)
        self.assertIn(b"<Code>InvalidRequest</Code>", body)

    def test_trailer_checksums_checked_small_and_streamed(self):
        big = bytes(range(256)) * (12 << 10)  # 3 MiB: streams to the backend, last byte held back
        for key, data in (("tr-small", self.payload), ("tr-big", big)):
            with self.subTest(key=key):
                self.assertEqual(self.chunked(key, data, ("x-amz-checksum-crc32", crc32_b64(data)))[0], 200)
                self.assertEqual(direct.get_object(Bucket=BUCKET, Key=key)["Body"].read(), data)
                status, body = self.chunked(key + "-bad", data, ("x-amz-checksum-crc32", crc32_b64(data + b"!")))
                self.assertEqual(status, 400, body)
                self.assertIn(b"<Code>BadDigest</Code>", body)
                self.assertIn(b"CRC32", body)
                if exists_at_origin(key + "-bad"):  # s3rver keeps a cut-off upload; S3 would not
                    self.assertLess(len(direct.get_object(Bucket=BUCKET, Key=key + "-bad")["Body"].read()), len(data))
        status, body = self.chunked("tr-sha", self.payload, ("x-amz-checksum-sha256", digest_b64("sha256", self.payload)),
                                    mode="STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER")
        self.assertEqual(status, 200, body)

    def test_chunked_transfer_without_content_length(self):
        # aws-chunked inside HTTP chunked transfer coding, no Content-Length: the length comes from
        # x-amz-decoded-content-length, and the backend gets a plain body with that Content-Length.
        data = bytes(range(256)) * (8 << 10)  # 2 MiB: streamed
        hdrs = {"content-encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(data)),
                "x-amz-trailer": "x-amz-checksum-crc32"}
        s = signed("PUT", "te-chunked", payload_hash="STREAMING-UNSIGNED-PAYLOAD-TRAILER", extra=hdrs)
        wire = sigv4.aws_chunked(data, 65536, trailer=[("x-amz-checksum-crc32", crc32_b64(data))])
        s.headers.pop("content-length", None)
        s.headers["transfer-encoding"] = "chunked"
        conn = http.client.HTTPConnection("127.0.0.1", granary.port, timeout=30)
        pieces = (wire[i:i + 100_000] for i in range(0, len(wire), 100_000))
        conn.request("PUT", s.path, body=pieces, headers=s.headers, encode_chunked=True)
        r = conn.getresponse()
        self.assertEqual(r.status, 200, r.read())
        conn.close()
        self.assertEqual(direct.get_object(Bucket=BUCKET, Key="te-chunked")["Body"].read(), data)

    def test_sdk_checksums_pass(self):
        for alg in ("CRC32", "SHA256", "SHA1"):
            with self.subTest(alg=alg):
                s3.put_object(Bucket=BUCKET, Key="sdk-" + alg, Body=b"y" * 70000, ChecksumAlgorithm=alg)
                self.assertEqual(direct.get_object(Bucket=BUCKET, Key="sdk-" + alg)["Body"].read(), b"y" * 70000)
        s3.put_object(Bucket=BUCKET, Key="sdk-md5", Body=b"m", ContentMD5=digest_b64("md5", b"m"))


if __name__ == "__main__":
    unittest.main()

"""Several backends behind one Granary: two s3rver origins that each accept only their own access key
(tests/integration/origin.js), [[backend]] and [[bucket]] blocks routing client buckets to them (one
renamed), ListBuckets merging both, and per-bucket cache policy: metadata TTL 0 / forever, cache off."""
import shutil
import tempfile
import unittest

from botocore.exceptions import ClientError

import harness

KEY_A = ("ORIGINAKEYA", "origin-a-secret")
KEY_B = ("ORIGINBKEYB", "origin-b-secret")
origin_a = origin_b = granary = s3 = direct_a = direct_b = None
cache_dir = None


def setUpModule():
    global origin_a, origin_b, granary, s3, direct_a, direct_b, cache_dir
    origin_a = harness.Origin(key=KEY_A)
    origin_b = harness.Origin(key=KEY_B)
    direct_a = harness.boto3_client(origin_a.url, key=KEY_A)
    direct_b = harness.boto3_client(origin_b.url, key=KEY_B)
    for b in ("plain", "frozen", "uncached", "shadowed"):
        direct_a.create_bucket(Bucket=b)
    for b in ("real-b-data", "b-only-unlisted"):
        direct_b.create_bucket(Bucket=b)
    cache_dir = tempfile.mkdtemp(prefix="granary-cache-")
    config = """
[cache]
cache_dir = ["%(cache)s:64MiB"]
metadata_ttl = "0"

[[backend]]
name = "a"
default = true
endpoint = "%(a)s"
access_key = "%(ak_a)s"
secret_key = "%(sk_a)s"

[[backend]]
name = "b"
endpoint = "%(b)s"
access_key = "%(ak_b)s"
secret_key = "%(sk_b)s"

[[bucket]]
name = "b-data"
backend = "b"
backend_bucket = "real-b-data"

[[bucket]]
name = "shadowed"
backend = "b"
backend_bucket = "real-b-data"

[[bucket]]
name = "b-missing"
backend = "b"
backend_bucket = "real-b-missing"

[[bucket]]
name = "frozen"
metadata_ttl = "forever"

[[bucket]]
name = "uncached"
cache = false
""" % {"cache": cache_dir, "a": origin_a.url, "b": origin_b.url, "ak_a": KEY_A[0], "sk_a": KEY_A[1],
       "ak_b": KEY_B[0], "sk_b": KEY_B[1]}
    granary = harness.Granary(config=config)
    s3 = harness.boto3_client(granary.url)


def tearDownModule():
    granary.stop()
    origin_a.stop()
    origin_b.stop()
    shutil.rmtree(cache_dir, ignore_errors=True)


def body(resp):
    return resp["Body"].read()


class Routing(unittest.TestCase):
    def test_each_bucket_goes_to_its_backend_with_its_credentials(self):
        s3.put_object(Bucket="b-data", Key="k", Body=b"to origin b")
        s3.put_object(Bucket="plain", Key="k", Body=b"to origin a")
        # Each origin refuses the other's key, so arriving at all proves the right credentials were used.
        self.assertEqual(body(direct_b.get_object(Bucket="real-b-data", Key="k")), b"to origin b")
        self.assertEqual(body(direct_a.get_object(Bucket="plain", Key="k")), b"to origin a")
        with self.assertRaises(ClientError):
            direct_a.head_object(Bucket="b-data", Key="k")
        self.assertEqual(body(s3.get_object(Bucket="b-data", Key="k")), b"to origin b")
        self.assertEqual(body(s3.get_object(Bucket="plain", Key="k")), b"to origin a")

    def test_listing_objects_and_multipart_on_the_renamed_bucket(self):
        for i in range(3):
            s3.put_object(Bucket="b-data", Key="list/%d" % i, Body=b"x")
        listing = s3.list_objects_v2(Bucket="b-data", Prefix="list/")
        self.assertEqual([o["Key"] for o in listing["Contents"]], ["list/0", "list/1", "list/2"])
        self.assertEqual(listing["Name"], "b-data", "the client's name, not the backend's")
        self.assertEqual(s3.list_objects(Bucket="b-data", Prefix="list/")["Name"], "b-data")
        up = s3.create_multipart_upload(Bucket="b-data", Key="mp")
        self.assertEqual(up["Bucket"], "b-data")
        part = s3.upload_part(Bucket="b-data", Key="mp", UploadId=up["UploadId"], PartNumber=1, Body=b"p" * 1000)
        done = s3.complete_multipart_upload(Bucket="b-data", Key="mp", UploadId=up["UploadId"],
                                            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
        self.assertEqual(done["Bucket"], "b-data")
        self.assertEqual(body(direct_b.get_object(Bucket="real-b-data", Key="mp")), b"p" * 1000)

    def test_errors_about_a_renamed_bucket_name_the_client_bucket(self):
        for call in (lambda: s3.list_objects_v2(Bucket="b-missing"), lambda: s3.get_object(Bucket="b-missing", Key="k")):
            with self.assertRaises(ClientError) as e:
                call()
            self.assertEqual(harness.error_code(e.exception), ("NoSuchBucket", 404))
            self.assertEqual(e.exception.response["Error"].get("BucketName"), "b-missing")

    def test_list_buckets_merges_backends_under_client_names(self):
        names = sorted(b["Name"] for b in s3.list_buckets()["Buckets"])
        # b-data and shadowed are origin b's real-b-data; origin a's own "shadowed" is hidden behind the
        # [[bucket]] of that name; b-only-unlisted is reachable by no client name, so it is not listed.
        self.assertEqual(names, ["b-data", "frozen", "plain", "shadowed", "uncached"])
        out = harness.aws(granary.url, "s3", "ls").stdout
        self.assertIn("b-data", out)
        self.assertNotIn("real-b-data", out)

    def test_unlisted_bucket_on_the_default_backend(self):
        s3.create_bucket(Bucket="made-through-granary")
        s3.put_object(Bucket="made-through-granary", Key="k", Body=b"v")
        self.assertEqual(body(direct_a.get_object(Bucket="made-through-granary", Key="k")), b"v")


class Copies(unittest.TestCase):
    def test_copy_within_a_backend_uses_its_bucket_names(self):
        s3.put_object(Bucket="b-data", Key="c/src", Body=b"server-side")
        s3.copy_object(Bucket="shadowed", Key="c/dst", CopySource={"Bucket": "b-data", "Key": "c/src"})
        self.assertEqual(body(direct_b.get_object(Bucket="real-b-data", Key="c/dst")), b"server-side")

    def test_copy_across_backends_reads_through_granary(self):
        s3.put_object(Bucket="b-data", Key="x/src", Body=b"crosses backends" * 1000, ContentType="text/x-src",
                      Metadata={"origin": "b"})
        r = s3.copy_object(Bucket="plain", Key="x/copied", CopySource={"Bucket": "b-data", "Key": "x/src"})
        self.assertTrue(r["CopyObjectResult"]["ETag"])
        got = direct_a.get_object(Bucket="plain", Key="x/copied")
        self.assertEqual(body(got), b"crosses backends" * 1000)
        self.assertEqual(got["ContentType"], "text/x-src")
        self.assertEqual(got["Metadata"], {"origin": "b"})
        s3.copy_object(Bucket="plain", Key="x/replaced", CopySource={"Bucket": "b-data", "Key": "x/src"},
                       MetadataDirective="REPLACE", ContentType="text/x-new", Metadata={"fresh": "yes"})
        got = direct_a.get_object(Bucket="plain", Key="x/replaced")
        self.assertEqual((got["ContentType"], got["Metadata"]), ("text/x-new", {"fresh": "yes"}))
        with self.assertRaises(ClientError) as e:
            s3.copy_object(Bucket="plain", Key="x/never", CopySource={"Bucket": "b-data", "Key": "x/src"},
                           CopySourceIfMatch='"00000000000000000000000000000000"')
        self.assertEqual(harness.error_code(e.exception), ("PreconditionFailed", 412))
        with self.assertRaises(ClientError) as e:
            s3.copy_object(Bucket="plain", Key="x/never", CopySource={"Bucket": "b-data", "Key": "x/missing"})
        self.assertEqual(harness.error_code(e.exception), ("NoSuchKey", 404))
        harness.aws(granary.url, "s3", "cp", "s3://b-data/x/src", "s3://plain/x/by-cli")
        self.assertEqual(body(direct_a.get_object(Bucket="plain", Key="x/by-cli")), b"crosses backends" * 1000)

    def test_upload_part_copy_across_backends(self):
        src = bytes(range(256)) * (24 << 10)  # 6 MiB
        s3.put_object(Bucket="b-data", Key="x/parts-src", Body=src)
        up = s3.create_multipart_upload(Bucket="plain", Key="x/assembled")
        parts = []
        for n, (first, last) in enumerate(((0, (5 << 20) - 1), (5 << 20, len(src) - 1)), start=1):
            r = s3.upload_part_copy(Bucket="plain", Key="x/assembled", UploadId=up["UploadId"], PartNumber=n,
                                    CopySource={"Bucket": "b-data", "Key": "x/parts-src"},
                                    CopySourceRange="bytes=%d-%d" % (first, last))
            parts.append({"PartNumber": n, "ETag": r["CopyPartResult"]["ETag"]})
        s3.complete_multipart_upload(Bucket="plain", Key="x/assembled", UploadId=up["UploadId"],
                                     MultipartUpload={"Parts": parts})
        self.assertEqual(body(direct_a.get_object(Bucket="plain", Key="x/assembled")), src)


class PerBucketCachePolicy(unittest.TestCase):
    def test_ttl_zero_revalidates_every_read(self):
        direct_a.put_object(Bucket="plain", Key="ttl0", Body=b"old bytes")
        self.assertEqual(body(s3.get_object(Bucket="plain", Key="ttl0")), b"old bytes")
        direct_a.put_object(Bucket="plain", Key="ttl0", Body=b"new bytes!")
        self.assertEqual(body(s3.get_object(Bucket="plain", Key="ttl0")), b"new bytes!")

    def test_ttl_forever_never_asks_the_backend_again(self):
        direct_a.put_object(Bucket="frozen", Key="f", Body=b"immutable v1")
        self.assertEqual(body(s3.get_object(Bucket="frozen", Key="f")), b"immutable v1")
        direct_a.put_object(Bucket="frozen", Key="f", Body=b"changed behind granary")
        r = s3.get_object(Bucket="frozen", Key="f")
        self.assertEqual(body(r), b"immutable v1")
        self.assertEqual(r["ResponseMetadata"]["HTTPHeaders"]["x-granary-cache"], "hit")
        # A write through Granary still invalidates, whatever the TTL.
        s3.put_object(Bucket="frozen", Key="f", Body=b"immutable v2")
        self.assertEqual(body(s3.get_object(Bucket="frozen", Key="f")), b"immutable v2")

    def test_cache_off_bucket_always_goes_to_the_backend(self):
        direct_a.put_object(Bucket="uncached", Key="u", Body=b"one")
        for _ in range(2):
            r = s3.get_object(Bucket="uncached", Key="u")
            self.assertEqual(body(r), b"one")
            self.assertEqual(r["ResponseMetadata"]["HTTPHeaders"]["x-granary-cache"], "bypass")
        # The same reads on a cached bucket: the second one's bytes come from the cache.
        direct_a.put_object(Bucket="plain", Key="u", Body=b"one")
        s3.get_object(Bucket="plain", Key="u")["Body"].read()
        r = s3.get_object(Bucket="plain", Key="u")
        self.assertEqual(body(r), b"one")
        self.assertEqual(r["ResponseMetadata"]["HTTPHeaders"]["x-granary-cache"], "hit")


if __name__ == "__main__":
    unittest.main()

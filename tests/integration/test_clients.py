"""Real clients through Granary against the origin (s3rver or RGW): buckets, objects of every size class, ranges, listings,
odd keys, metadata, errors, presigned URLs, virtual-hosted addressing."""
import concurrent.futures
import hashlib
import os
import socket
import subprocess
import tempfile
import unittest
import urllib.parse

from botocore.exceptions import ClientError

import harness

origin = granary = s3 = None
BUCKET = "clients-bucket"
ODD_KEYS = ["with space.txt", "plus+sign", "per%cent", "unicodé/日本語/ключ", "a//b", "tilde~and(parens)!*'",
            "question?mark&amp=eq", "trailing-slash/"]


def setUpModule():
    global origin, granary, s3
    origin = harness.Origin()
    granary = harness.Granary(origin.url, extra=["--domain", "s3.granary.test"])
    s3 = harness.boto3_client(granary.url)
    s3.create_bucket(Bucket=BUCKET)


def tearDownModule():
    granary.stop()
    origin.stop()


def tmpfile(data):
    f = tempfile.NamedTemporaryFile(delete=False)
    f.write(data)
    f.close()
    return f.name


class Buckets(unittest.TestCase):
    def test_create_head_list_delete_with_aws_cli_and_boto3(self):
        harness.aws(granary.url, "s3", "mb", "s3://cli-made-bucket")
        s3.head_bucket(Bucket="cli-made-bucket")
        names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
        self.assertIn("cli-made-bucket", names)
        self.assertIn(BUCKET, names)
        out = harness.aws(granary.url, "s3", "ls").stdout
        self.assertIn("cli-made-bucket", out)
        harness.aws(granary.url, "s3", "rb", "s3://cli-made-bucket")
        with self.assertRaises(ClientError) as e:
            s3.head_bucket(Bucket="cli-made-bucket")
        self.assertEqual(harness.error_code(e.exception)[1], 404)

    def test_missing_bucket_is_nosuchbucket(self):
        with self.assertRaises(ClientError) as e:
            s3.get_object(Bucket="no-such-bucket-here", Key="k")
        self.assertEqual(harness.error_code(e.exception), ("NoSuchBucket", 404))
        with self.assertRaises(ClientError) as e:
            s3.list_objects_v2(Bucket="no-such-bucket-here")
        self.assertEqual(harness.error_code(e.exception), ("NoSuchBucket", 404))


class Objects(unittest.TestCase):
    def roundtrip_cli(self, data, key):
        src = tmpfile(data)
        dst = src + ".out"
        harness.aws(granary.url, "s3", "cp", src, "s3://%s/%s" % (BUCKET, key))
        harness.aws(granary.url, "s3", "cp", "s3://%s/%s" % (BUCKET, key), dst)
        with open(dst, "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).hexdigest(), hashlib.sha256(data).hexdigest())
        os.unlink(src)
        os.unlink(dst)

    def test_sizes_with_aws_s3_cp(self):
        for size in (0, 1, 10 << 20):
            with self.subTest(size=size):
                self.roundtrip_cli(os.urandom(size), "cp/size-%d" % size)

    def test_sizes_with_s3api_put_object(self):
        for size in (0, 1, 10 << 20):
            with self.subTest(size=size):
                data = os.urandom(size)
                src = tmpfile(data)
                key = "s3api/size-%d" % size
                out = harness.aws(granary.url, "s3api", "put-object", "--bucket", BUCKET, "--key", key, "--body", src).stdout
                self.assertIn('"%s' % hashlib.md5(data).hexdigest(), out.replace('\\"', '"'))
                harness.aws(granary.url, "s3api", "get-object", "--bucket", BUCKET, "--key", key, src + ".out")
                with open(src + ".out", "rb") as f:
                    self.assertEqual(f.read(), data)

    def test_sizes_with_boto3(self):
        for size in (0, 1, 10 << 20):
            with self.subTest(size=size):
                data = os.urandom(size)
                put = s3.put_object(Bucket=BUCKET, Key="boto/%d" % size, Body=data)
                self.assertEqual(put["ETag"], '"%s"' % hashlib.md5(data).hexdigest())
                got = s3.get_object(Bucket=BUCKET, Key="boto/%d" % size)
                self.assertEqual(got["Body"].read(), data)
                self.assertEqual(got["ContentLength"], size)

    def test_head_passes_metadata_through(self):
        s3.put_object(Bucket=BUCKET, Key="meta", Body=b"x" * 10, ContentType="text/x-granary",
                      Metadata={"color": "blue", "shape": "round"})
        h = s3.head_object(Bucket=BUCKET, Key="meta")
        self.assertEqual(h["ContentLength"], 10)
        self.assertEqual(h["ContentType"], "text/x-granary")
        self.assertEqual(h["Metadata"], {"color": "blue", "shape": "round"})
        self.assertEqual(h["ETag"], '"%s"' % hashlib.md5(b"x" * 10).hexdigest())
        self.assertIn("LastModified", h)
        self.assertTrue(h["ResponseMetadata"]["HTTPHeaders"].get("x-amz-request-id"))

    def test_delete_then_nosuchkey(self):
        s3.put_object(Bucket=BUCKET, Key="doomed", Body=b"bye")
        s3.delete_object(Bucket=BUCKET, Key="doomed")
        with self.assertRaises(ClientError) as e:
            s3.get_object(Bucket=BUCKET, Key="doomed")
        self.assertEqual(harness.error_code(e.exception), ("NoSuchKey", 404))
        with self.assertRaises(ClientError) as e:
            s3.head_object(Bucket=BUCKET, Key="doomed")
        self.assertEqual(harness.error_code(e.exception)[1], 404)
        harness.aws(granary.url, "s3", "rm", "s3://%s/cp/size-1" % BUCKET, check=False)

    def test_odd_keys_roundtrip(self):
        for key in ODD_KEYS:
            with self.subTest(key=key):
                data = ("payload of " + key).encode()
                s3.put_object(Bucket=BUCKET, Key=key, Body=data)
                self.assertEqual(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read(), data)
                self.assertEqual(s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"], len(data))

    def test_odd_keys_with_aws_cli(self):
        for key in ["cli dir/with space", "cli+plus/per%cent", "cli/ünï", "cli//double"]:
            with self.subTest(key=key):
                self.roundtrip_cli(b"cli " + key.encode(), key)

    def test_odd_keys_are_listed_as_written(self):
        prefix = "oddlist/"
        keys = [prefix + k for k in ["sp ace", "pl+us", "pe%rc", "ünï"]]
        for k in keys:
            s3.put_object(Bucket=BUCKET, Key=k, Body=b"1")
        for enc in ({}, {"EncodingType": "url"}):
            with self.subTest(enc=enc):
                r = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix, **enc)
                got = [o["Key"] for o in r["Contents"]]
                # Asked for by the caller, encoding-type=url is left to the caller to undo (botocore decodes only
                # what it asked for itself). s3rver ignores it and answers plain keys; RGW encodes them, as S3 does.
                if r.get("EncodingType") == "url":
                    got = [urllib.parse.unquote(k) for k in got]
                self.assertEqual(sorted(got), sorted(keys))


class Ranges(unittest.TestCase):
    data = bytes(range(256)) * 4096  # 1 MiB with position-dependent bytes

    @classmethod
    def setUpClass(cls):
        s3.put_object(Bucket=BUCKET, Key="ranged", Body=cls.data)

    def get(self, rng):
        r = s3.get_object(Bucket=BUCKET, Key="ranged", Range=rng)
        return r, r["Body"].read()

    def test_first_middle_last_suffix(self):
        n = len(self.data)
        cases = {"bytes=0-0": (0, 1), "bytes=1000-1999": (1000, 1000), "bytes=%d-%d" % (n - 1, n - 1): (n - 1, 1),
                 "bytes=-100": (n - 100, 100), "bytes=%d-" % (n - 10): (n - 10, 10),
                 "bytes=%d-%d" % (n - 5, n + 100): (n - 5, 5)}
        for rng, (off, length) in cases.items():
            with self.subTest(rng=rng):
                r, body = self.get(rng)
                self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 206)
                self.assertEqual(body, self.data[off:off + length])
                self.assertEqual(r["ContentRange"], "bytes %d-%d/%d" % (off, off + length - 1, n))

    def test_past_the_end_is_416(self):
        with self.assertRaises(ClientError) as e:
            self.get("bytes=%d-" % (len(self.data) + 10))
        self.assertEqual(harness.error_code(e.exception), ("InvalidRange", 416))


class Listing(unittest.TestCase):
    prefix = "many/"

    @classmethod
    def setUpClass(cls):
        keys = ["%s%s/%04d" % (cls.prefix, "even" if i % 2 == 0 else "odd", i) for i in range(1200)]
        with concurrent.futures.ThreadPoolExecutor(16) as ex:
            list(ex.map(lambda k: s3.put_object(Bucket=BUCKET, Key=k, Body=k.encode()), keys))
        cls.keys = sorted(keys)

    def test_v2_pagination_covers_all_1200_keys(self):
        got, token, pages = [], None, 0
        while True:
            kw = {"ContinuationToken": token} if token else {}
            r = s3.list_objects_v2(Bucket=BUCKET, Prefix=self.prefix, MaxKeys=250, **kw)
            got += [o["Key"] for o in r.get("Contents", [])]
            pages += 1
            if not r["IsTruncated"]:
                break
            token = r["NextContinuationToken"]
        self.assertEqual(got, self.keys)
        self.assertEqual(pages, 5)

    def test_v2_paginator_default_page_size(self):
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=self.prefix)
        self.assertEqual([o["Key"] for p in pages for o in p.get("Contents", [])], self.keys)

    def test_v1_marker_pagination(self):
        got, marker = [], ""
        while True:
            r = s3.list_objects(Bucket=BUCKET, Prefix=self.prefix, Marker=marker, MaxKeys=500)
            got += [o["Key"] for o in r.get("Contents", [])]
            if not r["IsTruncated"]:
                break
            marker = got[-1]
        self.assertEqual(got, self.keys)

    def test_delimiter_groups_common_prefixes(self):
        r = s3.list_objects_v2(Bucket=BUCKET, Prefix=self.prefix, Delimiter="/")
        self.assertEqual(sorted(p["Prefix"] for p in r["CommonPrefixes"]), [self.prefix + "even/", self.prefix + "odd/"])
        self.assertNotIn("Contents", r)
        r1 = s3.list_objects(Bucket=BUCKET, Prefix=self.prefix, Delimiter="/")
        self.assertEqual(len(r1["CommonPrefixes"]), 2)

    def test_start_after(self):
        r = s3.list_objects_v2(Bucket=BUCKET, Prefix=self.prefix, StartAfter=self.keys[1100])
        self.assertEqual([o["Key"] for o in r["Contents"]], self.keys[1101:])

    def test_aws_cli_ls_recursive(self):
        out = harness.aws(granary.url, "s3", "ls", "--recursive", "s3://%s/%s" % (BUCKET, self.prefix)).stdout
        self.assertEqual(len(out.strip().splitlines()), 1200)


class Presigned(unittest.TestCase):
    def test_presigned_get_works_with_curl(self):
        s3.put_object(Bucket=BUCKET, Key="pre signed/ü+x", Body=b"presigned payload")
        url = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "pre signed/ü+x"}, ExpiresIn=300)
        out = subprocess.run(["curl", "-sS", "-f", url], capture_output=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout, b"presigned payload")

    def test_presigned_put_works_with_curl(self):
        url = s3.generate_presigned_url("put_object", Params={"Bucket": BUCKET, "Key": "pre-put"}, ExpiresIn=300)
        src = tmpfile(b"put via presigned url")
        out = subprocess.run(["curl", "-sS", "-f", "-T", src, url], capture_output=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(s3.get_object(Bucket=BUCKET, Key="pre-put")["Body"].read(), b"put via presigned url")

    def test_tampered_presigned_url_is_refused(self):
        url = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "meta"}, ExpiresIn=300)
        out = subprocess.run(["curl", "-sS", "-w", "%{http_code}", url.replace("/meta?", "/meta2?")],
                             capture_output=True, text=True, timeout=30)
        self.assertTrue(out.stdout.endswith("403"), out.stdout)
        self.assertIn("<Code>SignatureDoesNotMatch</Code>", out.stdout)


class VirtualHosted(unittest.TestCase):
    """boto3 in virtual-hosted style against --domain s3.granary.test; the test resolves that domain's
    names to 127.0.0.1 inside this process only."""

    def setUp(self):
        self.real = socket.getaddrinfo

        def fake(host, *a, **kw):
            if isinstance(host, str) and host.endswith("s3.granary.test"):
                host = "127.0.0.1"
            return self.real(host, *a, **kw)
        socket.getaddrinfo = fake

    def tearDown(self):
        socket.getaddrinfo = self.real

    def test_virtual_hosted_put_get_list(self):
        vs3 = harness.boto3_client("http://s3.granary.test:%d" % granary.port, addressing="virtual")
        vs3.put_object(Bucket=BUCKET, Key="vhost/a b", Body=b"virtual")
        self.assertEqual(vs3.get_object(Bucket=BUCKET, Key="vhost/a b")["Body"].read(), b"virtual")
        self.assertEqual([o["Key"] for o in vs3.list_objects_v2(Bucket=BUCKET, Prefix="vhost/")["Contents"]],
                         ["vhost/a b"])
        # And the object is the same one path-style clients see.
        self.assertEqual(s3.get_object(Bucket=BUCKET, Key="vhost/a b")["Body"].read(), b"virtual")
        # (the text access log escapes spaces in values: one field per key=value)
        # (the line is written once the response has gone out: wait for it)
        self.assertGreaterEqual(granary.wait_for_log("bucket=%s key=vhost/a\\x20b" % BUCKET), 1)


if __name__ == "__main__":
    unittest.main()

"""Every mainstream client through Granary, each for the corner of the S3 API it uses: the aws CLI (100 MiB
multipart cp, sync, s3api copy / tagging / multi-delete), boto3 (multipart upload_file, copy,
delete_objects, conditional GETs, presigned PUT), s3cmd and rclone from Debian, and from npm the AWS SDK
for JavaScript v3 (trailing checksums by default) and the MinIO JavaScript client. Real s3rver behind,
Granary with its cache on."""
import datetime
import hashlib
import http.client
import os
import shutil
import subprocess
import tempfile
import time
import unittest
import urllib.parse

from botocore.exceptions import ClientError

import harness

BUCKET = "sdks-bucket"
JS = os.path.join(harness.SOURCE_DIR, "tests", "integration", "js")
origin = granary = s3 = direct = cache_dir = None


def setUpModule():
    global origin, granary, s3, direct, cache_dir
    origin = harness.Origin()
    cache_dir = tempfile.mkdtemp(prefix="granary-cache-")
    granary = harness.Granary(origin.url, extra=["--cache-dir", "%s:512MiB" % cache_dir, "--metadata-ttl", "0"])
    s3 = harness.boto3_client(granary.url)
    direct = harness.boto3_client(origin.url, key=harness.ORIGIN_KEY)
    s3.create_bucket(Bucket=BUCKET)


def tearDownModule():
    granary.stop()
    origin.stop()
    shutil.rmtree(cache_dir, ignore_errors=True)


def payload(size, seed):
    block = hashlib.sha256(b"sdk%d" % seed).digest() * 2048
    return (block * (size // len(block) + 1))[:size]


def md5_file(path):
    return harness.file_digest(path, "md5")


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    # An hour old: S3's LastModified has whole seconds, and sync re-uploads a file whose mtime is later
    # than its object's (one written in the same second as its upload would be).
    os.utime(path, (time.time() - 3600, time.time() - 3600))


def multipart_uploads_completed(key):
    """CompleteMultipartUpload requests Granary served for `key` (from its access log, which is written
    after the response went out: the line may land a moment after the client has its answer)."""
    return granary.wait_for_log("op=CompleteMultipartUpload method=POST bucket=%s key=%s status=200" % (BUCKET, key))


def run(cmd, timeout=600, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if p.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s\n%s" % (" ".join(cmd), p.returncode, p.stdout[-3000:], p.stderr[-3000:]))
    return p


class AwsCli(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="granary-cli-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_cp_100_mib_uses_multipart_and_round_trips(self):
        src = os.path.join(self.tmp, "big.bin")
        write(src, payload(100 << 20, 1))
        harness.aws(granary.url, "s3", "cp", src, "s3://%s/cli/big.bin" % BUCKET)
        self.assertEqual(multipart_uploads_completed("cli/big.bin"), 1, "the CLI uploads 100 MiB in parts")
        dst = os.path.join(self.tmp, "back.bin")
        harness.aws(granary.url, "s3", "cp", "s3://%s/cli/big.bin" % BUCKET, dst)
        self.assertEqual(md5_file(dst), md5_file(src))

    def test_sync_up_and_down(self):
        up = os.path.join(self.tmp, "up")
        for i in range(5):
            write(os.path.join(up, "d%d" % (i % 2), "f%d.txt" % i), payload(1000 * (i + 1), i))
        harness.aws(granary.url, "s3", "sync", up, "s3://%s/sync/" % BUCKET)
        down = os.path.join(self.tmp, "down")
        harness.aws(granary.url, "s3", "sync", "s3://%s/sync/" % BUCKET, down)
        for i in range(5):
            rel = os.path.join("d%d" % (i % 2), "f%d.txt" % i)
            self.assertEqual(md5_file(os.path.join(down, rel)), md5_file(os.path.join(up, rel)))
        again = harness.aws(granary.url, "s3", "sync", up, "s3://%s/sync/" % BUCKET).stdout
        self.assertNotIn("upload:", again, "a second sync finds nothing to do")

    def test_s3api_copy_tagging_multi_delete(self):
        s3.put_object(Bucket=BUCKET, Key="api/src", Body=b"source bytes", Metadata={"color": "blue"})
        harness.aws(granary.url, "s3api", "copy-object", "--bucket", BUCKET, "--key", "api/dst",
                    "--copy-source", "%s/api/src" % BUCKET)
        r = s3.get_object(Bucket=BUCKET, Key="api/dst")
        self.assertEqual(r["Body"].read(), b"source bytes")
        self.assertEqual(r["Metadata"], {"color": "blue"})
        harness.aws(granary.url, "s3api", "put-object-tagging", "--bucket", BUCKET, "--key", "api/dst",
                    "--tagging", "TagSet=[{Key=team,Value=ml}]")
        out = harness.aws(granary.url, "s3api", "get-object-tagging", "--bucket", BUCKET, "--key", "api/dst").stdout
        self.assertIn('"Value": "ml"', out)
        out = harness.aws(granary.url, "s3api", "delete-objects", "--bucket", BUCKET, "--delete",
                          "Objects=[{Key=api/src},{Key=api/dst}]").stdout
        self.assertIn("api/src", out)
        self.assertNotIn("Contents", s3.list_objects_v2(Bucket=BUCKET, Prefix="api/"))


class Boto3(unittest.TestCase):
    def test_upload_file_multipart_and_download(self):
        from boto3.s3.transfer import TransferConfig
        tmp = tempfile.mkdtemp()
        try:
            src, dst = os.path.join(tmp, "a"), os.path.join(tmp, "b")
            write(src, payload(20 << 20, 2))
            cfg = TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20)
            s3.upload_file(src, BUCKET, "boto/mp.bin", Config=cfg)
            self.assertEqual(multipart_uploads_completed("boto/mp.bin"), 1)
            s3.download_file(BUCKET, "boto/mp.bin", dst, Config=cfg)
            self.assertEqual(md5_file(dst), md5_file(src))
        finally:
            shutil.rmtree(tmp)

    def test_copy_and_delete_objects(self):
        s3.put_object(Bucket=BUCKET, Key="boto/c1", Body=b"copy me")
        s3.copy({"Bucket": BUCKET, "Key": "boto/c1"}, BUCKET, "boto/c2")
        self.assertEqual(s3.get_object(Bucket=BUCKET, Key="boto/c2")["Body"].read(), b"copy me")
        r = s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": "boto/c1"}, {"Key": "boto/c2"}], "Quiet": True})
        self.assertEqual(r.get("Errors", []), [])
        for key in ("boto/c1", "boto/c2"):
            with self.assertRaises(ClientError):
                s3.head_object(Bucket=BUCKET, Key=key)

    def test_conditional_gets(self):
        s3.put_object(Bucket=BUCKET, Key="boto/cond", Body=b"conditional")
        head = s3.head_object(Bucket=BUCKET, Key="boto/cond")
        etag, modified = head["ETag"], head["LastModified"]
        self.assertEqual(s3.get_object(Bucket=BUCKET, Key="boto/cond", IfMatch=etag)["Body"].read(), b"conditional")
        for kw, status in (({"IfNoneMatch": etag}, 304), ({"IfMatch": '"0000"'}, 412),
                           ({"IfModifiedSince": modified + datetime.timedelta(seconds=5)}, 304),
                           ({"IfUnmodifiedSince": modified - datetime.timedelta(days=1)}, 412)):
            with self.subTest(kw=list(kw)):
                with self.assertRaises(ClientError) as e:
                    s3.get_object(Bucket=BUCKET, Key="boto/cond", **kw)
                self.assertEqual(harness.error_code(e.exception)[1], status)
        got = s3.get_object(Bucket=BUCKET, Key="boto/cond", IfModifiedSince=modified - datetime.timedelta(days=1))
        self.assertEqual(got["Body"].read(), b"conditional")

    def test_multipart_low_level_and_part_order(self):
        up = s3.create_multipart_upload(Bucket=BUCKET, Key="boto/parts")
        data = [payload(5 << 20, 30), payload(1000, 31)]
        parts = [{"PartNumber": n, "ETag": s3.upload_part(Bucket=BUCKET, Key="boto/parts", UploadId=up["UploadId"],
                                                          PartNumber=n, Body=d)["ETag"]}
                 for n, d in enumerate(data, start=1)]
        # (ListParts, ListMultipartUploads and AbortMultipartUpload are forwarded as they are; s3rver
        # implements none of them and answers MethodNotAllowed / NotImplemented.)
        with self.assertRaises(ClientError) as e:
            s3.complete_multipart_upload(Bucket=BUCKET, Key="boto/parts", UploadId=up["UploadId"],
                                         MultipartUpload={"Parts": list(reversed(parts))})
        self.assertEqual(harness.error_code(e.exception), ("InvalidPartOrder", 400))
        # Parts Granary saw uploaded are checked as S3 checks them (s3rver checks neither).
        wrong = [dict(parts[0], ETag='"%s"' % ("0" * 32)), parts[1]]
        with self.assertRaises(ClientError) as e:
            s3.complete_multipart_upload(Bucket=BUCKET, Key="boto/parts", UploadId=up["UploadId"],
                                         MultipartUpload={"Parts": wrong})
        self.assertEqual(harness.error_code(e.exception), ("InvalidPart", 400))
        small = s3.create_multipart_upload(Bucket=BUCKET, Key="boto/small-parts")
        small_parts = [{"PartNumber": n, "ETag": s3.upload_part(Bucket=BUCKET, Key="boto/small-parts",
                                                                UploadId=small["UploadId"], PartNumber=n,
                                                                Body=b"tiny %d" % n)["ETag"]} for n in (1, 2)]
        with self.assertRaises(ClientError) as e:
            s3.complete_multipart_upload(Bucket=BUCKET, Key="boto/small-parts", UploadId=small["UploadId"],
                                         MultipartUpload={"Parts": small_parts})
        self.assertEqual(harness.error_code(e.exception), ("EntityTooSmall", 400))
        # One (last) part may be small. S3 completes any ascending subset of the uploaded parts; RGW 16.2 only
        # all of them (else InvalidPart, "total parts mismatch": an RGW quirk), so there it starts over with one.
        if harness.ON_RGW:
            s3.abort_multipart_upload(Bucket=BUCKET, Key="boto/small-parts", UploadId=small["UploadId"])
            small = s3.create_multipart_upload(Bucket=BUCKET, Key="boto/small-parts")
            keep = [{"PartNumber": 1, "ETag": s3.upload_part(Bucket=BUCKET, Key="boto/small-parts",
                                                             UploadId=small["UploadId"], PartNumber=1,
                                                             Body=b"tiny 2")["ETag"]}]
        else:
            keep = small_parts[1:]
        s3.complete_multipart_upload(Bucket=BUCKET, Key="boto/small-parts", UploadId=small["UploadId"],
                                     MultipartUpload={"Parts": keep})
        s3.complete_multipart_upload(Bucket=BUCKET, Key="boto/parts", UploadId=up["UploadId"],
                                     MultipartUpload={"Parts": parts})
        self.assertEqual(s3.get_object(Bucket=BUCKET, Key="boto/parts")["Body"].read(), data[0] + data[1])

    def test_presigned_put(self):
        url = urllib.parse.urlsplit(
            s3.generate_presigned_url("put_object", Params={"Bucket": BUCKET, "Key": "boto/presigned"}, ExpiresIn=300))
        conn = http.client.HTTPConnection(url.hostname, url.port)
        conn.request("PUT", url.path + "?" + url.query, body=b"via presigned url")  # no Content-Type: it is signed
        self.assertEqual(conn.getresponse().status, 200)
        conn.close()
        self.assertEqual(direct.get_object(Bucket=BUCKET, Key="boto/presigned")["Body"].read(), b"via presigned url")


class DebianClients(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="granary-clients-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    @unittest.skipUnless(shutil.which("s3cmd"), "s3cmd is not installed (scripts/deps installs it)")
    def test_s3cmd(self):
        cfg = os.path.join(self.tmp, "s3cfg")
        host = "127.0.0.1:%d" % granary.port
        with open(cfg, "w") as f:
            f.write("[default]\naccess_key = %s\nsecret_key = %s\nhost_base = %s\nhost_bucket = %s\n"
                    "use_https = False\nsignature_v2 = False\nbucket_location = us-east-1\n"
                    "multipart_chunk_size_mb = 5\n" % (harness.CLIENT_KEY[0], harness.CLIENT_KEY[1], host, host))
        base = ["s3cmd", "-c", cfg, "--no-progress"]
        src = os.path.join(self.tmp, "f.bin")
        write(src, payload(12 << 20, 3))  # over the 5 MiB chunk size: multipart
        run(base + ["put", src, "s3://%s/s3cmd/f.bin" % BUCKET])
        self.assertIn("s3cmd/f.bin", run(base + ["ls", "s3://%s/s3cmd/" % BUCKET]).stdout)
        dst = os.path.join(self.tmp, "back.bin")
        run(base + ["get", "s3://%s/s3cmd/f.bin" % BUCKET, dst])
        self.assertEqual(md5_file(dst), md5_file(src))
        run(base + ["del", "s3://%s/s3cmd/f.bin" % BUCKET])
        self.assertNotIn("s3cmd/f.bin", run(base + ["ls", "s3://%s/s3cmd/" % BUCKET]).stdout)

    @unittest.skipUnless(shutil.which("rclone"), "rclone is not installed (scripts/deps installs it)")
    def test_rclone(self):
        env = dict(os.environ, RCLONE_CONFIG_G_TYPE="s3", RCLONE_CONFIG_G_PROVIDER="Other",
                   RCLONE_CONFIG_G_ENDPOINT=granary.url, RCLONE_CONFIG_G_ACCESS_KEY_ID=harness.CLIENT_KEY[0],
                   RCLONE_CONFIG_G_SECRET_ACCESS_KEY=harness.CLIENT_KEY[1], RCLONE_CONFIG_G_REGION="us-east-1",
                   RCLONE_CONFIG_G_FORCE_PATH_STYLE="true", RCLONE_CONFIG=os.path.join(self.tmp, "none.conf"))
        env.pop("AWS_CA_BUNDLE", None)  # rclone refuses a CA bundle on a plain-http endpoint
        up = os.path.join(self.tmp, "up")
        for i in range(4):
            write(os.path.join(up, "sub", "r%d.bin" % i), payload((i + 1) * 300_000, 10 + i))
        write(os.path.join(up, "big.bin"), payload(30 << 20, 20))  # over rclone's 20 MiB cutoff: multipart
        run(["rclone", "copy", up, "g:%s/rclone" % BUCKET], env=env)
        run(["rclone", "check", up, "g:%s/rclone" % BUCKET], env=env)
        down = os.path.join(self.tmp, "down")
        run(["rclone", "copy", "g:%s/rclone" % BUCKET, down], env=env)
        for rel in ["big.bin"] + [os.path.join("sub", "r%d.bin" % i) for i in range(4)]:
            self.assertEqual(md5_file(os.path.join(down, rel)), md5_file(os.path.join(up, rel)), rel)
        run(["rclone", "purge", "g:%s/rclone" % BUCKET], env=env)
        self.assertNotIn("Contents", s3.list_objects_v2(Bucket=BUCKET, Prefix="rclone/"))


class JavaScript(unittest.TestCase):
    def node(self, script, *args):
        p = run(["node", os.path.join(JS, script)] + list(args), cwd=JS)
        self.assertIn("ok:", p.stdout)

    def test_aws_sdk_v3(self):
        self.node("sdk_v3.mjs", granary.url, harness.CLIENT_KEY[0], harness.CLIENT_KEY[1], "sdk-v3-bucket")

    def test_minio_js(self):
        self.node("minio.mjs", "127.0.0.1", str(granary.port), harness.CLIENT_KEY[0], harness.CLIENT_KEY[1],
                  "minio-js-bucket")


if __name__ == "__main__":
    unittest.main()

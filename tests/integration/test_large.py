"""200 MiB objects through Granary, byte-identical both ways, with Granary's RSS sampled throughout:
bodies stream through bounded buffers, so memory stays far below the object size."""
import hashlib
import os
import tempfile
import threading
import time
import unittest

import harness

origin = granary = None
BUCKET = "large-bucket"
SIZE = 200 << 20
# 150 MiB for the release binary (it peaks near 14 MiB). Under ASan, RSS also holds shadow memory, fake
# stacks and the quarantine of freed blocks (scripts/test caps it at 32 MiB): the single PUT+GET peaks at
# 200-206 MiB alone and reached 258 MiB with ctest -j2 beside it on 2 cores. 320 MiB still fails if the
# 200 MiB object were held whole (the object, its shadow and that baseline: over 420 MiB).
RSS_LIMIT_KIB = (320 if os.environ.get("GRANARY_SANITIZED") else 150) * 1024


def setUpModule():
    global origin, granary
    origin = harness.Origin(large=True)
    granary = harness.Granary(origin.url)
    harness.boto3_client(granary.url).create_bucket(Bucket=BUCKET)


def tearDownModule():
    granary.stop()
    origin.stop()


class RssSampler:
    def __init__(self, g):
        self.g, self.peak, self.stop_flag = g, 0, False
        self.t = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop_flag:
            self.peak = max(self.peak, self.g.rss_kib())
            time.sleep(0.02)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *a):
        self.stop_flag = True
        self.t.join()


def sha256_file(path):
    return harness.file_digest(path)


class Large(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="granary-large-")
        cls.src = os.path.join(cls.dir, "src.bin")
        with open(cls.src, "wb") as f:
            for _ in range(SIZE >> 20):
                f.write(os.urandom(1 << 20))
        cls.digest = sha256_file(cls.src)

    def check_download(self, key, how):
        dst = os.path.join(self.dir, key.replace("/", "_") + ".out")
        how(key, dst)
        self.assertEqual(os.path.getsize(dst), SIZE)
        self.assertEqual(sha256_file(dst), self.digest)
        os.unlink(dst)

    def test_aws_s3_cp_200_mib_both_ways(self):
        with RssSampler(granary) as rss:
            harness.aws(granary.url, "s3", "cp", self.src, "s3://%s/cp/big" % BUCKET)
            self.check_download("cp/big", lambda k, d: harness.aws(granary.url, "s3", "cp", "s3://%s/%s" % (BUCKET, k), d))
        print("\n  aws s3 cp 200 MiB up+down: granary peak RSS %.1f MiB" % (rss.peak / 1024))
        self.assertLess(rss.peak, RSS_LIMIT_KIB)

    def test_single_put_and_get_of_200_mib(self):
        # One PUT of the whole object (no multipart) and one GET: the 5 GiB single-request path.
        with RssSampler(granary) as rss:
            harness.aws(granary.url, "s3api", "put-object", "--bucket", BUCKET, "--key", "single/big", "--body", self.src)
            self.check_download("single/big", lambda k, d: harness.aws(
                granary.url, "s3api", "get-object", "--bucket", BUCKET, "--key", k, d))
        print("\n  single PUT+GET 200 MiB: granary peak RSS %.1f MiB" % (rss.peak / 1024))
        self.assertLess(rss.peak, RSS_LIMIT_KIB)

    def test_boto3_upload_file_and_streaming_get(self):
        s3 = harness.boto3_client(granary.url)
        with RssSampler(granary) as rss:
            s3.upload_file(self.src, BUCKET, "boto/big")  # boto3's managed multipart upload
            body = s3.get_object(Bucket=BUCKET, Key="boto/big")["Body"]
            h, n = hashlib.sha256(), 0
            for block in iter(lambda: body.read(1 << 20), b""):
                h.update(block)
                n += len(block)
        self.assertEqual((n, h.hexdigest()), (SIZE, self.digest))
        self.assertLess(rss.peak, RSS_LIMIT_KIB)


if __name__ == "__main__":
    unittest.main(verbosity=2)

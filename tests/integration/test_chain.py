"""Two Granaries in a row: client -> A -> B -> s3rver. s3rver never checks signatures, but B does:
everything A re-signs (paths, queries, odd keys, bodies) must verify at B."""
import hashlib
import os
import subprocess
import tempfile
import time
import unittest

from botocore.exceptions import ClientError

import harness

origin = front = back = s3 = None
BUCKET = "chain-bucket"
HOP_KEY = ("HOPAK", "hop-secret/with=odd+chars")


def setUpModule():
    global origin, front, back, s3
    origin = harness.Origin()
    back = harness.Granary(origin.url, client_keys=(HOP_KEY,))
    front = harness.Granary(back.url, backend_key=HOP_KEY)
    s3 = harness.boto3_client(front.url)
    s3.create_bucket(Bucket=BUCKET)


def tearDownModule():
    front.stop()
    back.stop()
    origin.stop()


class Chain(unittest.TestCase):
    def test_objects_and_odd_keys(self):
        for key in ["plain", "sp ace/pl+us", "per%cent", "ünï/日本", "a//b", "x~y!'()*", "q?a=b&c"]:
            with self.subTest(key=key):
                data = os.urandom(1000) + key.encode()
                s3.put_object(Bucket=BUCKET, Key=key, Body=data, Metadata={"k": "v"})
                got = s3.get_object(Bucket=BUCKET, Key=key)
                self.assertEqual(got["Body"].read(), data)
                self.assertEqual(got["Metadata"], {"k": "v"})

    def test_list_with_query_parameters(self):
        for i in range(30):
            s3.put_object(Bucket=BUCKET, Key="list/%02d/x y" % i, Body=b"1")
        # s3rver answers a small PUT before its object file exists (it does not wait for the write stream),
        # and its listing skips such keys: under load the last key can be missing for a moment. Wait until
        # the origin itself lists all 30, so what is tested is the paging through both Granarys.
        direct = harness.boto3_client(origin.url, key=harness.ORIGIN_KEY)
        deadline = time.time() + 10
        while time.time() < deadline and direct.list_objects_v2(Bucket=BUCKET, Prefix="list/").get("KeyCount", 0) < 30:
            time.sleep(0.05)
        got = [o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix="list/", PaginationConfig={"PageSize": 7}) for o in p["Contents"]]
        self.assertEqual(len(got), 30)
        r = s3.list_objects(Bucket=BUCKET, Prefix="list/", Delimiter="/", EncodingType="url")
        self.assertEqual(len(r["CommonPrefixes"]), 30)

    def test_ranges_multipart_and_presigned(self):
        data = os.urandom(12 << 20)
        fd, src = tempfile.mkstemp(prefix="granary-chain-")  # suites run in parallel: never a fixed path
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        harness.aws(front.url, "s3", "cp", src, "s3://%s/mp/big" % BUCKET)  # multipart: 8 MiB parts
        self.assertEqual(s3.get_object(Bucket=BUCKET, Key="mp/big", Range="bytes=100-199")["Body"].read(), data[100:200])
        url = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "mp/big"}, ExpiresIn=60)
        out = subprocess.run(["curl", "-sS", "-f", url], capture_output=True, timeout=60)
        self.assertEqual(hashlib.sha256(out.stdout).hexdigest(), hashlib.sha256(data).hexdigest())
        os.unlink(src)

    def test_the_back_granary_really_checks(self):
        bad = harness.boto3_client(back.url, key=(HOP_KEY[0], "not-the-secret"))
        with self.assertRaises(ClientError) as e:
            bad.list_objects_v2(Bucket=BUCKET)
        self.assertEqual(harness.error_code(e.exception), ("SignatureDoesNotMatch", 403))
        # Everything A forwarded verified at B: the only refusal in B's log is the one just provoked.
        self.assertEqual(back.wait_for_log("error=SignatureDoesNotMatch"), 1)
        self.assertEqual(front.log_text().count("error=SignatureDoesNotMatch"), 0)
        self.assertNotIn("not-the-secret", back.log_text())


if __name__ == "__main__":
    unittest.main()

"""Write-back buckets against a real s3rver: PUTs acknowledged from the local spool while the origin is
down, read-your-writes (GET, HEAD, Range, listings, deletes), later writes superseding pending ones,
kill -9 right after 100 acknowledged PUTs then a restart with the origin still down, and the spool
falling back to write-through when full."""
import concurrent.futures
import hashlib
import shutil
import signal
import tempfile
import time
import unittest

from botocore.exceptions import ClientError

import harness

BUCKET = "wb-bucket"
origin = direct = None


def setUpModule():
    global origin, direct
    origin = harness.Origin()
    direct = harness.boto3_client(origin.url, key=harness.ORIGIN_KEY)
    direct.create_bucket(Bucket=BUCKET)


def tearDownModule():
    origin.stop()


def payload(size, seed):
    block = hashlib.sha256(b"wb%d" % seed).digest() * 2048
    return (block * (size // len(block) + 1))[:size]


def md5(b):
    return hashlib.md5(b).hexdigest()


def at_origin(key):
    try:
        return direct.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    except ClientError:
        return None


def wait_until(cond, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.2)
    return cond()


class WriteBack(unittest.TestCase):
    def setUp(self):
        origin.ensure_alive()
        self.spool = tempfile.mkdtemp(prefix="granary-spool-")
        self.cache = tempfile.mkdtemp(prefix="granary-cache-")
        self.started = []

    def tearDown(self):
        origin.ensure_alive()
        for g in self.started:
            if g.proc.poll() is None:
                g.stop()
        shutil.rmtree(self.spool, ignore_errors=True)
        shutil.rmtree(self.cache, ignore_errors=True)

    def granary(self, spool_size="256MiB"):
        cfg = ('[cache]\nwriteback_dir = "%s:%s"\nwriteback_retry_max = "1s"\n\n'
               '[[bucket]]\nname = "%s"\nwrite_mode = "write-back"\n' % (self.spool, spool_size, BUCKET))
        g = harness.Granary(origin.url, config=cfg, extra=["--cache-dir", "%s:128MiB" % self.cache,
                                                           "--admin-listen", "127.0.0.1:0"])
        self.started.append(g)
        return g

    def test_acknowledged_while_the_origin_is_down_then_uploaded(self):
        g = self.granary()
        s3 = harness.boto3_client(g.url)
        origin.kill()
        objs = {"rw/a": payload(1000, 1), "rw/b": payload(3 << 20, 2), "rw/sub/c": b"", "rw/gone": b"deleted later"}
        for k, v in objs.items():
            etag = s3.put_object(Bucket=BUCKET, Key=k, Body=v, ContentType="text/x-wb", Metadata={"n": k})["ETag"]
            self.assertEqual(etag, '"%s"' % md5(v))
        s3.delete_object(Bucket=BUCKET, Key="rw/gone")
        # Read-your-writes with the origin still down.
        for k in ("rw/a", "rw/b", "rw/sub/c"):
            r = s3.get_object(Bucket=BUCKET, Key=k)
            self.assertEqual(md5(r["Body"].read()), md5(objs[k]))
            self.assertEqual((r["ContentType"], r["Metadata"]), ("text/x-wb", {"n": k}))
        part = s3.get_object(Bucket=BUCKET, Key="rw/b", Range="bytes=100-199")["Body"].read()
        self.assertEqual(part, objs["rw/b"][100:200])
        self.assertEqual(s3.head_object(Bucket=BUCKET, Key="rw/b")["ContentLength"], 3 << 20)
        with self.assertRaises(ClientError) as e:
            s3.get_object(Bucket=BUCKET, Key="rw/gone")
        self.assertEqual(harness.error_code(e.exception), ("NoSuchKey", 404))
        with self.assertRaises(ClientError) as e:
            s3.get_object(Bucket=BUCKET, Key="rw/a", IfNoneMatch='"%s"' % md5(objs["rw/a"]))
        self.assertEqual(harness.error_code(e.exception)[1], 304)
        # The origin comes back: everything arrives, in order, byte-identical.
        origin.start()
        self.assertTrue(wait_until(lambda: all(at_origin(k) == objs[k] for k in ("rw/a", "rw/b", "rw/sub/c"))))
        self.assertEqual(direct.head_object(Bucket=BUCKET, Key="rw/b")["ETag"], '"%s"' % md5(objs["rw/b"]))
        self.assertEqual(direct.head_object(Bucket=BUCKET, Key="rw/a")["Metadata"], {"n": "rw/a"})
        self.assertIsNone(at_origin("rw/gone"))
        listed = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="rw/")["Contents"])
        self.assertEqual(listed, ["rw/a", "rw/b", "rw/sub/c"])

    def test_listings_show_pending_writes_and_deletes(self):
        g = self.granary()
        s3 = harness.boto3_client(g.url)
        direct.put_object(Bucket=BUCKET, Key="ls/old", Body=b"at the origin")
        direct.put_object(Bucket=BUCKET, Key="ls/doomed", Body=b"to be deleted")
        origin.kill()
        s3.put_object(Bucket=BUCKET, Key="ls/new", Body=b"pending")
        s3.put_object(Bucket=BUCKET, Key="ls/dir/deep", Body=b"pending too")
        s3.delete_object(Bucket=BUCKET, Key="ls/doomed")
        origin.start()  # the listing itself comes from the origin; uploads resume meanwhile
        r = s3.list_objects_v2(Bucket=BUCKET, Prefix="ls/", Delimiter="/")
        keys = [o["Key"] for o in r.get("Contents", [])]
        self.assertIn("ls/old", keys)
        self.assertIn("ls/new", keys)
        self.assertNotIn("ls/doomed", keys)
        self.assertIn("ls/dir/", [p["Prefix"] for p in r.get("CommonPrefixes", [])])
        self.assertTrue(wait_until(lambda: at_origin("ls/new") == b"pending" and at_origin("ls/doomed") is None))

    def test_later_writes_supersede_pending_ones(self):
        g = self.granary()
        s3 = harness.boto3_client(g.url)
        origin.kill()
        for i in range(5):
            s3.put_object(Bucket=BUCKET, Key="sup/k", Body=b"version %d" % i)
        s3.put_object(Bucket=BUCKET, Key="sup/then-deleted", Body=b"x")
        s3.delete_object(Bucket=BUCKET, Key="sup/then-deleted")
        self.assertEqual(s3.get_object(Bucket=BUCKET, Key="sup/k")["Body"].read(), b"version 4")
        origin.start()
        self.assertTrue(wait_until(lambda: at_origin("sup/k") == b"version 4"))
        self.assertIsNone(at_origin("sup/then-deleted"), "the delete came last: the key stays absent")

    def test_kill_9_after_100_acknowledged_puts_loses_nothing(self):
        g = self.granary()
        s3 = harness.boto3_client(g.url)
        origin.kill()
        objs = {"k9/%03d" % i: payload(1000 + (i * 7919) % 300_000, 100 + i) for i in range(100)}
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            etags = dict(zip(objs, pool.map(lambda kv: s3.put_object(Bucket=BUCKET, Key=kv[0], Body=kv[1])["ETag"],
                                            objs.items())))
        self.assertTrue(all(etags[k] == '"%s"' % md5(v) for k, v in objs.items()))
        g.proc.send_signal(signal.SIGKILL)
        g.proc.wait()
        g2 = self.granary()  # the origin is still down
        s3 = harness.boto3_client(g2.url)
        for k in ("k9/000", "k9/050", "k9/099"):
            self.assertEqual(md5(s3.get_object(Bucket=BUCKET, Key=k)["Body"].read()), md5(objs[k]))
        self.assertIn("100 pending operations", g2.log_text())
        m = g2.metrics()
        self.assertEqual(m["granary_writeback_pending_objects"], 100)
        self.assertEqual(m["granary_writeback_pending_bytes"], sum(len(v) for v in objs.values()))
        origin.start()
        self.assertTrue(wait_until(lambda: all(at_origin(k) == v for k, v in objs.items()), timeout=90),
                        "every acknowledged object reaches the origin")
        for k in ("k9/000", "k9/077"):
            self.assertEqual(md5(s3.get_object(Bucket=BUCKET, Key=k)["Body"].read()), md5(objs[k]))
        self.assertTrue(wait_until(lambda: g2.metrics()["granary_writeback_pending_objects"] == 0, timeout=10))

    def test_a_full_spool_writes_through(self):
        g = self.granary(spool_size="1MiB")
        s3 = harness.boto3_client(g.url)
        big = payload(2 << 20, 9)
        s3.put_object(Bucket=BUCKET, Key="full/big", Body=big)
        self.assertEqual(at_origin("full/big"), big, "past the spool's capacity the PUT went to the origin at once")
        self.assertIn("write-back spool full", g.log_text())


if __name__ == "__main__":
    unittest.main()

"""The chunk cache with a real s3rver origin and real clients: hits survive the origin going away, an
object overwritten behind Granary's back is served new after the metadata TTL (never a mix), 32 cold
readers of one object make the origin send each chunk once, kill -9 mid-fill and a flipped byte on disk
never serve wrong bytes, the cache directory stays within its size, and writes through Granary
invalidate at once. Requests reaching the origin are counted by harness.CountingProxy."""
import collections
import concurrent.futures
import datetime
import hashlib
import os
import signal
import shutil
import tempfile
import time
import unittest

from botocore.exceptions import ClientError

import harness

CHUNK = 1 << 20
SANITIZED = bool(os.environ.get("GRANARY_SANITIZED"))
origin = proxy = direct = None


def setUpModule():
    global origin, proxy, direct
    origin = harness.Origin()
    proxy = harness.CountingProxy(origin.port)
    direct = harness.boto3_client(origin.url, key=harness.ORIGIN_KEY)


def tearDownModule():
    proxy.stop()
    origin.stop()


def payload(size, seed):
    """Deterministic bytes that differ per seed at every position."""
    block = hashlib.sha256(b"%d" % seed).digest() * 2048  # 64 KiB
    return (block * (size // len(block) + 1))[:size]


def o_direct_works(directory):
    try:
        os.close(os.open(os.path.join(directory, "o_direct_probe"), os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o600))
        return True
    except OSError:
        return False
    finally:
        if os.path.exists(os.path.join(directory, "o_direct_probe")):
            os.unlink(os.path.join(directory, "o_direct_probe"))


def md5(b):
    return hashlib.md5(b).hexdigest()


class CacheCase(unittest.TestCase):
    bucket = None

    def setUp(self):
        origin.ensure_alive()
        self.cache_dir = tempfile.mkdtemp(prefix="granary-cache-")
        self.started = []
        if self.bucket is None:
            type(self).bucket = "cache-%s" % self.__class__.__name__.lower()
            direct.create_bucket(Bucket=self.bucket)

    def tearDown(self):
        for g in self.started:
            if g.proc.poll() is None:
                g.stop()
        shutil.rmtree(self.cache_dir, ignore_errors=True)

    def granary(self, *extra, size="256MiB", ttl="60s", config=None):
        g = harness.Granary(proxy.url, extra=["--cache-dir", "%s:%s" % (self.cache_dir, size), "--chunk-size", "1MiB",
                                             "--metadata-ttl", ttl] + list(extra), config=config)
        self.started.append(g)
        return g

    def get(self, g, key, **kw):
        r = harness.boto3_client(g.url).get_object(Bucket=self.bucket, Key=key, **kw)
        return r["Body"].read(), r["ResponseMetadata"]["HTTPHeaders"]

    def key_path(self, key):
        return "/%s/%s" % (self.bucket, key)


class HitsTest(CacheCase):
    def test_second_read_is_a_hit_and_survives_the_origin_going_away(self):
        data = payload(5 * CHUNK + 123, 1)
        direct.put_object(Bucket=self.bucket, Key="a.bin", Body=data)
        g = self.granary()
        proxy.reset()
        body, h = self.get(g, "a.bin")
        self.assertEqual(md5(body), md5(data))
        self.assertEqual(h["x-granary-cache"], "miss")
        # No HEAD: the GET of the first chunk told Granary the object's size and ETag (one round trip).
        self.assertEqual(proxy.count("HEAD", self.key_path("a.bin")), 0)
        self.assertEqual(sorted(proxy.ranges(self.key_path("a.bin"))),
                         sorted("bytes=%d-%d" % (i * CHUNK, min((i + 1) * CHUNK, len(data)) - 1) for i in range(6)))
        proxy.reset()
        body, h = self.get(g, "a.bin")
        self.assertEqual(md5(body), md5(data))
        self.assertEqual(h["x-granary-cache"], "hit")
        self.assertEqual(proxy.count(), 0, "a hit within the TTL must not contact the origin")
        origin.kill()
        try:
            body, h = self.get(g, "a.bin")
            self.assertEqual(md5(body), md5(data))
            self.assertEqual(h["x-granary-cache"], "hit")
            part, h = self.get(g, "a.bin", Range="bytes=1048570-2097160")
            self.assertEqual(part, data[1048570:2097161])
            self.assertEqual(h["content-range"], "bytes 1048570-2097160/%d" % len(data))
            head = harness.boto3_client(g.url).head_object(Bucket=self.bucket, Key="a.bin")
            self.assertEqual(head["ContentLength"], len(data))
            self.assertEqual(head["ResponseMetadata"]["HTTPHeaders"]["x-granary-cache"], "hit")
        finally:
            origin.start()

    def test_aws_cli_download_twice_and_range_reads_fetch_only_missing_chunks(self):
        data = payload(6 * CHUNK, 2)
        direct.put_object(Bucket=self.bucket, Key="r.bin", Body=data, ContentType="application/x-test",
                          Metadata={"dataset": "imagenet"})
        g = self.granary("--cache-status-header", "true")
        proxy.reset()
        part, h = self.get(g, "r.bin", Range="bytes=%d-%d" % (2 * CHUNK + 5, 2 * CHUNK + 10))
        self.assertEqual(part, data[2 * CHUNK + 5:2 * CHUNK + 11])
        got = proxy.ranges(self.key_path("r.bin"))
        self.assertIn("bytes=%d-%d" % (2 * CHUNK, 3 * CHUNK - 1), got)
        self.assertNotIn("bytes=0-%d" % (CHUNK - 1), got, "a range read fetches only the chunks it needs (+ read-ahead)")
        time.sleep(0.5)  # read-ahead of chunks 3 and 4 lands
        body, h = self.get(g, "r.bin")
        self.assertEqual(h["x-granary-cache"], "partial")
        self.assertEqual(h["content-type"], "application/x-test")
        self.assertEqual(h["x-amz-meta-dataset"], "imagenet")
        self.assertEqual(md5(body), md5(data))
        out = os.path.join(self.cache_dir, "out.bin")
        harness.aws(g.url, "s3", "cp", "s3://%s/r.bin" % self.bucket, out)
        with open(out, "rb") as f:
            self.assertEqual(md5(f.read()), md5(data))
        self.assertEqual(len(proxy.ranges(self.key_path("r.bin"))), 6, "each chunk fetched once in all")

    def test_concurrent_cold_readers_fetch_each_chunk_from_the_origin_once(self):
        size = (64 if SANITIZED else 256) << 20
        readers = 32
        data = payload(size, 3)
        direct.put_object(Bucket=self.bucket, Key="big.bin", Body=data)
        want = md5(data)
        del data
        g = self.granary(size="1GiB")
        proxy.reset()
        s3 = harness.boto3_client(g.url, max_pool_connections=readers)

        def read(_):
            h = hashlib.md5()
            body = s3.get_object(Bucket=self.bucket, Key="big.bin")["Body"]
            for piece in iter(lambda: body.read(1 << 20), b""):
                h.update(piece)
            return h.hexdigest()

        with concurrent.futures.ThreadPoolExecutor(readers) as ex:
            digests = list(ex.map(read, range(readers)))
        self.assertEqual(digests, [want] * readers)
        ranges = proxy.ranges(self.key_path("big.bin"))
        twice = sorted(str(r) for r, n in collections.Counter(ranges).items() if n > 1)
        self.assertEqual(len(ranges), size // CHUNK, "each chunk exactly once at the origin; more than once: %s"
                         % (twice or [r for r in ranges if r is None or not str(r).startswith("bytes=")]))
        self.assertEqual(len(set(ranges)), size // CHUNK)
        self.assertEqual(proxy.count("HEAD", self.key_path("big.bin")), 0, "metadata came with the first chunk")

    def test_a_cold_epoch_asks_the_origin_once_per_chunk_and_never_for_metadata(self):
        # A training epoch's shape (bench/peers.py workload 4): many objects of 1-4 chunks, 16 readers at once,
        # each object read whole once. Cold, each object costs the origin one GET per chunk (the first one
        # also brings the metadata: no HEAD round trip before the first byte); warm, nothing.
        objs = {"epoch/%03d" % i: payload(CHUNK * (1 + i % 4) - (i * 4099) % CHUNK + 1, 100 + i) for i in range(48)}
        for k, v in objs.items():
            direct.put_object(Bucket=self.bucket, Key=k, Body=v)
        g = self.granary(size="512MiB")
        s3 = harness.boto3_client(g.url, max_pool_connections=16)

        def epoch():
            with concurrent.futures.ThreadPoolExecutor(16) as ex:
                got = dict(zip(objs, ex.map(lambda k: md5(s3.get_object(Bucket=self.bucket, Key=k)["Body"].read()),
                                            objs)))
            self.assertEqual(got, {k: md5(v) for k, v in objs.items()})

        proxy.reset()
        epoch()
        for k, v in objs.items():
            chunks = (len(v) + CHUNK - 1) // CHUNK
            ranges = proxy.ranges(self.key_path(k))
            self.assertEqual(sorted(ranges), sorted("bytes=%d-%d" % (i * CHUNK, (i + 1) * CHUNK - 1 if i + 1 < chunks
                                                                       else len(v) - 1 if i else CHUNK - 1)
                                                    for i in range(chunks)), k)
        self.assertEqual(proxy.count("HEAD"), 0, "metadata comes with the first chunk's GET")
        time.sleep(0.5)  # the last fills' inserts land
        proxy.reset()
        epoch()
        self.assertEqual(proxy.count(), 0, "a warm epoch asks the origin nothing")


class ConsistencyTest(CacheCase):
    def test_overwrite_behind_granarys_back_is_served_after_the_ttl_never_mixed(self):
        v1, v2 = payload(3 * CHUNK + 7, 10), payload(3 * CHUNK + 7, 11)
        direct.put_object(Bucket=self.bucket, Key="o.bin", Body=v1)
        g = self.granary(ttl="1s")
        self.assertEqual(self.get(g, "o.bin")[0], v1)
        direct.put_object(Bucket=self.bucket, Key="o.bin", Body=v2)
        time.sleep(1.2)
        body, h = self.get(g, "o.bin")
        self.assertEqual(md5(body), md5(v2))
        self.assertEqual(h["etag"], '"%s"' % md5(v2))
        part, _ = self.get(g, "o.bin", Range="bytes=%d-%d" % (CHUNK - 3, CHUNK + 3))
        self.assertEqual(part, v2[CHUNK - 3:CHUNK + 4])

    def test_ranged_fetch_carries_if_match_so_a_change_mid_read_is_never_mixed(self):
        v1, v2 = payload(4 * CHUNK, 20), payload(4 * CHUNK, 21)
        direct.put_object(Bucket=self.bucket, Key="m.bin", Body=v1)
        g = self.granary("--ram-cache", "0", ttl="forever")
        part, _ = self.get(g, "m.bin", Range="bytes=0-10")  # metadata and chunk 0 (+ read-ahead) cached
        self.assertEqual(part, v1[:11])
        time.sleep(0.3)
        direct.put_object(Bucket=self.bucket, Key="m.bin", Body=v2)
        # Chunk 3 is not cached; fetching it with If-Match of the old ETag fails: Granary must not
        # serve old chunks glued to new ones. It answers with the new object (or refuses), never a mix.
        try:
            body, _ = self.get(g, "m.bin")
            self.assertIn(md5(body), (md5(v1), md5(v2)))
        except Exception:  # a cut connection is an honest answer too
            pass
        body, _ = self.get(g, "m.bin")
        self.assertEqual(md5(body), md5(v2), "after the failed If-Match the old version is gone")

    def test_writes_through_granary_invalidate_at_once(self):
        g = self.granary(ttl="forever")
        s3 = harness.boto3_client(g.url)
        s3.put_object(Bucket=self.bucket, Key="w.bin", Body=b"one" * 1000)
        self.assertEqual(self.get(g, "w.bin")[0], b"one" * 1000)
        s3.put_object(Bucket=self.bucket, Key="w.bin", Body=b"two" * 1000)
        self.assertEqual(self.get(g, "w.bin")[0], b"two" * 1000)
        s3.delete_object(Bucket=self.bucket, Key="w.bin")
        with self.assertRaises(Exception) as ctx:
            self.get(g, "w.bin")
        self.assertEqual(harness.error_code(ctx.exception), ("NoSuchKey", 404))
        s3.put_object(Bucket=self.bucket, Key="d1", Body=b"x")
        self.assertEqual(self.get(g, "d1")[0], b"x")
        s3.delete_objects(Bucket=self.bucket, Delete={"Objects": [{"Key": "d1"}]})
        with self.assertRaises(Exception) as ctx:
            self.get(g, "d1")
        self.assertEqual(harness.error_code(ctx.exception)[1], 404)

    def test_response_overrides_apply_to_cached_answers(self):
        direct.put_object(Bucket=self.bucket, Key="o.bin", Body=b"override me", ContentType="text/plain")
        g = self.granary()
        s3 = harness.boto3_client(g.url)
        self.get(g, "o.bin")
        proxy.reset()
        r = s3.get_object(Bucket=self.bucket, Key="o.bin", ResponseContentType="application/x-custom",
                          ResponseContentDisposition='attachment; filename="x.bin"', ResponseCacheControl="no-store")
        self.assertEqual(r["Body"].read(), b"override me")
        h = r["ResponseMetadata"]["HTTPHeaders"]
        self.assertEqual((h["content-type"], h["content-disposition"], h["cache-control"], h["x-granary-cache"]),
                         ("application/x-custom", 'attachment; filename="x.bin"', "no-store", "hit"))
        self.assertEqual(proxy.count(), 0)
        self.assertEqual(s3.get_object(Bucket=self.bucket, Key="o.bin")["ContentType"], "text/plain")

    def test_cached_reads_answer_preconditions_ranges_and_parts_as_s3(self):
        # The one object planner (object_plan.cpp), as the cache serves it: the same rules as write-back.
        direct.put_object(Bucket=self.bucket, Key="p.bin", Body=b"0123456789")
        g = self.granary()
        s3 = harness.boto3_client(g.url)
        self.get(g, "p.bin")
        for kwargs, condition in (({"IfMatch": '"other"'}, "If-Match"),
                                  ({"IfUnmodifiedSince": datetime.datetime(2000, 1, 1)}, "If-Unmodified-Since")):
            with self.assertRaises(ClientError) as e:
                s3.get_object(Bucket=self.bucket, Key="p.bin", **kwargs)
            self.assertEqual(harness.error_code(e.exception), ("PreconditionFailed", 412))
            self.assertEqual(e.exception.response["Error"].get("Condition"), condition)
        with self.assertRaises(ClientError) as e:
            s3.get_object(Bucket=self.bucket, Key="p.bin", Range="bytes=10-")
        self.assertEqual(harness.error_code(e.exception), ("InvalidRange", 416))
        self.assertEqual(e.exception.response["Error"].get("ActualObjectSize"), "10")
        self.assertEqual(e.exception.response["ResponseMetadata"]["HTTPHeaders"].get("content-range"), "bytes */10")
        # s3rver ignores partNumber: a single-part object has part 1 only, answered whole from the cache.
        r = s3.get_object(Bucket=self.bucket, Key="p.bin", PartNumber=1)
        self.assertEqual((r["Body"].read(), r["ResponseMetadata"]["HTTPHeaders"]["x-granary-cache"]),
                         (b"0123456789", "hit"))
        with self.assertRaises(ClientError) as e:
            s3.get_object(Bucket=self.bucket, Key="p.bin", PartNumber=2)
        self.assertEqual(harness.error_code(e.exception), ("InvalidPartNumber", 416))
        self.assertEqual(e.exception.response["Error"].get("ActualPartCount"), "1")

    def test_uncacheable_requests_say_bypass(self):
        direct.put_object(Bucket=self.bucket, Key="b.bin", Body=b"hello")
        g = self.granary()
        r = harness.boto3_client(g.url).get_object(Bucket=self.bucket, Key="b.bin", Range="bytes=0-1,3-4")
        self.assertEqual(r["ResponseMetadata"]["HTTPHeaders"]["x-granary-cache"], "bypass")
        g.stop()
        g2 = self.granary("--cache-status-header", "false")
        _, h = self.get(g2, "b.bin")
        self.assertNotIn("x-granary-cache", h)


class WriteModesTest(CacheCase):
    def wait_for_fill(self, key):
        """The write-through fill asks the origin for the new metadata (one HEAD), then stores."""
        deadline = time.time() + 10
        while proxy.count("HEAD", self.key_path(key)) == 0 and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(1.0 if SANITIZED else 0.3)

    def test_write_through_puts_are_read_back_from_the_cache(self):
        g = self.granary()
        s3 = harness.boto3_client(g.url)
        small, large = payload(10_000, 7), payload(3 * CHUNK + 5, 8)  # buffered, and streamed, bodies
        proxy.reset()
        s3.put_object(Bucket=self.bucket, Key="wt-small", Body=small)
        s3.put_object(Bucket=self.bucket, Key="wt-large", Body=large)
        src = tempfile.NamedTemporaryFile(delete=False)
        src.write(payload(2 * CHUNK, 9))
        src.close()
        harness.aws(g.url, "s3", "cp", src.name, "s3://%s/wt-cli" % self.bucket)  # the CLI's own payload mode
        for key in ("wt-small", "wt-large", "wt-cli"):
            self.wait_for_fill(key)
        proxy.reset()
        for key, data in (("wt-small", small), ("wt-large", large), ("wt-cli", payload(2 * CHUNK, 9))):
            body, h = self.get(g, key)
            self.assertEqual(md5(body), md5(data), key)
            self.assertEqual(h["x-granary-cache"], "hit", key)
        self.assertEqual(proxy.count(), 0, "reads of what was just written through Granary must not reach the origin")
        os.unlink(src.name)

    def test_write_around_bucket_only_invalidates(self):
        cfg = '[[bucket]]\nname = "%s"\nwrite_mode = "write-around"\n' % self.bucket
        g = harness.Granary(proxy.url, config=cfg, extra=["--cache-dir", "%s:256MiB" % self.cache_dir,
                                                          "--chunk-size", "1MiB"])
        self.started.append(g)
        data = payload(CHUNK + 10, 10)
        harness.boto3_client(g.url).put_object(Bucket=self.bucket, Key="wa", Body=data)
        time.sleep(0.3)
        self.assertEqual(proxy.count("HEAD", self.key_path("wa")), 0, "write-around does not fill")
        body, h = self.get(g, "wa")
        self.assertEqual(md5(body), md5(data))
        self.assertEqual(h["x-granary-cache"], "miss")


class VersionsTest(CacheCase):
    """s3rver has no versioning: this runs against tests/integration/fake_versioned.py, a test double that
    serves object versions by id (and counts what reaches it)."""
    bucket = "versioned"

    def test_versioned_reads_are_cached_per_version_id(self):
        import fake_versioned
        fake = fake_versioned.FakeVersionedBackend()
        try:
            v1 = fake.put("versioned", "model.bin", payload(3 * CHUNK + 7, 60))
            v2 = fake.put("versioned", "model.bin", payload(2 * CHUNK, 61))
            g = harness.Granary(fake.url, extra=["--cache-dir", "%s:256MiB" % self.cache_dir, "--chunk-size", "1MiB"])
            self.started.append(g)
            s3 = harness.boto3_client(g.url)

            def get(**kw):
                r = s3.get_object(Bucket="versioned", Key="model.bin", **kw)
                return r["Body"].read(), r["ResponseMetadata"]["HTTPHeaders"]

            for vid, seed, size in ((v1, 60, 3 * CHUNK + 7), (v2, 61, 2 * CHUNK)):
                body, h = get(VersionId=vid)
                self.assertEqual(md5(body), md5(payload(size, seed)))
                self.assertEqual((h["x-granary-cache"], h["x-amz-version-id"]), ("miss", vid))
            # Every HEAD and ranged GET Granary sent for a versioned read named its version.
            self.assertEqual({r[2].get("versionId") for r in fake.requests}, {v1, v2})
            fake.reset()
            v3 = fake.put("versioned", "model.bin", b"a newer latest version")
            body, h = get(VersionId=v1)
            self.assertEqual(md5(body), md5(payload(3 * CHUNK + 7, 60)))
            self.assertEqual(h["x-granary-cache"], "hit")
            part, h = get(VersionId=v2, Range="bytes=%d-%d" % (CHUNK - 5, CHUNK + 4))
            self.assertEqual(part, payload(2 * CHUNK, 61)[CHUNK - 5:CHUNK + 5])
            self.assertEqual(fake.count(), 0, "cached versions never reach the backend within the TTL")
            body, h = get()
            self.assertEqual((body, h["x-amz-version-id"]), (b"a newer latest version", v3))
            s3.delete_object(Bucket="versioned", Key="model.bin", VersionId=v1)
            with self.assertRaises(Exception) as ctx:
                get(VersionId=v1)
            self.assertEqual(harness.error_code(ctx.exception), ("NoSuchVersion", 404))
            body, h = get(VersionId=v2)
            self.assertEqual(h["x-granary-cache"], "hit", "deleting one version leaves the others cached")
        finally:
            fake.stop()


class PartsTest(CacheCase):
    """GET ?partNumber=N: s3rver ignores partNumber, so this runs against tests/integration/fake_versioned.py,
    which serves objects as if uploaded in parts."""
    bucket = "parts"

    def test_part_reads_are_served_from_cached_chunks(self):
        import fake_versioned
        fake = fake_versioned.FakeVersionedBackend()
        try:
            data = payload(4 * CHUNK, 70)
            part = 3 * CHUNK // 2  # 1.5 MiB parts: boundaries inside chunks
            fake.put("parts", "mp.bin", data, part_size=part)
            g = harness.Granary(fake.url, extra=["--cache-dir", "%s:256MiB" % self.cache_dir, "--chunk-size", "1MiB"])
            self.started.append(g)
            s3 = harness.boto3_client(g.url)
            self.assertEqual(md5(s3.get_object(Bucket="parts", Key="mp.bin")["Body"].read()), md5(data))
            fake.reset()
            for n in (1, 2, 3):
                r = s3.get_object(Bucket="parts", Key="mp.bin", PartNumber=n)
                first, last = (n - 1) * part, min(n * part, len(data)) - 1
                self.assertEqual(r["Body"].read(), data[first:last + 1], "part %d" % n)
                self.assertEqual((r["ContentRange"], r["PartsCount"]), ("bytes %d-%d/%d" % (first, last, len(data)), 3))
                self.assertEqual(r["ResponseMetadata"]["HTTPHeaders"]["x-granary-cache"], "hit")
            self.assertEqual(fake.count("GET"), 0, "part bytes come from the cache; only HEADs locate the parts")
            with self.assertRaises(Exception) as ctx:
                s3.get_object(Bucket="parts", Key="mp.bin", PartNumber=9)
            self.assertEqual(harness.error_code(ctx.exception), ("InvalidPartNumber", 416))
        finally:
            fake.stop()


class DurabilityTest(CacheCase):
    def test_kill_9_during_a_fill_then_restart_serves_only_origin_bytes(self):
        objs = {"k%d" % i: payload((i + 1) * CHUNK + i, 30 + i) for i in range(4)}
        big = payload(48 * CHUNK, 40)
        for k, v in objs.items():
            direct.put_object(Bucket=self.bucket, Key=k, Body=v)
        direct.put_object(Bucket=self.bucket, Key="big", Body=big)
        g = self.granary()
        for k in objs:
            self.get(g, k)
        # Chunks are journaled in batches every 20 ms once their write completed: what was read a moment
        # ago is on record; what is mid-fill at the kill is not, and must never be served.
        time.sleep(0.5)
        s3 = harness.boto3_client(g.url)
        body = s3.get_object(Bucket=self.bucket, Key="big")["Body"]
        body.read(5 * CHUNK)  # mid-fill
        g.proc.send_signal(signal.SIGKILL)
        g.proc.wait()
        g2 = self.granary()
        warm = []
        for k, v in objs.items():
            got, h = self.get(g2, k)
            self.assertEqual(md5(got), md5(v), k)
            warm.append(h["x-granary-cache"] == "hit")
        # Every byte must be right, and everything read before the kill is still cached. (The killed
        # process's io_uring keeps the cache file, and its lock, open for a moment after it exited: the
        # restart waits for the lock rather than taking the directory out of service.)
        self.assertEqual(warm, [True] * len(objs), "warm after kill -9")
        self.assertNotIn("out of service", g2.log_text())
        got, _ = self.get(g2, "big")
        self.assertEqual(md5(got), md5(big))

    def test_unusable_cache_directory_is_pass_through_with_a_metric_and_a_log_line(self):
        not_a_dir = os.path.join(self.cache_dir, "plain-file")
        with open(not_a_dir, "w") as f:
            f.write("not a directory")
        direct.put_object(Bucket=self.bucket, Key="pt.bin", Body=b"served anyway")
        g = harness.Granary(proxy.url, extra=["--cache-dir", "%s:64MiB" % not_a_dir, "--admin-listen", "127.0.0.1:0"])
        self.started.append(g)
        for _ in range(2):
            body, h = self.get(g, "pt.bin")
            self.assertEqual(body, b"served anyway")
        self.assertIn("is out of service", g.log_text())
        self.assertEqual(g.metrics()['granary_cache_dir_up{dir="%s"}' % not_a_dir], 0)

    def test_admin_token_and_metrics_across_a_miss_then_a_hit(self):
        import urllib.error
        import urllib.request
        data = payload(2 * CHUNK + 5, 51)
        direct.put_object(Bucket=self.bucket, Key="m.bin", Body=data)
        g = self.granary("--ram-cache", "0", "--admin-listen", "127.0.0.1:0", "--admin-token", "s3cr3t-admin")
        base = g.admin_url()
        with urllib.request.urlopen(base + "/healthz", timeout=10) as r:  # probes need no token
            self.assertEqual(r.status, 200)
        for auth in (None, "Bearer wrong", "s3cr3t-admin", "Basic s3cr3t-admin"):
            req = urllib.request.Request(base + "/metrics")
            if auth:
                req.add_header("Authorization", auth)
            with self.assertRaises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(req, timeout=10)
            self.assertEqual(e.exception.code, 401, auth)
            self.assertIn("Bearer", e.exception.headers["WWW-Authenticate"])
        before = g.metrics(token="s3cr3t-admin")
        self.get(g, "m.bin")
        time.sleep(1.0 if SANITIZED else 0.3)  # the chunks reach the disk tier after the response
        after_miss = g.metrics(token="s3cr3t-admin")
        # A chunk can be looked up more than once while its fill runs (each lookup counts a miss), but each
        # is fetched from the origin exactly once.
        self.assertGreaterEqual(after_miss["granary_cache_misses_total"] - before["granary_cache_misses_total"], 3)
        self.assertEqual(after_miss["granary_cache_fills_total"] - before["granary_cache_fills_total"], 3)
        self.get(g, "m.bin")
        after_hit = g.metrics(token="s3cr3t-admin")
        self.assertEqual(after_hit['granary_cache_hits_total{tier="disk"}'] -
                         after_miss['granary_cache_hits_total{tier="disk"}'], 3)
        self.assertEqual(after_hit["granary_cache_misses_total"], after_miss["granary_cache_misses_total"])
        # Request-level: one GetObject 200 each, answered as a miss then as a hit; bytes by tier.
        ok = 'granary_requests_total{op="GetObject",status="200"}'
        self.assertEqual(after_miss[ok] - before.get(ok, 0), 1)
        self.assertEqual(after_hit[ok] - after_miss[ok], 1)
        for m, result in ((after_miss, "miss"), (after_hit, "hit")):
            self.assertEqual(m['granary_cache_requests_total{result="%s"}' % result] -
                             before['granary_cache_requests_total{result="%s"}' % result], 1, result)
        self.assertEqual(after_hit['granary_cache_served_bytes_total{tier="disk"}'] -
                         after_miss['granary_cache_served_bytes_total{tier="disk"}'], len(data))
        self.assertEqual(after_hit['granary_backend_request_duration_seconds_count{backend="default"}'],
                         after_miss['granary_backend_request_duration_seconds_count{backend="default"}'])
        self.assertGreater(after_miss['granary_backend_request_duration_seconds_count{backend="default"}'], 0)
        self.assertNotIn("s3cr3t-admin", g.log_text())

    def test_flipped_bytes_in_the_cache_file_are_caught(self):
        g = self.granary("--ram-cache", "0", "--admin-listen", "127.0.0.1:0")
        # (O_DIRECT where the file system takes it; where it does not, Granary falls back to buffered.)
        self.assertGreaterEqual(g.wait_for_log("O_DIRECT" if o_direct_works(self.cache_dir) else "buffered"), 1)
        self.flip_bytes_and_read(g, "f.bin", 50)

    def test_page_cache_mode_serves_disk_hits_and_still_checks_them(self):
        # --direct-io false: the disk tier's file goes through the kernel's page cache, so the flipped bytes
        # below are what Granary reads back at once (no device round trip hides them).
        g = self.granary("--ram-cache", "0", "--admin-listen", "127.0.0.1:0", "--direct-io", "false")
        self.assertGreaterEqual(g.wait_for_log("buffered (page cache)"), 1)
        self.assertEqual(g.log_text().count("O_DIRECT"), 0)
        data = payload(3 * CHUNK + 77, 51)
        direct.put_object(Bucket=self.bucket, Key="pc.bin", Body=data)
        body, h = self.get(g, "pc.bin")
        self.assertEqual((md5(body), h["x-granary-cache"]), (md5(data), "miss"))
        proxy.reset()
        for _ in range(2):  # no RAM tier: both are disk-tier hits
            body, h = self.get(g, "pc.bin")
            self.assertEqual((md5(body), h["x-granary-cache"]), (md5(data), "hit"))
            part, _ = self.get(g, "pc.bin", Range="bytes=%d-%d" % (CHUNK - 5, 2 * CHUNK + 5))
            self.assertEqual(part, data[CHUNK - 5:2 * CHUNK + 6])
        self.assertEqual(proxy.count(), 0)
        self.assertGreater(g.metrics()["granary_cache_hits_total{tier=\"disk\"}"], 0)
        self.flip_bytes_and_read(g, "pcf.bin", 52)

    def test_direct_io_from_the_config_file_and_its_change_on_sighup(self):
        # cache.direct_io = false in the TOML file (no flag): the page cache; SIGHUP with it changed says
        # it waits for a restart, by name, and the disk tier goes on serving hits as before.
        g = self.granary("--ram-cache", "0", config="[cache]\ndirect_io = false\n")
        self.assertGreaterEqual(g.wait_for_log("buffered (page cache)"), 1)
        data = payload(CHUNK + 5, 53)
        direct.put_object(Bucket=self.bucket, Key="toml-pc.bin", Body=data)
        self.assertEqual(self.get(g, "toml-pc.bin")[1]["x-granary-cache"], "miss")
        with open(g.config, "w") as f:
            f.write("[cache]\ndirect_io = true\n")
        g.proc.send_signal(signal.SIGHUP)
        self.assertEqual(g.wait_for_log("SIGHUP: 'cache.direct_io' changed; it takes effect at the next start"), 1)
        self.assertNotIn("cache sizes or directories", g.log_text())
        body, h = self.get(g, "toml-pc.bin")
        self.assertEqual((md5(body), h["x-granary-cache"]), (md5(data), "hit"))

    def disk_bytes(self, g):
        return g.metrics()['granary_cache_used_bytes{tier="disk",dir="%s"}' % self.cache_dir]

    def flip_bytes_and_read(self, g, key, seed):
        data = payload(4 * CHUNK, seed)
        direct.put_object(Bucket=self.bucket, Key=key, Body=data)
        before = self.disk_bytes(g)
        self.get(g, key)
        # The chunks reach the disk after the client has its answer: wait for them, not a fixed time.
        deadline = time.time() + 30
        while self.disk_bytes(g) < before + len(data) and time.time() < deadline:
            time.sleep(0.05)
        self.assertGreaterEqual(self.disk_bytes(g), before + len(data))
        time.sleep(0.2)  # (the fill's own entry goes once its write completed)
        self.assertEqual(g.metrics()["granary_cache_checksum_errors_total"], 0)
        path = os.path.join(self.cache_dir, "granary-cache.data")
        with open(path, "r+b") as f:  # one byte in every 256 KiB of what was written
            for off in range(4096 * 20, f.seek(0, os.SEEK_END), 256 << 10):
                f.seek(off)
                b = f.read(1)
                f.seek(off)
                f.write(bytes([b[0] ^ 0x5A]))
        body, _ = self.get(g, key)
        self.assertEqual(md5(body), md5(data))
        self.assertGreaterEqual(g.wait_for_log("checksum mismatch"), 1)
        self.assertGreaterEqual(g.metrics()["granary_cache_checksum_errors_total"], 1)
        body, _ = self.get(g, key)
        self.assertEqual(md5(body), md5(data))

    def test_filling_past_capacity_keeps_the_directory_within_its_size(self):
        g = self.granary(size="72MiB")
        objs = {}
        for i in range(12):  # 96 MiB of objects through a 72 MiB cache
            objs["c%d" % i] = payload(8 * CHUNK, 60 + i)
            direct.put_object(Bucket=self.bucket, Key="c%d" % i, Body=objs["c%d" % i])
        for _ in range(2):
            for k, v in objs.items():
                self.assertEqual(md5(self.get(g, k)[0]), md5(v))
        used = sum(os.stat(os.path.join(self.cache_dir, n)).st_blocks * 512 for n in os.listdir(self.cache_dir))
        self.assertLessEqual(used, 72 << 20)


if __name__ == "__main__":
    unittest.main()

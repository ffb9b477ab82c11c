"""Class 9, stale-if-error: a fully cached object (RAM and disk tiers) whose metadata TTL ran out is served
from the cache, marked stale (x-granary-cache: stale, Warning: 110), when the backend answers 5xx, refuses
connections or never answers, also after kill -9 and a restart; never when a bucket sets
stale_if_error = "0", never over a 404 or 403, and never from a partially cached object. The backend is
s3rver, behind tests/hostile/doubles.py FaultProxy where a fault must be injected."""
import shutil
import signal
import tempfile
import time
import unittest

import doubles
import hostile
from hostile import call

origin = direct = proxy = None
BUCKET = "stale-bucket"
STRICT = "strict-bucket"  # stale_if_error = "0"
TTL = 1.0
C = 64 * 1024


@hostile.guarded(lambda: tearDownModule())
def setUpModule():
    global origin, direct, proxy
    origin = hostile.harness.Origin()
    direct = hostile.direct_client(origin)
    direct.create_bucket(Bucket=BUCKET)
    direct.create_bucket(Bucket=STRICT)
    proxy = doubles.FaultProxy(origin.port)


def tearDownModule():
    try:
        if proxy:
            proxy.stop()
    finally:
        origin.stop()


class StaleCase(unittest.TestCase):
    def setUp(self):
        origin.ensure_alive()
        proxy.set_mode("pass")
        self.cache_dir = tempfile.mkdtemp(prefix="granary-stale-")
        self.started = []

    def tearDown(self):
        proxy.set_mode("pass")
        for g in self.started:
            if g.proc.poll() is None:
                g.stop()
        shutil.rmtree(self.cache_dir, ignore_errors=True)

    def granary(self, backend=None, config=None, ttl="1s"):
        g = hostile.harness.Granary(
            backend or proxy.url, config=config,
            extra=["--cache-dir", "%s:64MiB" % self.cache_dir, "--ram-cache", "16MiB", "--chunk-size", "64KiB",
                   "--metadata-ttl", ttl, "--backend-max-retries", "0", "--backend-read-timeout", "1s",
                   "--backend-connect-timeout", "1s", "--cache-status-header", "true"])
        self.started.append(g)
        return g

    def cache_fully(self, g, key, size=3 * C + 17, bucket=BUCKET):
        """Puts an object at the origin and reads it through g until it is a hit on disk as well."""
        data = hostile.payload(size, abs(hash(key)) % 1000)
        direct.put_object(Bucket=bucket, Key=key, Body=data)
        seen = []

        def hit():
            r = call(g.port, "GET", "/%s/%s" % (bucket, key))
            self.assertEqual((r.status, r.body), (200, data), r)
            seen.append(r.header("x-granary-cache"))
            return seen[-1] == "hit"
        self.assertTrue(hostile.wait_until(hit, timeout=5), "never a hit: %r" % seen)
        self.assertTrue(hostile.wait_until(lambda: self.disk_used(g) >= size, timeout=5), "the disk tier never held it")
        return data

    @staticmethod
    def disk_used(g):
        return sum(v for k, v in g.metrics().items() if k.startswith('granary_cache_used_bytes{tier="disk"'))

    def expire(self):
        time.sleep(TTL + 0.3)  # the metadata TTL is a wall-clock matter: nothing to poll

    def assertStale(self, r, data, what=""):
        self.assertEqual(r.status, 200, "%s: %r" % (what, r))
        self.assertTrue(r.complete and r.body == data, "%s: not the cached bytes" % what)
        self.assertEqual(r.header("x-granary-cache"), "stale", "%s: %r" % (what, r.headers))
        warning = r.header("warning")
        self.assertIsNotNone(warning, "%s: no Warning header" % what)
        self.assertTrue(warning.startswith("110"), "%s: Warning %r" % (what, warning))

    def assertNotStale(self, r):
        self.assertNotEqual(r.header("x-granary-cache"), "stale", r)
        self.assertIsNone(r.header("warning"), r)


class BackendFailures(StaleCase):
    def served_stale_while(self, mode, key):
        g = self.granary()
        data = self.cache_fully(g, key)
        before = hostile.metric(g, "granary_cache_stale_served_total")
        self.expire()
        proxy.set_mode(mode)
        t0 = time.time()
        r = call(g.port, "GET", "/%s/%s" % (BUCKET, key), timeout=30 * hostile.SLOW)
        self.assertStale(r, data, mode)
        self.assertLess(time.time() - t0, 10 * hostile.SLOW)
        self.assertGreater(hostile.metric(g, "granary_cache_stale_served_total"), before)
        part = call(g.port, "GET", "/%s/%s" % (BUCKET, key), headers={"range": "bytes=%d-%d" % (C - 3, C + 3)})
        self.assertEqual((part.status, part.body), (206, data[C - 3:C + 4]), part)
        return g

    def test_backend_answers_502(self):
        self.served_stale_while("502", "five-oh-two")

    def test_backend_answers_503(self):
        self.served_stale_while("503", "five-oh-three")

    def test_backend_never_answers(self):
        self.served_stale_while("hang", "hanging")

    def test_backend_closes_connections(self):
        self.served_stale_while("close", "closing")

    def test_origin_stopped(self):
        g = self.granary(backend=origin.url)  # straight at s3rver: connection refused once it is gone
        data = self.cache_fully(g, "refused")
        before = hostile.metric(g, "granary_cache_stale_served_total")
        self.expire()
        origin.kill()
        try:
            r = call(g.port, "GET", "/%s/refused" % BUCKET)
            self.assertStale(r, data, "connection refused")
            self.assertGreater(hostile.metric(g, "granary_cache_stale_served_total"), before)
        finally:
            origin.start()

    def test_fresh_again_once_the_backend_recovers(self):
        g = self.served_stale_while("502", "recovering")
        proxy.set_mode("pass")
        self.expire()
        r = call(g.port, "GET", "/%s/recovering" % BUCKET)
        self.assertEqual(r.status, 200, r)
        self.assertNotStale(r)


class Restart(StaleCase):
    def test_kill_9_then_restart_while_the_backend_answers_502(self):
        g = self.granary()
        data = self.cache_fully(g, "survivor")
        time.sleep(0.3 * hostile.SLOW)  # the index journal is written in batches (every 20 ms)
        g.proc.send_signal(signal.SIGKILL)
        g.proc.wait()
        proxy.set_mode("502")
        g2 = self.granary()
        r = call(g2.port, "GET", "/%s/survivor" % BUCKET, timeout=30 * hostile.SLOW)
        self.assertStale(r, data, "after kill -9")
        self.assertGreater(hostile.metric(g2, "granary_cache_stale_served_total"), 0)


class NeverStale(StaleCase):
    def test_bucket_with_stale_if_error_0(self):
        cfg = '[[bucket]]\nname = "%s"\nstale_if_error = "0"\n' % STRICT
        g = self.granary(config=cfg)
        self.cache_fully(g, "strict", bucket=STRICT)
        control = self.cache_fully(g, "lenient")
        self.expire()
        proxy.set_mode("502")
        r = call(g.port, "GET", "/%s/strict" % STRICT)
        self.assertEqual(r.status, 502, r)
        self.assertNotStale(r)
        self.assertStale(call(g.port, "GET", "/%s/lenient" % BUCKET), control, "a bucket without the setting")

    def test_revalidation_answered_404(self):
        g = self.granary()
        self.cache_fully(g, "deleted")
        direct.delete_object(Bucket=BUCKET, Key="deleted")
        self.expire()
        r = call(g.port, "GET", "/%s/deleted" % BUCKET)
        self.assertEqual(r.status, 404, r)
        self.assertNotStale(r)
        r = call(g.port, "GET", "/%s/deleted" % BUCKET)  # and the cached copy is gone for good
        self.assertEqual(r.status, 404, r)

    def test_backend_answering_404_to_everything(self):
        g = self.granary()
        self.cache_fully(g, "gone-404")
        self.expire()
        proxy.set_mode("404")
        r = call(g.port, "GET", "/%s/gone-404" % BUCKET)
        self.assertEqual(r.status, 404, r)
        self.assertNotStale(r)

    def test_revalidation_answered_403(self):
        g = self.granary()
        data = self.cache_fully(g, "forbidden")
        self.expire()
        proxy.set_mode("403")
        r = call(g.port, "GET", "/%s/forbidden" % BUCKET)
        self.assertEqual(r.status, 403, r)
        self.assertNotStale(r)
        self.assertNotEqual(r.body, data)

    def test_partially_cached_object_is_not_served_stale(self):
        g = self.granary()
        size = 10 * C + 5
        data = hostile.payload(size, 77)
        direct.put_object(Bucket=BUCKET, Key="partial", Body=data)
        fills = hostile.metric(g, "granary_cache_fills_total")
        r = call(g.port, "GET", "/%s/partial" % BUCKET, headers={"range": "bytes=0-9"})  # chunk 0 (+ read-ahead)
        self.assertEqual((r.status, r.body), (206, data[:10]), r)
        hostile.wait_until(lambda: hostile.metric(g, "granary_cache_fills_total") >= fills + 3, timeout=5)
        self.expire()
        proxy.set_mode("502")
        r = call(g.port, "GET", "/%s/partial" % BUCKET, timeout=30 * hostile.SLOW)
        self.assertFalse(r.stalled, "the response stalled")
        self.assertGreaterEqual(r.status, 500, "a partially cached object was answered %r" % r)
        self.assertTrue(r.complete, "a short body: %d of %s bytes" % (len(r.body), r.header("content-length")))
        self.assertNotStale(r)


if __name__ == "__main__":
    unittest.main()


class NeverStaleAfterAnUnattributableWrite(StaleCase):
    def test_bucket_invalidated_by_a_form_upload_is_not_served_stale(self):
        # A browser form upload names its key inside the form: Granary invalidates the whole bucket's
        # metadata. Its old bytes must not come back as "stale" when the backend then fails.
        g = self.granary(ttl="1h")
        data = self.cache_fully(g, "formed")
        boundary = "----granarystale"
        body = ("--%s\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nformed\r\n--%s\r\nContent-Disposition: "
                "form-data; name=\"file\"; filename=\"f\"\r\n\r\nnew bytes\r\n--%s--\r\n" % (boundary, boundary,
                                                                                      boundary)).encode()
        call(g.port, "POST", "/%s" % BUCKET, headers={"content-type": "multipart/form-data; boundary=" + boundary},
             body=body)
        proxy.set_mode("503")
        r = call(g.port, "GET", "/%s/formed" % BUCKET)
        self.assertNotStale(r)
        self.assertNotEqual((r.status, r.body), (200, data), "the invalidated object was served")

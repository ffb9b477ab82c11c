"""Class 1, memory safety on the serve path: an origin that reports the same ETag for bytes of another
size (tests/hostile/doubles.py ScriptedOrigin) must never make Granary send a body whose length differs
from its Content-Length, a mix of two versions, or any byte the origin did not send. Objects span several
64 KiB chunks, the metadata TTL is 0 (every request revalidates, and the origin answers 304: same ETag),
and only part of each object is cached when it changes, so the rest is fetched from the changed origin.

Every answer must be one of: an error status; a complete body that is exactly one version's bytes for
the declared range (Content-Range total / Content-Length naming that version's size); or a connection
closed early whose bytes are a prefix of the declared version's. After the first mismatch
granary_cache_length_errors_total is above zero."""
import re
import shutil
import tempfile
import unittest

import doubles
import hostile
from hostile import Conn, request_bytes, signed

C = 64 * 1024
BUCKET = "memory-bucket"
ETAG = '"0123456789abcdef0123456789abcdef"'
fake = None
granaries = hostile.Granaries()
variants = []  # (name, Granary)
cache_dir = None


@hostile.guarded(lambda: tearDownModule())
def setUpModule():
    global fake, cache_dir
    fake = doubles.ScriptedOrigin()
    cache_dir = tempfile.mkdtemp(prefix="granary-mem-")
    common = ["--chunk-size", "64KiB", "--metadata-ttl", "0", "--backend-read-timeout", "5s"]
    variants.append(("ram", granaries.start(fake.url, "--ram-cache", "64MiB", *common)))
    variants.append(("disk", granaries.start(fake.url, "--ram-cache", "0", "--cache-dir", "%s:64MiB" % cache_dir,
                                             *common)))


def tearDownModule():
    try:
        granaries.stop_all()
    finally:
        if cache_dir:
            shutil.rmtree(cache_dir, ignore_errors=True)
        fake.stop()


def get(g, key, rng=None):
    hdrs = {"range": rng} if rng else {}
    target, hs = signed(g.port, "GET", "/%s/%s" % (BUCKET, key), headers=hdrs)
    c = Conn(g.port, timeout=15 * hostile.SLOW)
    try:
        c.send(request_bytes("GET", target, hs))
        return c.response()
    finally:
        c.close()


def resolve(rng, size):
    """(first, last) a single-range header selects in an object of `size` bytes, or None."""
    if rng is None:
        return 0, size - 1
    m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng)
    if m.group(1):
        first = int(m.group(1))
        last = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
    else:
        first, last = max(0, size - int(m.group(2))), size - 1
    return (first, last) if first <= last and first < size else None


class SameEtagOtherSize(unittest.TestCase):
    def check(self, r, versions, rng, what):
        """versions: {size: bytes} of every version the origin served under the ETag."""
        self.assertFalse(r.stalled, "%s: the response stalled: neither its Content-Length nor a close came" % what)
        if r.status >= 400:
            return "error"
        self.assertIn(r.status, (200, 206), "%s: %r" % (what, r))
        cl = r.header("content-length")
        self.assertIsNotNone(cl, "%s: no Content-Length" % what)
        if r.status == 206:
            m = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", r.header("content-range") or "")
            self.assertTrue(m, "%s: Content-Range %r" % (what, r.header("content-range")))
            first, last, total = (int(x) for x in m.groups())
            self.assertEqual(int(cl), last - first + 1, "%s: Content-Length disagrees with Content-Range" % what)
        else:
            first, total = 0, int(cl)
            last = total - 1
        self.assertIn(total, versions, "%s: declares a size (%d) the origin never had" % (what, total))
        want = versions[total][first:last + 1]
        if rng is not None and r.status == 206:
            self.assertEqual((first, last), resolve(rng, total), "%s: not the range asked for" % what)
        if r.complete:
            self.assertEqual(len(r.body), int(cl))
            self.assertTrue(r.body == want, "%s: %d complete bytes that are not the declared version's (%s)"
                            % (what, len(r.body), diff_report(r.body, versions, first)))
            return "complete"
        self.assertLess(len(r.body), int(cl))
        self.assertTrue(want.startswith(r.body), "%s: cut after %d bytes, and those are not the declared "
                        "version's (%s)" % (what, len(r.body), diff_report(r.body, versions, first)))
        return "cut"

    def run_scenario(self, key, n, m, reads, ignore_range=False):
        v1, v2 = hostile.payload(n, 1), hostile.payload(m, 2)
        versions = {n: v1, m: v2}
        outcomes = []
        for name, g in variants:
            k = "%s-%s" % (key, name)
            fake.ignore_range = False
            fake.set(BUCKET, k, v1, etag=ETAG)
            before_fills = hostile.metric(g, "granary_cache_fills_total")
            r = get(g, k, "bytes=0-9")  # metadata, chunk 0 and the read-ahead (chunks 1, 2) are cached
            self.assertEqual((r.status, r.body), (206, v1[:10]), r)
            hostile.wait_until(lambda: hostile.metric(g, "granary_cache_fills_total") >= before_fills + 3, timeout=5)
            fake.set(BUCKET, k, v2, etag=ETAG)  # same ETag, other size
            fake.ignore_range = ignore_range
            try:
                for i, rng in enumerate(reads):
                    with self.subTest(granary=name, read=i, range=rng):
                        what = "%s read %d (%s)" % (name, i, rng or "whole object")
                        outcomes.append(self.check(get(g, k, rng), versions, rng, what))
                        self.assertIsNone(g.proc.poll(), "granary died")
            finally:
                fake.ignore_range = False
            with self.subTest(granary=name, check="length error counted"):
                self.assertGreater(hostile.metric(g, "granary_cache_length_errors_total"), 0,
                                   "the size change went unnoticed")
        return outcomes

    def test_size_grows(self):
        self.run_scenario("grows", 4 * C + 100, 6 * C + 7,
                          [None, "bytes=%d-%d" % (3 * C - 5, 3 * C + 5), "bytes=%d-%d" % (4 * C, 4 * C + 99),
                           "bytes=-50", None])

    def test_size_shrinks(self):
        self.run_scenario("shrinks", 6 * C + 7, 2 * C + 50,
                          [None, "bytes=%d-%d" % (2 * C + 40, 2 * C + 60), "bytes=%d-%d" % (5 * C, 5 * C + 10),
                           "bytes=-100", "bytes=%d-" % (3 * C), None])

    def test_last_chunk_shorter(self):
        self.run_scenario("last-short", 4 * C + 1000, 4 * C + 10,
                          [None, "bytes=%d-%d" % (4 * C, 4 * C + 999), "bytes=%d-%d" % (4 * C + 5, 4 * C + 20),
                           "bytes=-500", None])

    def test_last_chunk_longer(self):
        self.run_scenario("last-long", 4 * C + 10, 4 * C + 1000,
                          [None, "bytes=%d-%d" % (4 * C, 4 * C + 9), "bytes=-5", None])

    def test_origin_ignoring_ranges_with_another_size(self):
        # The changed origin answers every ranged GET with its whole (other-size) object, status 200.
        self.run_scenario("no-ranges", 5 * C + 3, 7 * C + 11,
                          [None, "bytes=%d-%d" % (4 * C - 2, 4 * C + 2), "bytes=-10", None], ignore_range=True)

    def test_serves_the_new_bytes_after_a_mismatch(self):
        # Beyond failing cleanly: once the change was noticed, the object's new bytes are served whole.
        n, m = 4 * C + 100, 5 * C + 20
        self.run_scenario("recovers", n, m, [None])
        v2 = hostile.payload(m, 2)
        for name, g in variants:
            with self.subTest(granary=name):
                got = [get(g, "recovers-%s" % name) for _ in range(3)]
                self.assertTrue(any(r.status == 200 and r.complete and r.body == v2 for r in got),
                                "never served the new version: %r" % [(r.status, r.header("content-length"),
                                                                       len(r.body), r.complete) for r in got])


def diff_report(body, versions, first):
    """Where a body departs from each version (for failure messages)."""
    out = []
    for size, data in sorted(versions.items()):
        ref = data[first:first + len(body)]
        i = next((j for j in range(min(len(ref), len(body))) if ref[j] != body[j]), min(len(ref), len(body)))
        out.append("matches the %d-byte version for %d bytes" % (size, i))
    return "; ".join(out)


if __name__ == "__main__":
    unittest.main()

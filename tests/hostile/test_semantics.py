"""Class 7, S3 semantics on edge inputs, on a Granary with a cache and on one without: Range values with
absurdly large or zero-padded numbers, and partNumber values out of range, malformed, beside a Range, or
on objects that were not uploaded in parts. s3rver is the origin for single-part objects;
tests/integration/fake_versioned.py (which serves partNumber reads) for a multipart one."""
import unittest

import hostile
from hostile import call

origin = direct = fake = None
granaries = hostile.Granaries()
cached = uncached = fake_cached = fake_uncached = None
BUCKET = "semantics-bucket"
N = 1000
DATA = hostile.payload(N, 7)
PART = 1 << 20
MP_DATA = hostile.payload(3 * PART + 500, 8)  # parts of 1 MiB: 4 parts


@hostile.guarded(lambda: tearDownModule())
def setUpModule():
    global origin, direct, fake, cached, uncached, fake_cached, fake_uncached
    import fake_versioned
    origin = hostile.harness.Origin()
    direct = hostile.direct_client(origin)
    direct.create_bucket(Bucket=BUCKET)
    direct.put_object(Bucket=BUCKET, Key="obj", Body=DATA)
    cached = granaries.start(origin.url, "--ram-cache", "64MiB", "--chunk-size", "64KiB")
    uncached = granaries.start(origin.url)
    fake = fake_versioned.FakeVersionedBackend()
    fake.put(BUCKET, "mp", MP_DATA, part_size=PART)
    fake_cached = granaries.start(fake.url, "--ram-cache", "64MiB", "--chunk-size", "256KiB")
    fake_uncached = granaries.start(fake.url)


def tearDownModule():
    try:
        granaries.stop_all()
    finally:
        try:
            origin.stop()
        finally:
            if fake:
                fake.stop()


def both():
    return (("cached", cached), ("uncached", uncached))


class Ranges(unittest.TestCase):
    def setUp(self):
        origin.ensure_alive()

    def get(self, g, rng, key="obj"):
        return call(g.port, "GET", "/%s/%s" % (BUCKET, key), headers={"range": rng})

    def assertWhole206(self, r):
        self.assertEqual(r.status, 206, r)
        self.assertEqual(r.header("content-range"), "bytes 0-%d/%d" % (N - 1, N))
        self.assertEqual(r.header("content-length"), str(N))
        self.assertTrue(r.complete and r.body == DATA, "body differs (%d bytes)" % len(r.body))

    def test_huge_last_byte(self):
        for name, g in both():
            with self.subTest(granary=name):
                self.assertWhole206(self.get(g, "bytes=0-99999999999999999999"))

    def test_huge_first_byte_is_416(self):
        for name, g in both():
            with self.subTest(granary=name):
                r = self.get(g, "bytes=99999999999999999999-")
                self.assertEqual((r.status, r.code), (416, "InvalidRange"), r)
                self.assertEqual(r.header("content-range"), "bytes */%d" % N, r)
                self.assertNotIn(DATA[:50], r.body)

    def test_huge_suffix_is_the_whole_object(self):
        for name, g in both():
            with self.subTest(granary=name):
                self.assertWhole206(self.get(g, "bytes=-99999999999999999999"))

    def test_zero_padded_first_byte(self):
        for name, g in both():
            with self.subTest(granary=name):
                r = self.get(g, "bytes=000000000000000000000001-2")
                self.assertEqual(r.status, 206, r)
                self.assertEqual(r.header("content-range"), "bytes 1-2/%d" % N)
                self.assertEqual(r.body, DATA[1:3])

    def test_ordinary_ranges_still_right(self):
        for name, g in both():
            for rng, first, last in (("bytes=10-19", 10, 19), ("bytes=990-", 990, N - 1), ("bytes=-5", N - 5, N - 1),
                                     ("bytes=0-%d" % (N + 10), 0, N - 1)):
                with self.subTest(granary=name, range=rng):
                    r = self.get(g, rng)
                    self.assertEqual(r.status, 206, r)
                    self.assertEqual(r.header("content-range"), "bytes %d-%d/%d" % (first, last, N))
                    self.assertEqual(r.body, DATA[first:last + 1])


class PartNumbers(unittest.TestCase):
    def setUp(self):
        origin.ensure_alive()

    def get(self, g, part, key="obj", headers=None, method="GET"):
        return call(g.port, method, "/%s/%s" % (BUCKET, key), [("partNumber", part)], headers=headers)

    def test_invalid_part_numbers(self):
        for name, g in both() + (("fake-cached", fake_cached), ("fake-uncached", fake_uncached)):
            key = "mp" if name.startswith("fake") else "obj"
            for part in ("0", "10001", "-1", "abc", "1.5", ""):
                with self.subTest(granary=name, partNumber=part):
                    r = self.get(g, part, key)
                    self.assertEqual((r.status, r.code), (400, "InvalidArgument"), r)

    def test_part_2_of_a_single_part_object_is_416(self):
        for name, g in both():
            for method in ("GET", "HEAD"):
                with self.subTest(granary=name, method=method):
                    r = self.get(g, "2", method=method)
                    self.assertEqual(r.status, 416, r)
                    if method == "GET":
                        self.assertEqual(r.code, "InvalidPartNumber", r)

    def test_part_1_of_a_single_part_object_is_the_object(self):
        for name, g in both():
            with self.subTest(granary=name):
                r = self.get(g, "1")
                self.assertIn(r.status, (200, 206), r)
                self.assertEqual(r.body, DATA)

    def test_part_number_with_range_is_invalid_request(self):
        for name, g in both() + (("fake-cached", fake_cached),):
            key = "mp" if name.startswith("fake") else "obj"
            with self.subTest(granary=name):
                r = self.get(g, "1", key, headers={"range": "bytes=0-10"})
                self.assertEqual((r.status, r.code), (400, "InvalidRequest"), r)

    def test_past_the_part_count_of_a_multipart_object_is_416(self):
        for name, g in (("fake-cached", fake_cached), ("fake-uncached", fake_uncached)):
            for part in ("5", "9", "10000"):
                with self.subTest(granary=name, partNumber=part):
                    r = self.get(g, part, "mp")
                    self.assertEqual((r.status, r.code), (416, "InvalidPartNumber"), r)

    def test_parts_of_a_multipart_object(self):
        for name, g in (("fake-cached", fake_cached), ("fake-uncached", fake_uncached)):
            for n in (1, 4):
                with self.subTest(granary=name, part=n):
                    r = self.get(g, str(n), "mp")
                    first, last = (n - 1) * PART, min(n * PART, len(MP_DATA)) - 1
                    self.assertEqual(r.status, 206, r)
                    self.assertEqual(r.header("content-range"), "bytes %d-%d/%d" % (first, last, len(MP_DATA)))
                    self.assertTrue(r.body == MP_DATA[first:last + 1], "part %d bytes differ" % n)


if __name__ == "__main__":
    unittest.main()

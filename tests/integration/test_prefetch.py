"""Prefetch in the loader's order (`granary admin prefetch`, POST /admin/prefetch): Granary fetches the keys
ahead of the clients' reads within a window of bytes and fetches in flight; after a lead the reads are hits,
reads that overtake the job join its fills (the origin sends each object once: harness.CountingProxy counts
it), a job whose reader stops reading stops, a cancelled one stops fetching, hostile requests get a 400
(413 for a body too large), and a SigV4 admin key prefetches only what its policy lets it read. A real
origin; every Granary starts with an empty cache."""
import concurrent.futures
import hashlib
import json
import os
import random
import shutil
import tempfile
import time
import unittest
import urllib.error
import urllib.request

import harness
import sigv4

SANITIZED = bool(os.environ.get("GRANARY_SANITIZED"))
TOKEN = "pf-tok-51c2"
SIZE = 256 * 1024
N = 40
FINAL = ("done", "idle-stopped", "cancelled", "failed")
OPS = ("AKIDPREFETCHOPS00001", "prefetch-ops-secret-0123456789abcdefghij")
origin = proxy = direct = None


def body(i):
    return (hashlib.sha256(b"pf-%d" % i).digest() * (SIZE // 32 + 1))[:SIZE]


def key(i):
    return "ds/k-%03d" % i


def setUpModule():
    global origin, proxy, direct
    origin = harness.Origin()
    proxy = harness.CountingProxy(origin.port)
    direct = harness.boto3_client(origin.url, key=harness.ORIGIN_KEY)
    try:
        direct.create_bucket(Bucket="pfx")
        for i in range(N):
            direct.put_object(Bucket="pfx", Key=key(i), Body=body(i))
        direct.put_object(Bucket="pfx", Key="other/x", Body=b"outside ds/")
    except BaseException:
        tearDownModule()  # unittest does not when setUpModule fails: the origin would outlive the suite
        raise


def tearDownModule():
    proxy.stop()
    origin.stop()


class PrefetchCase(unittest.TestCase):
    def setUp(self):
        origin.ensure_alive()
        self.dir = tempfile.mkdtemp(prefix="granary-prefetch-")
        self.g = None

    def tearDown(self):
        if self.g and self.g.proc.poll() is None:
            self.g.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def start(self, config=None, client_keys=(harness.CLIENT_KEY,), key=harness.CLIENT_KEY):
        self.g = harness.Granary(proxy.url, extra=["--cache-dir", "%s/cache:256MiB" % self.dir, "--ram-cache", "8MiB",
                                                   "--chunk-size", "1MiB", "--metadata-ttl", "10m",
                                                   "--admin-token", TOKEN],
                                 config=config, client_keys=client_keys)
        self.s3 = harness.boto3_client(self.g.url, key=key)
        proxy.reset()

    def api(self, method, path, data=None, token=TOKEN):
        req = urllib.request.Request(self.g.admin_url() + path, data=data, method=method)
        if token:
            req.add_header("Authorization", "Bearer " + token)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            text = e.read()
            try:
                return e.code, json.loads(text)
            except ValueError:
                return e.code, text.decode("latin-1")

    def raw_post(self, path, length, chunked):
        """POSTs `length` bytes of keys ("k\n"...) with a raw socket, declared or chunked, stopping when the server
        answers; @return status and JSON."""
        import socket
        port = int(self.g.admin_url().rsplit(":", 1)[1])
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        framing = "Transfer-Encoding: chunked" if chunked else "Content-Length: %d" % length
        s.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n%s\r\n\r\n" % (path, TOKEN, framing)).encode())
        piece = b"k\n" * (1 << 19)  # 1 MiB
        sent = 0
        try:
            while chunked and sent < length:
                s.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                sent += len(piece)
            if chunked:
                s.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server answered and closed before the end
        data = b""
        while True:
            try:
                b = s.recv(65536)
            except OSError:
                break
            if not b:
                break
            data += b
        s.close()
        head, _, body_ = data.partition(b"\r\n\r\n")
        return int(head.split()[1]), json.loads(body_)

    def job(self, jid):
        status, j = self.api("GET", "/admin/jobs/" + jid)
        self.assertEqual(status, 200, j)
        return j

    def wait_job(self, jid, pred, timeout=30, what="the job"):
        deadline = time.time() + timeout
        while True:
            j = self.job(jid)
            if pred(j):
                return j
            if time.time() > deadline:
                self.fail("%s did not get there in %ds: %s" % (what, timeout, json.dumps(j)))
            time.sleep(0.05)

    def read(self, i):
        r = self.s3.get_object(Bucket="pfx", Key=key(i))
        self.assertEqual(r["Body"].read(), body(i), key(i))
        return r["ResponseMetadata"]["HTTPHeaders"].get("x-granary-cache")

    def origin_gets(self):
        """GETs the origin received per object key of the data set."""
        counts = {}
        with proxy.lock:
            for m, p, _ in proxy.requests:
                if m == "GET" and p.startswith("/pfx/ds/"):
                    counts[p] = counts.get(p, 0) + 1
        return counts

    def assert_origin_sent_each_object_once(self):
        gets = self.origin_gets()
        self.assertEqual(sorted(gets), ["/pfx/" + key(i) for i in range(N)])
        self.assertEqual(set(gets.values()), {1}, gets)
        # Bytes: the data set once, plus headers and listings (a small margin), never a second copy.
        self.assertGreaterEqual(proxy.bytes, N * SIZE)
        self.assertLess(proxy.bytes, N * SIZE * 1.05 + 256 * 1024, "the origin sent %d bytes for %d" % (proxy.bytes, N * SIZE))

    def order_file(self, keys):
        path = os.path.join(self.dir, "order.txt")
        with open(path, "w") as f:
            f.write("\n".join(keys) + "\n\n")  # a trailing blank line is ignored
        return path


class PrefetchTest(PrefetchCase):
    def test_cli_order_file_then_reads_in_that_order_are_hits_and_the_origin_sends_each_object_once(self):
        self.start()
        order = list(range(N))
        random.Random(17).shuffle(order)
        p = self.g.admin("prefetch", "s3://pfx/ds/", "--order", self.order_file([key(i) for i in order]),
                         "--window", "4MiB", "--concurrency", "4", "--idle", "30", token=TOKEN)
        jid = p.stdout.strip()
        self.assertRegex(jid, r"^prefetch-\d+$")
        # The lead: the job has filled part of its window before the loader starts.
        self.wait_job(jid, lambda j: j["objects_fetched"] >= 8, what="the lead")
        results = []
        for i in order:
            results.append(self.read(i))
            time.sleep(0.02)  # the training step between samples
        # The job fetches 4 at a time, each a few ms at this origin; the loader takes >= 20 ms a sample.
        self.assertGreaterEqual(results.count("hit"), N // 2 if SANITIZED else N - 2, results)
        j = self.wait_job(jid, lambda j: j["state"] in FINAL)
        self.assertEqual(j["state"], "done", j)
        self.assertEqual(j["kind"], "prefetch")
        self.assertEqual(j["objects_total"], N)
        self.assertEqual(j["objects_fetched"] + j["objects_cached"] + j["objects_passed"], N, j)
        self.assertEqual(j["objects_failed"], 0, j)
        self.assertGreaterEqual(j["reader_position"], 0)  # frozen once done (the last key fetched): no longer tracked
        self.assertEqual(j["prefix"], "ds/")
        self.assert_origin_sent_each_object_once()
        status, jobs = self.api("GET", "/admin/jobs")
        self.assertIn(jid, [x["id"] for x in jobs["jobs"]])

    def test_reads_that_overtake_the_prefetcher_join_its_fills(self):
        self.start()
        # The listing's order, everything in the window, and 8 readers from the first moment: they overtake
        # the job (or meet it on the same objects) all the time.
        status, j = self.api("POST", "/admin/prefetch?bucket=pfx&prefix=ds/&window=64MiB&concurrency=8&idle=30", data=b"")
        self.assertEqual(status, 200, j)
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            list(ex.map(self.read, range(N)))
        j = self.wait_job(j["id"], lambda j: j["state"] in FINAL)
        self.assertEqual(j["state"], "done", j)
        self.assertEqual(j["bytes_total"], N * SIZE)
        self.assertEqual(j["objects_failed"], 0, j)
        self.assert_origin_sent_each_object_once()

    def test_the_window_bounds_the_lead_while_the_reader_pauses(self):
        self.start()
        order = self.order_file([key(i) for i in range(N)])
        for how in ("listing", "order file"):
            # 1 MiB is 4 objects of 256 KiB: the job stays 4 ahead of the reader, however long it waits.
            if how == "listing":
                status, j = self.api("POST", "/admin/prefetch?bucket=pfx&prefix=ds/&window=1MiB&concurrency=8", data=b"")
                self.assertEqual(status, 200, j)
                jid = j["id"]
            else:
                self.g.admin("invalidate", "s3://pfx/ds/", token=TOKEN)
                jid = self.g.admin("prefetch", "s3://pfx/ds/", "--order", order, "--window", "1MiB",
                                   "--concurrency", "8", token=TOKEN).stdout.strip()
            j = self.wait_job(jid, lambda j: j["next_position"] == 4 and j["in_flight"] == 0, what=how + ": the lead")
            for i in range(3):
                self.read(i)
            j = self.wait_job(jid, lambda j: j["reader_position"] == 2 and j["next_position"] == 7 and j["in_flight"] == 0,
                              what=how + ": the window after 3 reads")
            for _ in range(20):  # the reader pauses: nothing more is fetched
                time.sleep(0.05)
                j = self.job(jid)
                self.assertLessEqual(j["bytes_ahead"], 1 << 20, j)
                self.assertEqual(j["next_position"], 7, j)
                self.assertLessEqual(j["objects_fetched"] + j["objects_cached"], 7, j)
            for i in range(3, 10):
                status = self.read(i)
                if i < 7:
                    self.assertEqual(status, "hit", (how, i))  # inside the window: fetched already
            j = self.wait_job(jid, lambda j: j["next_position"] == 14 and j["in_flight"] == 0, what=how + ": moving on")
            self.assertLessEqual(j["bytes_ahead"], 1 << 20, j)
            self.assertEqual(self.api("DELETE", "/admin/jobs/" + jid)[0], 200)
            self.wait_job(jid, lambda j: j["state"] == "cancelled")

    def test_a_job_whose_reader_stops_reading_stops(self):
        self.start()
        status, j = self.api("POST", "/admin/prefetch?bucket=pfx&prefix=ds/&window=512KiB&concurrency=2&idle=1", data=b"")
        self.assertEqual(status, 200, j)
        # Reads count once the job tracks its order, i.e. after its listing (slow under a loaded ASan run).
        self.wait_job(j["id"], lambda j: j["state"] != "listing" and j["state"] != "starting", what="the listing")
        self.read(0)
        self.read(1)
        t0 = time.time()
        j = self.wait_job(j["id"], lambda j: j["state"] in FINAL, timeout=15)
        self.assertEqual(j["state"], "idle-stopped", j)
        self.assertGreaterEqual(time.time() - t0, 0.5)  # not before the reader had been quiet a while
        self.assertEqual(j["reader_position"], 1)
        self.assertLessEqual(j["objects_fetched"], 4, j)  # the two read, and the window's two
        self.assertEqual(j["in_flight"], 0)
        # Its order is no longer tracked: later reads move nothing.
        self.read(30)
        self.assertEqual(self.job(j["id"])["reader_position"], 1)

    def test_a_cancelled_job_stops_fetching(self):
        self.start()
        status, j = self.api("POST", "/admin/prefetch?bucket=pfx&prefix=ds/&window=1MiB&concurrency=2&idle=60", data=b"")
        self.assertEqual(status, 200, j)
        jid = j["id"]
        self.wait_job(jid, lambda j: j["objects_fetched"] >= 4)

        def reader():
            for i in range(N):
                self.read(i)
                time.sleep(0.03)

        with concurrent.futures.ThreadPoolExecutor(1) as ex:
            done = ex.submit(reader)
            self.wait_job(jid, lambda j: j["reader_position"] >= 10, what="the reader")
            status, j = self.api("DELETE", "/admin/jobs/" + jid)
            self.assertEqual(status, 200, j)
            j = self.wait_job(jid, lambda j: j["state"] == "cancelled", timeout=5)
            fetched = j["objects_fetched"]
            self.assertLess(fetched, N - 10, j)
            done.result()  # the reader went on to the end: the job fetched nothing more
        j = self.job(jid)
        self.assertEqual(j["objects_fetched"], fetched)
        self.assertLess(j["reader_position"], N - 1)  # no longer tracked

    def test_a_job_cancelled_while_it_lists_stops_listing(self):
        # 1,001 keys are two pages of listing: the first is held at the origin while the job is cancelled;
        # the second is never asked for, and nothing is fetched.
        try:
            direct.head_bucket(Bucket="pfmany")
        except Exception:
            direct.create_bucket(Bucket="pfmany")
            with concurrent.futures.ThreadPoolExecutor(16) as ex:
                list(ex.map(lambda i: direct.put_object(Bucket="pfmany", Key="m/%04d" % i, Body=b"x"), range(1001)))
        self.assertEqual(sum(1 for page in direct.get_paginator("list_objects_v2").paginate(Bucket="pfmany", Prefix="m/")
                             for _ in page.get("Contents", [])), 1001)
        self.start()
        proxy.hold("GET", "/pfmany")
        try:
            status, j = self.api("POST", "/admin/prefetch?bucket=pfmany&prefix=m/", data=b"")
            self.assertEqual(status, 200, j)
            jid = j["id"]
            deadline = time.time() + 30
            while proxy.count("GET", "/pfmany") == 0 and time.time() < deadline:
                time.sleep(0.02)
            self.assertEqual(proxy.count("GET", "/pfmany"), 1)
            self.assertEqual(self.job(jid)["state"], "listing")
            self.assertEqual(self.api("DELETE", "/admin/jobs/" + jid)[0], 200)
        finally:
            proxy.release()
        j = self.wait_job(jid, lambda j: j["state"] in FINAL)
        self.assertEqual(j["state"], "cancelled", j)
        time.sleep(0.3)
        self.assertEqual(proxy.count("GET", "/pfmany"), 1, "the listing went on after the cancel")
        self.assertEqual(j["objects_fetched"], 0, j)
        self.assertEqual(proxy.count("GET"), 1)
        # A cancel is not a failure: no error in the job, and the log says cancelled.
        self.assertNotIn("error", j)
        self.assertEqual(self.g.wait_for_log("prefetch %s cancelled while listing" % jid), 1)
        self.assertNotIn("prefetch %s failed" % jid, self.g.log_text())

    def test_bad_requests_are_refused_with_a_clear_error(self):
        self.start()
        for query, body_, code, words in (
                ("", b"", 400, "bucket= is required"),
                ("bucket=pfx&window=abc", b"", 400, "window="),
                ("bucket=pfx&window=0", b"", 400, "window="),
                ("bucket=pfx&concurrency=0", b"", 400, "concurrency="),
                ("bucket=pfx&concurrency=999", b"", 400, "concurrency="),
                ("bucket=pfx&idle=-1", b"", 400, "idle="),
                ("bucket=pfx&idle=soon", b"", 400, "idle="),
                ("bucket=pfx", b"ds/" + b"a" * 1022 + b"\n", 400, "longer than 1024 bytes"),
                ("bucket=pfx&prefix=ds/", b"ds/k-000\nother/x\n", 400, "not under the prefix"),
                ("bucket=pfx", b"k\n" * 1_000_001, 400, "more than 1000000 keys"),
        ):
            status, j = self.api("POST", "/admin/prefetch?" + query, data=body_)
            self.assertEqual(status, code, (query, j))
            self.assertIsInstance(j, dict, query)
            self.assertIn(words, j["error"], query)
        # A body declared larger than 64 MiB is refused before it is read; one sent chunked, once it passes 64 MiB.
        for chunked in (False, True):
            status, j = self.raw_post("/admin/prefetch?bucket=pfx", (64 << 20) + 1, chunked)
            self.assertEqual(status, 413, j)
            self.assertIn("larger than 67108864 bytes", j["error"])
        self.assertEqual(self.api("POST", "/admin/prefetch?bucket=pfx", data=b"", token=None)[0], 401)
        self.assertEqual(self.api("GET", "/admin/prefetch?bucket=pfx")[0], 404)
        # The longest key allowed goes (1024 bytes; it does not exist: the job records it as failed).
        status, j = self.api("POST", "/admin/prefetch?bucket=pfx&idle=5", data=b"ds/" + b"a" * 1021 + b"\r\n")
        self.assertEqual(status, 200, j)
        j = self.wait_job(j["id"], lambda j: j["state"] in FINAL)
        self.assertEqual(j["objects_total"], 1)
        self.assertEqual(j["objects_failed"], 1, j)
        self.assertEqual(j["errors"][0]["key"], "ds/" + "a" * 1021)
        self.assertTrue(j["errors"][0]["error"])  # NoSuchKey (s3rver: InternalError, a file name too long)
        # The CLI: an order file it cannot read, or one without a key.
        p = self.g.admin("prefetch", "s3://pfx/ds/", "--order", os.path.join(self.dir, "missing"), token=TOKEN, check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("cannot read", p.stderr)
        p = self.g.admin("prefetch", "s3://pfx/ds/", "--order", self.order_file([]), token=TOKEN, check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("lists no key", p.stderr)

    def test_one_order_is_received_at_a_time_and_a_full_house_is_refused_before_the_body(self):
        """Orders are up to 64 MiB each: a second one sent while the first is still arriving is refused (429)
        without being read, so N slow senders cannot hold N x 64 MiB; once the first is in, the next goes."""
        import socket
        self.start()
        port = int(self.g.admin_url().rsplit(":", 1)[1])
        slow = socket.create_connection(("127.0.0.1", port), timeout=30)
        try:
            slow.sendall(("POST /admin/prefetch?bucket=pfx&idle=2 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                          "Content-Length: 4096\r\n\r\nds/k-000\n" % TOKEN).encode())
            refused = None
            for _ in range(50):  # until the first order's body is being read (its headers parsed)
                status, j = self.api("POST", "/admin/prefetch?bucket=pfx&idle=2", data=b"ds/k-001\n")
                if status == 429:
                    refused = j
                    break
                self.assertEqual(status, 200, j)  # the slow one's headers were not in yet: this one went
                time.sleep(0.05)
            self.assertIsNotNone(refused, "a second order went in while the first was still arriving")
            self.assertIn("another prefetch order is being received", refused["error"])
            slow.sendall(b"\n" * (4096 - len(b"ds/k-000\n")))  # the rest of the first order
            reply = slow.recv(65536)
            self.assertIn(b" 200 ", reply.split(b"\r\n")[0], reply[:200])
        finally:
            slow.close()
        status, j = self.api("POST", "/admin/prefetch?bucket=pfx&idle=2", data=b"ds/k-002\n")
        self.assertEqual(status, 200, j)
        # The jobs so far end on their own (one key each): wait, so that none frees a slot below.
        _, alljobs = self.api("GET", "/admin/jobs")
        for old_job in alljobs["jobs"]:
            self.wait_job(old_job["id"], lambda j: j["state"] in FINAL)
        # With every job slot taken, an order is refused before its body is read.
        ids = []
        while True:
            # A window of one byte and nobody reading: each job fetches its first object and waits.
            status, j = self.api("POST", "/admin/prefetch?bucket=pfx&idle=60&window=1",
                                 data=b"ds/k-003\nds/k-004\nds/k-005\n")
            if status == 429:
                self.assertIn("too many prefetch jobs running", j["error"])
                break
            self.assertEqual(status, 200, j)
            ids.append(j["id"])
            self.assertLessEqual(len(ids), 8, "more than 8 prefetch jobs ran at once")
        status, j = self.raw_post("/admin/prefetch?bucket=pfx", (64 << 20) + 1, True)
        self.assertEqual(status, 429, j)  # not 413: refused before a byte of the body was read
        for jid in ids:
            self.api("DELETE", "/admin/jobs/" + jid)

    def test_an_admin_key_prefetches_only_what_its_policy_lets_it_read(self):
        config = '''
admin_token = "%s"
[[client_keys]]
access_key = "%s"
secret_key = "%s"
admin = true
[[client_keys.allow]]
actions = ["s3:GetObject", "s3:ListBucket"]
resources = ["arn:aws:s3:::pfx/ds/*"]
''' % (TOKEN, OPS[0], OPS[1])
        self.start(config=config, client_keys=(), key=OPS)
        as_ops = ("--access-key", OPS[0], "--secret-key", OPS[1])
        p = self.g.admin(*as_ops, "prefetch", "s3://pfx/ds/", "--window", "1MiB", "--idle", "5")
        self.assertRegex(p.stdout.strip(), r"^prefetch-\d+$")
        p = self.g.admin(*as_ops, "prefetch", "s3://pfx/", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("does not allow reading all of s3://pfx/", p.stderr)
        # An order: every key is judged (and the body is signed with its hash).
        ok = self.order_file([key(1), key(0)])
        p = self.g.admin(*as_ops, "prefetch", "s3://pfx", "--order", ok, "--idle", "5")
        j = self.wait_job(p.stdout.strip(), lambda j: j["objects_total"] == 2)
        self.assertEqual(j["prefix"], "ds/k-00")
        p = self.g.admin(*as_ops, "prefetch", "s3://pfx", "--order", self.order_file([key(1), "other/x"]), check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("does not allow reading s3://pfx/other/x", p.stderr)
        # The signature covers the body's hash: a key list other than the one signed is refused.
        import http.client
        port = int(self.g.admin_url().rsplit(":", 1)[1])
        signed_body, sent_body = key(0).encode() + b"\n", b"other/x\n"
        for payload, code in ((sent_body, 400), (signed_body, 200)):
            sg = sigv4.sign("POST", "127.0.0.1:%d" % port, "/admin/prefetch", [("bucket", "pfx"), ("idle", "5")], {},
                            hashlib.sha256(signed_body).hexdigest(), OPS[0], OPS[1])
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            c.request("POST", sg.path + "?" + sg.query, body=payload, headers=dict(sg.headers))
            r = c.getresponse()
            answer = json.loads(r.read())
            c.close()
            self.assertEqual(r.status, code, answer)
            if code == 400:
                self.assertIn("XAmzContentSHA256Mismatch", answer["error"])


if __name__ == "__main__":
    unittest.main()

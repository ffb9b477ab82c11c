"""Operating Granary: `granary admin load|ls|invalidate|stats` (the CLI against the admin HTTP API),
/readyz, the JSON and CLF access logs carrying each response's x-amz-request-id, and SIGHUP reloading
client keys while a download is in flight. A real s3rver origin; objects are put straight into it, so
only a preload can bring them into the cache."""
import hashlib
import json
import os
import shutil
import signal
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

import harness

SANITIZED = bool(os.environ.get("GRANARY_SANITIZED"))
TOKEN = "adm-tok-7f3a"
origin = direct = None


def setUpModule():
    global origin, direct
    origin = harness.Origin()
    direct = harness.boto3_client(origin.url, key=harness.ORIGIN_KEY)


def tearDownModule():
    origin.stop()


def body(i, size=3000):
    return (hashlib.sha256(b"%d" % i).digest() * (size // 32 + 1))[:size + i]


class AdminCase(unittest.TestCase):
    def setUp(self):
        origin.ensure_alive()
        self.dir = tempfile.mkdtemp(prefix="granary-admin-")
        self.started = []

    def tearDown(self):
        for g in self.started:
            if g.proc.poll() is None:
                g.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def granary(self, *extra, config=None, client_keys=(harness.CLIENT_KEY,)):
        g = harness.Granary(origin.url, extra=["--cache-dir", "%s/cache:256MiB" % self.dir, "--ram-cache", "8MiB",
                                               "--chunk-size", "1MiB", "--metadata-ttl", "10m",
                                               "--admin-token", TOKEN] + list(extra),
                            config=config, client_keys=client_keys)
        self.started.append(g)
        return g

    def test_preload_of_a_100_object_prefix_then_hits_with_the_backend_stopped(self):
        origin.ensure_alive()
        direct.create_bucket(Bucket="preload")
        for i in range(100):
            direct.put_object(Bucket="preload", Key="train/shard-%03d" % i, Body=body(i))
        direct.put_object(Bucket="preload", Key="val/other", Body=b"not under the prefix")
        g = self.granary()
        p = g.admin("load", "s3://preload/train/", "--verify", token=TOKEN)
        self.assertIn("100 listed, 100 loaded, 0 already cached, 0 failed", p.stdout)
        self.assertIn("100 verified, 0 failed", p.stdout)
        # Run again: everything is cached and current, nothing is fetched (a stopped load resumes this way).
        p = g.admin("load", "s3://preload/train/", token=TOKEN)
        self.assertIn("100 listed, 0 loaded, 100 already cached", p.stdout)
        ls = json.loads(g.admin("ls", "s3://preload/train/", "--json", token=TOKEN).stdout)
        self.assertEqual(ls["total_objects"], 100)
        self.assertEqual(ls["objects_full"], 100)
        self.assertEqual({o["state"] for o in ls["objects"]}, {"full"})
        self.assertEqual(ls["cached_bytes"], sum(len(body(i)) for i in range(100)))
        table = g.admin("ls", "s3://preload/", token=TOKEN).stdout
        self.assertRegex(table, r"none .* val/other")
        origin.kill()
        try:
            s3 = harness.boto3_client(g.url)
            for i in range(100):
                r = s3.get_object(Bucket="preload", Key="train/shard-%03d" % i)
                self.assertEqual(r["Body"].read(), body(i))
                self.assertEqual(r["ResponseMetadata"]["HTTPHeaders"]["x-granary-cache"], "hit")
            stats = json.loads(g.admin("stats", "--json", token=TOKEN).stdout)
            self.assertGreaterEqual(stats["requests_hit"], 100)
            self.assertEqual(stats["top_buckets"][0]["bucket"], "preload")
            self.assertIn("request hit ratio", g.admin("stats", token=TOKEN).stdout)
            # /readyz notices the backend is gone; /healthz does not care.
            with self.assertRaises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(g.admin_url() + "/readyz", timeout=10)
            self.assertEqual(e.exception.code, 503)
            with urllib.request.urlopen(g.admin_url() + "/healthz", timeout=10) as r:
                self.assertEqual(r.status, 200)
            # A load while the backend is down fails, and says why.
            p = g.admin("load", "s3://preload/train/", token=TOKEN, check=False)
            self.assertEqual(p.returncode, 1)
            self.assertIn("listing s3://preload/train/", p.stdout)
        finally:
            origin.ensure_alive()
        req = urllib.request.Request(g.admin_url() + "/readyz", headers={"Authorization": "Bearer " + TOKEN})
        with urllib.request.urlopen(req, timeout=10) as r:
            text = r.read().decode()
        self.assertIn("ready", text)
        self.assertIn("backend default (127.0.0.1:%d): ok" % origin.port, text)

    def test_invalidate_makes_the_next_read_a_miss(self):
        direct.create_bucket(Bucket="inval")
        for k in ("a/one", "a/one-more", "a/two", "b/three"):
            direct.put_object(Bucket="inval", Key=k, Body=k.encode() * 1000)
        g = self.granary()
        s3 = harness.boto3_client(g.url)

        def status(key):
            r = s3.get_object(Bucket="inval", Key=key)
            self.assertEqual(r["Body"].read(), key.encode() * 1000)
            return r["ResponseMetadata"]["HTTPHeaders"]["x-granary-cache"]

        for k in ("a/one", "a/one-more", "a/two", "b/three"):
            self.assertEqual(status(k), "miss")
        time.sleep(1.0 if SANITIZED else 0.3)
        for k in ("a/one", "a/one-more", "a/two", "b/three"):
            self.assertEqual(status(k), "hit")
        # An exact key: only that object, not the others it prefixes.
        out = g.admin("invalidate", "s3://inval/a/one", token=TOKEN).stdout
        self.assertIn("1 cached objects dropped", out)
        self.assertEqual(status("a/one"), "miss")
        self.assertEqual(status("a/one-more"), "hit")
        # A prefix: everything under it.
        out = g.admin("invalidate", "s3://inval/a/", token=TOKEN).stdout
        self.assertIn("3 cached objects dropped", out)
        for k in ("a/one", "a/one-more", "a/two"):
            self.assertEqual(status(k), "miss")
        self.assertEqual(status("b/three"), "hit")

    def test_admin_without_the_token_is_refused(self):
        g = self.granary()
        for args in (("stats",), ("ls", "s3://x/"), ("invalidate", "s3://x/y"), ("load", "s3://x/")):
            for token in (None, "wrong"):
                p = g.admin(*args, token=token, check=False)
                self.assertEqual(p.returncode, 2, (args, p.stdout, p.stderr))
                self.assertIn("401", p.stderr)
        for method, path in (("POST", "/admin/load?bucket=x"), ("POST", "/admin/invalidate?bucket=x&key=y"),
                             ("GET", "/admin/stats"), ("GET", "/admin/jobs")):
            with self.assertRaises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(urllib.request.Request(g.admin_url() + path, method=method), timeout=10)
            self.assertEqual(e.exception.code, 401)
        # The config file's token works for the CLI too.
        conf = os.path.join(self.dir, "cli.toml")
        with open(conf, "w") as f:
            f.write('admin_token = "%s"\n' % TOKEN)
        p = harness.subprocess.run([harness.GRANARY, "admin", "--admin", g.admin_url(), "--config", conf, "stats"],
                                   capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertNotIn(TOKEN, g.log_text())

    def test_json_and_clf_access_logs_carry_the_request_id_and_no_secrets(self):
        direct.create_bucket(Bucket="logs")
        direct.put_object(Bucket="logs", Key="k k.txt", Body=b"hello")
        for fmt in ("json", "clf"):
            g = self.granary("--access-log-format", fmt)
            s3 = harness.boto3_client(g.url)
            r = s3.get_object(Bucket="logs", Key="k k.txt")
            rid = r["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]
            url = s3.generate_presigned_url("get_object", Params={"Bucket": "logs", "Key": "k k.txt"})
            with urllib.request.urlopen(url, timeout=10) as resp:
                presigned_id = resp.headers["x-amz-request-id"]

            query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
            sig = query.get("X-Amz-Signature") or query["Signature"]  # SigV4 or (older boto3) SigV2
            # Each request's line is written when its handler ends, which can be after the client has its
            # answer (seen: a hit logged 2.5 ms after the next request on the other thread): wait for both.
            self.assertEqual(g.wait_for_log(presigned_id), 1)
            self.assertEqual(g.wait_for_log(rid), 1)
            lines = [l for l in g.log_text().splitlines() if rid in l]
            self.assertEqual(len(lines), 1, lines)
            if fmt == "json":
                rec = json.loads(lines[0])
                self.assertEqual((rec["id"], rec["op"], rec["bucket"], rec["key"], rec["status"], rec["bytes_out"],
                                  rec["cache"]), (rid, "GetObject", "logs", "k k.txt", 200, 5, "miss"))
                self.assertEqual(rec["access_key"], harness.CLIENT_KEY[0])
                self.assertIn("duration_us", rec)
            else:
                self.assertRegex(lines[0], r'^127\.0\.0\.1 - %s \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\] '
                                           r'"GET /logs/k%%20k\.txt HTTP/1\.1" 200 5 id=%s op=GetObject cache=(miss|hit) us=\d+$'
                                 % (harness.CLIENT_KEY[0], rid))
            text = g.log_text()
            self.assertNotIn(sig, text)
            self.assertNotIn(harness.CLIENT_KEY[1], text)
            self.assertNotIn(harness.ORIGIN_KEY[1] + "\n", text)
            g.stop()

    def test_sighup_adds_a_client_key_while_a_download_is_in_flight(self):
        direct.create_bucket(Bucket="hup")
        big = os.urandom(48 << 20)
        direct.put_object(Bucket="hup", Key="big.bin", Body=big)
        conf = os.path.join(self.dir, "granary.toml")
        old_key, new_key = harness.CLIENT_KEY, ("NEWKEYAFTERHUP", "new-secret/after+hup")

        def write_config(keys):
            with open(conf + ".tmp", "w") as f:
                for ak, sk in keys:
                    f.write('[[client_keys]]\naccess_key = "%s"\nsecret_key = "%s"\n' % (ak, sk))
            os.replace(conf + ".tmp", conf)

        write_config([old_key])
        g = harness.Granary(origin.url, client_keys=(), extra=["--config", conf, "--ram-cache", "0",
                                                               "--admin-token", TOKEN])
        self.started.append(g)
        s3 = harness.boto3_client(g.url)
        s3_new = harness.boto3_client(g.url, key=new_key)
        with self.assertRaises(Exception) as e:
            s3_new.head_object(Bucket="hup", Key="big.bin")
        self.assertEqual(harness.error_code(e.exception)[1], 403)
        r = s3.get_object(Bucket="hup", Key="big.bin")
        stream = r["Body"]
        got = [stream.read(1 << 20)]  # the download is under way, and stays open across the reload
        write_config([old_key, new_key])
        g.proc.send_signal(signal.SIGHUP)
        self.assertEqual(g.wait_for_log("SIGHUP: reloaded 2 client keys"), 1, g.log_text()[-2000:])
        self.assertEqual(s3_new.head_object(Bucket="hup", Key="big.bin")["ContentLength"], len(big))
        while True:
            b = stream.read(1 << 20)
            if not b:
                break
            got.append(b)
        self.assertEqual(hashlib.sha256(b"".join(got)).hexdigest(), hashlib.sha256(big).hexdigest())
        self.assertEqual(s3.head_object(Bucket="hup", Key="big.bin")["ContentLength"], len(big))
        # A bad file is refused whole: the keys in use stay.
        with open(conf, "w") as f:
            f.write("[[client_keys]]\naccess_key = \n")
        g.proc.send_signal(signal.SIGHUP)
        self.assertEqual(g.wait_for_log("SIGHUP: keeping the old configuration"), 1)
        self.assertEqual(s3_new.head_object(Bucket="hup", Key="big.bin")["ContentLength"], len(big))


if __name__ == "__main__":
    unittest.main()

"""The peer read path: three Granary nodes (static membership, no etcd) in front of one origin, behind a
pass-through that counts the bytes the origin sends. A chunk a node lacks comes through its owner, which
fills it once for the whole fleet:
- fan-out: every node reads the same large object at once; the origin sends about one copy (within 10%),
  and every copy is byte-exact;
- a second read through another node sends no GET to the origin;
- a node killed (-9) in the middle of reads costs no client an error and no corrupt byte;
- peer requests with a bad signature, an expired date or a replayed nonce are refused (403) and counted."""
import hashlib
import hmac
import http.client
import os
import threading
import time
import unittest

import cluster_harness
import harness

SANITIZED = bool(os.environ.get("GRANARY_SANITIZED"))
# 256 MiB under ASan; the release binary reads 1 GiB unless told otherwise (2 shared cores).
FANOUT_MIB = int(os.environ.get("GRANARY_PEER_FANOUT_MIB", "256" if SANITIZED else "1024"))
BUCKET = "peers"

origin = proxy = None
nodes = []


def setUpModule():
    global origin, proxy, nodes
    origin = harness.Origin(large=True)
    proxy = harness.CountingProxy(int(origin.url.rsplit(":", 1)[1]))
    cache = "%dMiB" % (FANOUT_MIB + 512)
    nodes = cluster_harness.start_nodes(3, proxy.url, static=True, cache=cache, ram="16MiB", chunk="1MiB")
    harness.boto3_client(origin.url, key=harness.ORIGIN_KEY).create_bucket(Bucket=BUCKET)


def tearDownModule():
    try:
        cluster_harness.stop_nodes(nodes)
    finally:
        proxy.stop()
        origin.stop()


def pattern(seed, size):
    """Deterministic bytes (a SHA-256 counter stream, 1 MiB repeated with a per-MiB prefix)."""
    block = b"".join(hashlib.sha256(("%s-%d" % (seed, i)).encode()).digest() for i in range(1 << 15))
    out = bytearray()
    for mib in range((size + (1 << 20) - 1) >> 20):
        piece = (b"%08d" % mib) + block[8:]
        out += piece
    return bytes(out[:size])


def put_object(key, size, seed):
    """Writes the object at the origin directly (no node caches it); returns its SHA-256."""
    data = pattern(seed, size)
    s3 = harness.boto3_client(origin.url, key=harness.ORIGIN_KEY)
    s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    return hashlib.sha256(data).hexdigest()


def read_digest(node, key):
    """GET through `node`, streamed; returns (sha256 hex, length)."""
    s3 = harness.boto3_client(node.url)
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"]
    h, n = hashlib.sha256(), 0
    for piece in iter(lambda: body.read(1 << 20), b""):
        h.update(piece)
        n += len(piece)
    return h.hexdigest(), n


def parallel(fns):
    """Runs the callables at once; returns their results (re-raises the first exception)."""
    results, errors = [None] * len(fns), []

    def run(i, f):
        try:
            results[i] = f()
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i, f)) for i, f in enumerate(fns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def peer_request(node, method, target, secret=cluster_harness.SECRET, date_ms=None, nonce=None, sig=None):
    """One request to `node`'s peer port signed like a peer's; returns (status, body, nonce, date)."""
    date = str(date_ms if date_ms is not None else int(time.time() * 1000))
    nonce = nonce or os.urandom(16).hex()
    text = "\n".join([method, target, "nX", date, nonce, "1"])
    sig = sig or hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()
    c = http.client.HTTPConnection("127.0.0.1", node.peer_port, timeout=10)
    try:
        c.request(method, target, headers={"x-granary-node": "nX", "x-granary-date": date, "x-granary-nonce": nonce,
                                           "x-granary-hop": "1", "x-granary-signature": sig})
        r = c.getresponse()
        return r.status, r.read(), nonce, date
    finally:
        c.close()


def metric(node, name):
    return node.metrics().get(name, 0.0)


def fallbacks():
    """Each live node's peer fallbacks by reason (for failure messages)."""
    out = {}
    for n in nodes:
        if n.proc.poll() is None:
            m = n.metrics()
            out[n.node_id] = {k: v for k, v in m.items() if k.startswith("granary_peer_fallbacks_total") and v}
    return out


def disk_bytes(node):
    return sum(v for k, v in node.metrics().items() if k.startswith("granary_cache_used_bytes{") and 'tier="disk"' in k)


def wait_disk_settled(node, at_least, timeout=30):
    """Until `node`'s disk tier holds at least `at_least` bytes and has not grown for a second, then one
    more second for the disk index's journal (written every ~100 ms) to reach the disk."""
    deadline, last, since = time.time() + timeout, -1, time.time()
    while time.time() < deadline:
        now = disk_bytes(node)
        if now != last:
            last, since = now, time.time()
        elif now >= at_least and time.time() - since >= 1.0:
            time.sleep(1.0)
            return now
        time.sleep(0.1)
    raise AssertionError("node %s's disk tier never settled at >= %d bytes (last %d)" % (node.node_id, at_least, last))


class Peers(unittest.TestCase):
    def test_1_fan_out_reads_the_origin_once(self):
        size = FANOUT_MIB << 20
        want = put_object("fanout", size, "fanout")
        proxy.reset()
        started = time.time()
        got = parallel([lambda n=n: read_digest(n, "fanout") for n in nodes])
        took = time.time() - started
        for digest, n in got:
            self.assertEqual(n, size)
            self.assertEqual(digest, want)
        sent = proxy.bytes
        print("fan-out: %d MiB to 3 nodes in %.1fs; the origin sent %.1f MiB (%d GETs)"
              % (FANOUT_MIB, took, sent / (1 << 20), proxy.count("GET")), flush=True)
        self.assertLess(sent, size * 1.10, "the origin sent more than one copy (+10%%): %s" % fallbacks())
        served = sum(metric(n, "granary_peer_bytes_served_total") for n in nodes)
        fetched = sum(metric(n, "granary_peer_bytes_fetched_total") for n in nodes)
        self.assertGreater(served, size)  # two of three copies came through peers
        self.assertGreater(fetched, size)

    def test_2_second_read_through_another_node_sends_no_get(self):
        size = 24 << 20
        want = put_object("second", size, "second")
        self.assertEqual(read_digest(nodes[0], "second"), (want, size))
        proxy.reset()
        for n in nodes[1:]:
            self.assertEqual(read_digest(n, "second"), (want, size))
        self.assertEqual(proxy.count("GET"), 0, "a GET reached the origin: %r %s" % (proxy.requests, fallbacks()))

    def test_3_bad_peer_requests_are_refused_and_counted(self):
        node = nodes[0]
        target = ("/_granary/peer/v1/chunk?b=default&bucket=%s&key=second&etag=x&size=1&cs=1048576&i=0&from=0&fill=0"
                  % BUCKET)
        before = {r: metric(node, 'granary_peer_auth_refusals_total{reason="%s"}' % r)
                  for r in ("signature", "expired", "replay")}
        status, _, _, _ = peer_request(node, "GET", target, sig="0" * 64)
        self.assertEqual(status, 403)
        status, _, _, _ = peer_request(node, "GET", target, secret="not-the-cluster-secret-000")
        self.assertEqual(status, 403)
        status, _, _, _ = peer_request(node, "GET", target, date_ms=int(time.time() * 1000) - 120_000)
        self.assertEqual(status, 403)
        status, _, nonce, date = peer_request(node, "GET", target)
        self.assertIn(status, (200, 404))  # accepted (not held: 404)
        status, _, _, _ = peer_request(node, "GET", target, nonce=nonce, date_ms=int(date))
        self.assertEqual(status, 403)
        c = http.client.HTTPConnection("127.0.0.1", node.peer_port, timeout=10)  # no peer headers at all
        c.request("GET", target)
        self.assertEqual(c.getresponse().status, 403)
        c.close()
        self.assertEqual(metric(node, 'granary_peer_auth_refusals_total{reason="malformed"}'), 1)
        self.assertEqual(metric(node, 'granary_peer_auth_refusals_total{reason="signature"}') - before["signature"], 2)
        self.assertEqual(metric(node, 'granary_peer_auth_refusals_total{reason="expired"}') - before["expired"], 1)
        self.assertEqual(metric(node, 'granary_peer_auth_refusals_total{reason="replay"}') - before["replay"], 1)

    def test_4_a_write_drops_the_metadata_on_its_owner(self):
        s3o = harness.boto3_client(origin.url, key=harness.ORIGIN_KEY)
        for attempt in range(10):  # until the key's owner is another node than the writer
            key = "inval-%d" % attempt
            s3o.put_object(Bucket=BUCKET, Key=key, Body=b"old" * 1000)
            for n in nodes:
                self.assertEqual(harness.boto3_client(n.url).get_object(Bucket=BUCKET, Key=key)["Body"].read(),
                                 b"old" * 1000)
            before = [metric(n, "granary_peer_invalidations_total") for n in nodes]
            harness.boto3_client(nodes[0].url).put_object(Bucket=BUCKET, Key=key, Body=b"new" * 1000)
            after = [metric(n, "granary_peer_invalidations_total") for n in nodes]
            owners = [i for i in range(len(nodes)) if after[i] > before[i]]
            self.assertLessEqual(len(owners), 1, "more than one owner was told")
            if not owners:
                continue  # the writer owns it: its own invalidation did it
            # Within the metadata TTL (60 s), the owner serves the new version at once.
            body = harness.boto3_client(nodes[owners[0]].url).get_object(Bucket=BUCKET, Key=key)["Body"].read()
            self.assertEqual(body, b"new" * 1000)
            return
        self.fail("no key of ten was owned by another node")

    def test_5_a_node_killed_mid_read_costs_no_client_anything(self):
        size = 96 << 20
        want = put_object("kill", size, "kill")
        victim = nodes[2]
        results, errors = [], []

        def reader(n):
            try:
                results.append(read_digest(n, "kill"))
            except Exception as e:  # noqa: BLE001 (asserted below)
                errors.append(e)

        ts = [threading.Thread(target=reader, args=(n,)) for n in nodes[:2] for _ in range(2)]
        for t in ts:
            t.start()
        time.sleep(0.3)
        victim.kill9()
        for t in ts:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(len(results), 4)
        for r in results:
            self.assertEqual(r, (want, size))
        # And reads go on without it (its peer port refuses connections: the next source answers).
        self.assertEqual(read_digest(nodes[1], "kill"), (want, size))
        self.assertEqual(read_digest(nodes[0], "kill"), (want, size))
        fallbacks = sum(metric(n, 'granary_peer_fallbacks_total{reason="%s"}' % r)
                        for n in nodes[:2] for r in ("connect", "short", "status"))
        self.assertGreater(fallbacks, 0)

    def test_6_a_killed_node_rejoins_and_its_disk_cache_serves_again(self):
        victim = nodes[2]
        if victim.proc.poll() is not None:  # (test_5 killed it)
            victim.restart()
        size = 24 << 20
        want = put_object("rejoin", size, "rejoin")
        held = disk_bytes(victim)
        self.assertEqual(read_digest(nodes[0], "rejoin"), (want, size))  # every owner fills its chunks
        # The victim owns about a third of the 24 chunks: wait until its disk tier has grown past what it
        # held before (by one chunk at least) and stopped growing, and the journal has followed.
        wait_disk_settled(victim, held + (1 << 20))
        victim.kill9()
        victim.restart()  # same cache directory, same peer port
        proxy.reset()
        # Through a node that never read it: its own chunks are on its disk, the others come from their
        # owners, the restarted node's from its disk cache read back after kill -9: no GET reaches the origin.
        self.assertEqual(read_digest(nodes[1], "rejoin"), (want, size))
        self.assertEqual(proxy.count(method="GET"), 0, "%r %s" % (proxy.requests[:10], fallbacks()))
        self.assertGreater(metric(victim, "granary_peer_bytes_served_total"), 0)


if __name__ == "__main__":
    unittest.main()

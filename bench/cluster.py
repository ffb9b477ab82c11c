#!/usr/bin/env python3
"""One cache across N nodes (issue 16), measured in one run against the same origin: s3rver behind the
latency shim (granary-bench shim: +20 ms to each first byte, 90 MB/s per connection), whose relayed bytes
are the origin's cost. For 1, 2 and 4 nodes, each as a cluster (static membership, peers on loopback) and,
for comparison, as independent sidecars (no [cluster]: what Granary did before), two workloads:

  fan-out  every node reads the same large object at once (a checkpoint loaded by every GPU node):
           wall time, origin bytes per object byte, every copy checked byte for byte (MD5)
  epoch    a data set read twice by 8 readers, object i through node (i + e) mod N in epoch e (a sharded
           loader whose shards move between nodes from one epoch to the next):
           wall time of each epoch, origin bytes per data-set byte of each, each node's bytes from peers

Figures are medians of --runs repetitions. Markdown on stdout, JSON with --json.

  python3 bench/cluster.py [--runs 3] [--scale 1] [--nodes 1,2,4] [--json out.json]

Needs a release build (granary and bench/granary-bench under build/).
"""
import argparse
import concurrent.futures
import hashlib
import json
import os
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from peers import BENCH, Shim, free_port  # noqa: E402

BUCKET = "cluster-bench"
MIB = 1 << 20
SECRET = "bench-cluster-secret-0123456789"


def shim_bytes(shim):
    """What the shim relayed to its clients so far (SIGUSR1 makes it print the count)."""
    shim.proc.send_signal(signal.SIGUSR1)
    line = shim.proc.stdout.readline()
    m = re.search(r"bytes_to_clients=(\d+)", line)
    if not m:
        raise SystemExit("the shim did not report its bytes: %r" % line)
    return int(m.group(1))


class Fleet:
    def __init__(self, origin_url, n, clustered, work, cache_mib, ram_mib):
        self.nodes = []
        peers = [free_port() for _ in range(n)]
        members = []
        for i in range(n):
            members += ["--cluster-member", "n%d=127.0.0.1:%d" % (i, peers[i])]
        for i in range(n):
            extra = ["--cache-dir", "%s/node%d:%dMiB" % (work, i, cache_mib), "--ram-cache", "%dMiB" % ram_mib,
                     "--access-log", "false", "--metadata-ttl", "forever"]
            if clustered and n > 1:
                extra += members + ["--node-id", "n%d" % i, "--peer-listen", "127.0.0.1:%d" % peers[i],
                                    "--cluster-secret", SECRET]
            self.nodes.append(harness.Granary(origin_url, threads=2, extra=extra))
        self.clients = [harness.boto3_client(g.url) for g in self.nodes]

    def peer_bytes(self):
        """Each node's bytes fetched from peers (its /metrics)."""
        out = []
        for g in self.nodes:
            m = g.metrics()
            out.append(int(sum(v for k, v in m.items() if re.match(r"granary_peer_bytes_fetched_total", k))))
        return out

    def stop(self):
        for g in self.nodes:
            g.stop()


def read_all(client, key):
    body = client.get_object(Bucket=BUCKET, Key=key)["Body"]
    h = hashlib.md5()
    n = 0
    while True:
        b = body.read(4 * MIB)
        if not b:
            break
        h.update(b)
        n += len(b)
    return h.hexdigest(), n


def fanout(fleet, shim, key, size, md5):
    before = shim_bytes(shim)
    t = time.time()
    with concurrent.futures.ThreadPoolExecutor(len(fleet.clients)) as ex:
        got = list(ex.map(lambda c: read_all(c, key), fleet.clients))
    wall = time.time() - t
    for digest, n in got:
        if (digest, n) != (md5, size):
            raise SystemExit("fan-out: a copy differs: %s/%d, expected %s/%d" % (digest, n, md5, size))
    return {"wall_s": wall, "origin_per_byte": (shim_bytes(shim) - before) / size}


def epoch(fleet, shim, keys, total, shift):
    """Object i through node (i + shift) mod N: each epoch a loader's shards land on other nodes."""
    before = shim_bytes(shim)
    t = time.time()
    n = len(fleet.clients)
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda ik: read_all(fleet.clients[(ik[0] + shift) % n], ik[1]), enumerate(keys)))
    return {"wall_s": time.time() - t, "origin_per_byte": (shim_bytes(shim) - before) / total}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--scale", type=float, default=1.0, help="object sizes and counts times this")
    ap.add_argument("--nodes", default="1,2,4")
    ap.add_argument("--json")
    args = ap.parse_args()
    if not os.path.exists(BENCH):
        raise SystemExit("%s is missing: build the tree first" % BENCH)
    fan_size = max(16, int(1024 * args.scale)) * MIB
    objects = max(8, int(200 * args.scale))
    obj_size = 4 * MIB
    total = objects * obj_size
    work = tempfile.mkdtemp(prefix="granary-cluster-bench-")
    origin = harness.Origin()
    shim = Shim(origin.port)
    direct = harness.boto3_client(origin.url, key=harness.ORIGIN_KEY)
    direct.create_bucket(Bucket=BUCKET)
    blob = os.urandom(fan_size)
    md5 = hashlib.md5(blob).hexdigest()
    direct.put_object(Bucket=BUCKET, Key="checkpoint", Body=blob)
    del blob
    keys = ["data/%05d" % i for i in range(objects)]
    for k in keys:
        direct.put_object(Bucket=BUCKET, Key=k, Body=os.urandom(obj_size))
    results = {}  # (nodes, mode) -> {figure: [runs]}
    try:
        for n in [int(x) for x in args.nodes.split(",")]:
            for clustered in ([True, False] if n > 1 else [True]):
                mode = "cluster" if clustered and n > 1 else "independent" if n > 1 else "single"
                r = results.setdefault("%d/%s" % (n, mode), {})
                for run in range(args.runs):
                    # Each node's cache holds half the data set: the fleet's holds it all from 2 nodes on.
                    cache_mib = max(64, (fan_size + total // 2) // MIB + 64)
                    fleet = Fleet("http://127.0.0.1:%d" % shim.port, n, clustered, "%s/%d-%s-%d" % (work, n, mode, run),
                                  cache_mib, 64)
                    try:
                        f = fanout(fleet, shim, "checkpoint", fan_size, md5)
                        e1 = epoch(fleet, shim, keys, total, 0)
                        e2 = epoch(fleet, shim, keys, total, 1)
                        peer = fleet.peer_bytes()
                    finally:
                        fleet.stop()
                    for name, v in (("fanout_s", f["wall_s"]), ("fanout_origin", f["origin_per_byte"]),
                                    ("epoch1_s", e1["wall_s"]), ("epoch1_origin", e1["origin_per_byte"]),
                                    ("epoch2_s", e2["wall_s"]), ("epoch2_origin", e2["origin_per_byte"]),
                                    ("peer_mib_per_node", statistics.mean(peer) / MIB)):
                        r.setdefault(name, []).append(v)
                    print("# %s run %d: %s" % ("%d/%s" % (n, mode), run + 1,
                                               {k: round(v[-1], 3) for k, v in r.items()}), file=sys.stderr)
    finally:
        shim.stop()
        origin.stop()
        shutil.rmtree(work, ignore_errors=True)
    med = {k: {f: statistics.median(v) for f, v in r.items()} for k, r in results.items()}
    print("| nodes/mode | fan-out s | fan-out origin B/B | epoch 1 s | epoch 1 origin B/B | epoch 2 s | "
          "epoch 2 origin B/B | MiB from peers per node |")
    print("|---|---|---|---|---|---|---|---|")
    for k, m in med.items():
        print("| %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.0f |" % (
            k, m["fanout_s"], m["fanout_origin"], m["epoch1_s"], m["epoch1_origin"], m["epoch2_s"], m["epoch2_origin"],
            m["peer_mib_per_node"]))
    print("\nfan-out %d MiB; data set %d x %d MiB; medians of %d runs" % (fan_size // MIB, objects, obj_size // MIB,
                                                                           args.runs))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"raw": results, "median": med}, f, indent=1)


if __name__ == "__main__":
    main()

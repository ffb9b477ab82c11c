#!/usr/bin/env python3
"""Epoch 1 (cold) with and without `granary admin prefetch`, against reading the origin directly, in one run.

The origin is s3rver behind the latency shim (granary-bench shim: +20 ms to each first byte, 90 MB/s per
connection), as in bench/peers.py. A loader reads --objects objects of 1-4 MiB in a shuffled order with
--workers threads (boto3), each sample followed by --compute-ms of simulated training step (a sleep: the
"GPU" takes no CPU from the two cores). Per run, three targets, each with a fresh cache:

  direct     the loader reads the origin (through the shim)
  granary    the loader reads through Granary (cold cache)
  prefetch   `granary admin prefetch --order FILE` with this epoch's order, started just before the loader
             (no lead: the job starts at the same moment, its time counts); with --lead S the loader
             starts S seconds after the job (as when the job overlaps the trainer's start-up), and the
             epoch's wall time is the loader's alone

Reported: epoch wall time (median of --runs), its ratio to direct, the loader's stall share (time its
workers spent waiting for data over workers x wall), hits seen by the loader, and what the origin sent
(the shim's relayed bytes are not counted; Granary's bytes_from_backend for Granary).

  python3 bench/prefetch.py [--runs 3] [--objects 150] [--workers 8] [--compute-ms 20] [--window 256MiB]
                            [--concurrency 8] [--lead 0] [--json out.json]
Needs a release build (build/granary, build/bench/granary-bench).
"""
import argparse
import concurrent.futures
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import peers  # noqa: E402
from peers import harness  # noqa: E402

BUCKET = "prefetch"
MIB = 1 << 20
TOKEN = "bench-prefetch-token"


def put_objects(url, count, seed):
    s3 = harness.boto3_client(url, key=harness.ORIGIN_KEY)
    s3.create_bucket(Bucket=BUCKET)
    rnd = random.Random(seed)
    sizes = [rnd.randint(1 * MIB, 4 * MIB) for _ in range(count)]
    block = os.urandom(4 * MIB)

    def put(i):
        s3.put_object(Bucket=BUCKET, Key="train/sample-%05d" % i, Body=block[:sizes[i]])

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        list(ex.map(put, range(count)))
    return ["train/sample-%05d" % i for i in range(count)], sum(sizes)


def epoch(url, key, order, workers, compute_s):
    """Reads `order` with `workers` threads, each sample then a sleep of compute_s. @return wall, stall share,
    x-granary-cache counts."""
    s3 = harness.boto3_client(url, key=key, max_pool_connections=workers)
    lock = threading.Lock()
    nxt = [0]
    waited = [0.0]
    cache = {}

    def worker():
        while True:
            with lock:
                if nxt[0] >= len(order):
                    return
                k = order[nxt[0]]
                nxt[0] += 1
            t0 = time.perf_counter()
            r = s3.get_object(Bucket=BUCKET, Key=k)
            r["Body"].read()
            dt = time.perf_counter() - t0
            status = r["ResponseMetadata"]["HTTPHeaders"].get("x-granary-cache", "direct")
            with lock:
                waited[0] += dt
                cache[status] = cache.get(status, 0) + 1
            time.sleep(compute_s)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return wall, waited[0] / (workers * wall), cache


def granary_backend_bytes(g):
    m = g.metrics(TOKEN)
    return int(m.get('granary_cache_bytes_total{source="backend"}', 0))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--objects", type=int, default=150)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--compute-ms", type=float, default=20)
    ap.add_argument("--window", default="256MiB")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--lead", type=float, default=0, help="seconds between the prefetch job's start and the loader's")
    ap.add_argument("--json")
    args = ap.parse_args()
    if not os.path.exists(peers.BENCH):
        raise SystemExit("%s is missing: build the tree first" % peers.BENCH)
    work = tempfile.mkdtemp(prefix="granary-prefetch-bench-")
    origin = harness.Origin()
    shim = peers.Shim(origin.port)
    results = {}
    try:
        print("putting %d objects of 1-4 MiB at the origin..." % args.objects, file=sys.stderr)
        keys, total = put_objects(origin.url, args.objects, 1)
        for r in range(args.runs):
            order = list(keys)
            random.Random(100 + r).shuffle(order)
            order_file = os.path.join(work, "order-%d.txt" % r)
            with open(order_file, "w") as f:
                f.write("\n".join(order) + "\n")
            for target in ("direct", "granary", "prefetch"):
                g = None
                try:
                    if target == "direct":
                        url, key = "http://127.0.0.1:%d" % shim.port, harness.ORIGIN_KEY
                    else:
                        cache = os.path.join(work, "cache-%s-%d" % (target, r))
                        g = harness.Granary("http://127.0.0.1:%d" % shim.port, threads=2,
                                            extra=["--cache-dir", "%s:%dMiB" % (cache, total // MIB * 2 + 256),
                                                   "--ram-cache", "1GiB", "--access-log", "false",
                                                   "--metadata-ttl", "forever", "--admin-token", TOKEN])
                        url, key = g.url, harness.CLIENT_KEY
                    t0 = time.perf_counter()
                    if target == "prefetch":
                        g.admin("prefetch", "s3://%s/train/" % BUCKET, "--order", order_file, "--window", args.window,
                                "--concurrency", str(args.concurrency), token=TOKEN)
                        if args.lead:
                            time.sleep(args.lead)
                            t0 = time.perf_counter()
                    wall, stall, cache = epoch(url, key, order, args.workers, args.compute_ms / 1000)
                    wall = time.perf_counter() - t0
                    origin_bytes = granary_backend_bytes(g) if g else total
                    res = results.setdefault(target, {"wall": [], "stall": [], "hits": [], "origin": []})
                    res["wall"].append(wall)
                    res["stall"].append(stall)
                    res["hits"].append(cache.get("hit", 0) / len(order))
                    res["origin"].append(origin_bytes / total)
                    print("run %d %-8s epoch 1: %.2f s, stall %.0f%%, %s, origin %.2f B/B" %
                          (r, target, wall, 100 * stall, cache, origin_bytes / total), file=sys.stderr)
                finally:
                    if g:
                        g.stop()
                        shutil.rmtree(os.path.join(work, "cache-%s-%d" % (target, r)), ignore_errors=True)
    finally:
        shim.stop()
        origin.stop()
        shutil.rmtree(work, ignore_errors=True)
    med = {t: {k: statistics.median(v) for k, v in res.items()} for t, res in results.items()}
    direct = med["direct"]["wall"]
    print("| epoch 1 (cold), %d objects of 1-4 MiB, %d workers, %g ms step%s | wall s | / direct | stall | hits | origin B/B |"
          % (args.objects, args.workers, args.compute_ms, ", prefetch lead %g s" % args.lead if args.lead else ""))
    print("|---|---|---|---|---|---|")
    for t in ("direct", "granary", "prefetch"):
        m = med[t]
        print("| %s | %.2f | %.2fx | %.0f%% | %.0f%% | %.2f |" % (t, m["wall"], m["wall"] / direct, 100 * m["stall"],
                                                            100 * m["hits"], m["origin"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "runs": results, "medians": med}, f, indent=1)


if __name__ == "__main__":
    main()

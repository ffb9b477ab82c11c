#!/usr/bin/env python3
"""Hit throughput: warm objects served by Granary's cache versus the same objects read straight from the
origin (s3rver), in the same run, with the same client: 32 keep-alive connections (8 processes x 4
threads) of plain HTTP GETs for a fixed time. Prints MB/s and requests/s for each and the ratio.

  python3 bench/cache_hits.py [--seconds 10] [--connections 32] [--runs 3]
"""
import argparse
import http.client
import multiprocessing
import os
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
import harness  # noqa: E402

BUCKET = "bench-hits"


def worker(port, paths, seconds, threads, out):
    total = [0, 0]
    lock = threading.Lock()

    def loop(i):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        n = b = 0
        end = time.time() + seconds
        k = i
        while time.time() < end:
            conn.request("GET", paths[k % len(paths)])
            r = conn.getresponse()
            while True:
                piece = r.read(1 << 20)
                if not piece:
                    break
                b += len(piece)
            if r.status != 200:
                raise SystemExit("status %d" % r.status)
            n += 1
            k += 1
        with lock:
            total[0] += n
            total[1] += b

    ts = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    out.put(tuple(total))


def measure(port, paths, seconds, connections):
    procs = max(1, connections // 4)
    q = multiprocessing.Queue()
    ps = [multiprocessing.Process(target=worker, args=(port, paths[i::procs] or paths, seconds, 4, q)) for i in range(procs)]
    t0 = time.time()
    for p in ps:
        p.start()
    res = [q.get() for _ in ps]
    for p in ps:
        p.join()
    dt = time.time() - t0
    return sum(r[0] for r in res) / dt, sum(r[1] for r in res) / dt / 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    origin = harness.Origin()
    cache_dir = os.path.join(origin.dir, "cache")
    g = harness.Granary(origin.url, extra=["--anonymous", "true", "--access-log", "false", "--cache-dir",
                                            cache_dir + ":8GiB", "--ram-cache", "1GiB", "--metadata-ttl", "forever"])
    direct = harness.boto3_client(origin.url, key=harness.ORIGIN_KEY)
    direct.create_bucket(Bucket=BUCKET)
    sets = {"64MiB x 8": [("big%d" % i, 64 << 20) for i in range(8)],
            "64KiB x 512": [("small%d" % i, 64 << 10) for i in range(512)]}
    for objs in sets.values():
        for k, size in objs:
            direct.put_object(Bucket=BUCKET, Key=k, Body=os.urandom(size))
    try:
        print("%-12s %-8s %12s %12s %12s %12s %8s" % ("objects", "run", "origin MB/s", "origin req/s",
                                                      "granary MB/s", "granary req/s", "ratio"))
        for name, objs in sets.items():
            paths = ["/%s/%s" % (BUCKET, k) for k, _ in objs]
            measure(g.port, paths, 3, a.connections)  # warm the cache (and the origin's page cache)
            ratios = []
            for run in range(a.runs):
                o_req, o_mb = measure(origin.port, paths, a.seconds, a.connections)
                g_req, g_mb = measure(g.port, paths, a.seconds, a.connections)
                ratios.append(g_mb / o_mb)
                print("%-12s %-8d %12.1f %12.1f %12.1f %12.1f %7.2fx" % (name, run + 1, o_mb, o_req, g_mb, g_req,
                                                                        g_mb / o_mb), flush=True)
            print("%-12s median ratio granary/origin: %.2fx" % (name, statistics.median(ratios)), flush=True)
    finally:
        g.stop()
        origin.stop()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Write modes against the origin, in one run: PUTs per second of 256 KiB objects over 16 keep-alive
connections straight to the origin (s3rver) and through Granary into a write-through, a write-around
and a write-back bucket; then the first GET of an 8 MiB object right after its PUT (what write-through's
cache fill buys), each as a ratio to the origin's own figure. Plain unsigned HTTP (Granary runs with
--anonymous), the same client for every target.

  python3 bench/write_modes.py [--seconds 8] [--connections 16] [--runs 3]
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


def worker(port, bucket, tag, size, seconds, threads, out):
    body = os.urandom(size)
    counts = []
    lock = threading.Lock()

    def loop(i):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        n = 0
        end = time.time() + seconds
        while time.time() < end:
            conn.request("PUT", "/%s/%s-%d-%d" % (bucket, tag, i, n), body=body)
            r = conn.getresponse()
            r.read()
            if r.status != 200:
                raise SystemExit("PUT status %d" % r.status)
            n += 1
        with lock:
            counts.append(n)

    ts = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    out.put(sum(counts))


def puts_per_second(port, bucket, tag, size, seconds, connections):
    procs = max(1, connections // 4)
    q = multiprocessing.Queue()
    ps = [multiprocessing.Process(target=worker, args=(port, bucket, "%s-p%d" % (tag, i), size, seconds, 4, q))
          for i in range(procs)]
    t0 = time.time()
    for p in ps:
        p.start()
    total = sum(q.get() for _ in ps)
    for p in ps:
        p.join()
    return total / (time.time() - t0)


def drain(g):
    """Waits until the write-back spool is empty; returns the seconds it took."""
    t0 = time.time()
    while g.metrics().get("granary_writeback_pending_objects", 0) > 0:
        time.sleep(0.1)
    return time.time() - t0


def first_read_seconds(port, bucket, key, body):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("PUT", "/%s/%s" % (bucket, key), body=body)
    r = conn.getresponse()
    r.read()
    time.sleep(0.2)  # write-through fills the cache in the background after its acknowledgement
    t0 = time.time()
    conn.request("GET", "/%s/%s" % (bucket, key))
    r = conn.getresponse()
    got = r.read()
    dt = time.time() - t0
    if got != body:
        raise SystemExit("read back wrong bytes from %s" % bucket)
    return dt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    origin = harness.Origin()
    cfg = ('[cache]\nwriteback_dir = "%s:16GiB"\n\n' % os.path.join(origin.dir, "spool") +
           "".join('[[bucket]]\nname = "%s"\nwrite_mode = "%s"\n\n' % (b, m)
                   for b, m in (("b-through", "write-through"), ("b-around", "write-around"), ("b-back", "write-back"))))
    g = harness.Granary(origin.url, config=cfg, extra=["--anonymous", "true", "--access-log", "false", "--cache-dir",
                                                       os.path.join(origin.dir, "cache") + ":4GiB",
                                                       "--admin-listen", "127.0.0.1:0"])
    direct = harness.boto3_client(origin.url, key=harness.ORIGIN_KEY)
    targets = [("origin", origin.port, "b-origin"), ("write-through", g.port, "b-through"),
               ("write-around", g.port, "b-around"), ("write-back", g.port, "b-back")]
    for _, _, b in targets:
        direct.create_bucket(Bucket=b)
    try:
        rates = {name: [] for name, _, _ in targets}
        print("PUT 256 KiB objects, %d connections, %gs per target" % (a.connections, a.seconds))
        for run in range(a.runs):
            for name, port, bucket in targets:
                rates[name].append(puts_per_second(port, bucket, "r%d" % run, 256 << 10, a.seconds, a.connections))
                drained = drain(g)  # the next target must not share the origin with background uploads
                if name == "write-back":
                    print("  write-back backlog uploaded in %.1fs" % drained, flush=True)
            print("run %d: " % (run + 1) + "  ".join("%s %.0f/s" % (n, r[-1]) for n, r in rates.items()), flush=True)
        base = statistics.median(rates["origin"])
        for name in rates:
            print("%-14s median %7.0f PUT/s  %5.2fx origin" % (name, statistics.median(rates[name]),
                                                               statistics.median(rates[name]) / base))
        body = os.urandom(8 << 20)
        reads = {name: [] for name, _, _ in targets}
        for i in range(5):
            for name, port, bucket in targets:
                reads[name].append(first_read_seconds(port, bucket, "rw-%d" % i, body))
        rbase = statistics.median(reads["origin"])
        print("first GET of an 8 MiB object right after its PUT (median of 5)")
        for name in reads:
            m = statistics.median(reads[name])
            print("%-14s %7.1f ms  %5.2fx the origin's time" % (name, m * 1000, m / rbase))
    finally:
        g.stop()
        origin.stop()


if __name__ == "__main__":
    main()

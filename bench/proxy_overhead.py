#!/usr/bin/env python3
"""Pass-through overhead of Granary (no cache yet): the same operations straight to the s3rver origin
and through Granary, in one run, medians of N repetitions, reported as ratios (Granary / direct).

  python3 bench/proxy_overhead.py [--runs 5] [--size-mib 256] [--granary build/granary]
"""
import argparse
import concurrent.futures
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
import harness  # noqa: E402


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--small-seconds", type=float, default=3.0)
    ap.add_argument("--granary", default=harness.GRANARY)
    args = ap.parse_args()
    harness.GRANARY = args.granary

    origin = harness.Origin()
    granary = harness.Granary(origin.url, extra=["--access-log", "false"])
    try:
        direct = harness.boto3_client(origin.url, key=harness.ORIGIN_KEY)
        via = harness.boto3_client(granary.url)
        direct.create_bucket(Bucket="bench")
        size = args.size_mib << 20
        blob = os.urandom(size)
        small = os.urandom(4096)
        direct.put_object(Bucket="bench", Key="small", Body=small)
        rows = []

        def put(client, key):
            return lambda: client.put_object(Bucket="bench", Key=key, Body=blob)

        def get(client, key):
            def run():
                body = client.get_object(Bucket="bench", Key=key)["Body"]
                while body.read(1 << 20):
                    pass
            return run

        def small_rate(client):
            deadline = time.perf_counter() + args.small_seconds

            def worker():
                n = 0
                while time.perf_counter() < deadline:
                    client.get_object(Bucket="bench", Key="small")["Body"].read()
                    n += 1
                return n
            with concurrent.futures.ThreadPoolExecutor(8) as ex:
                total = sum(ex.map(lambda _: worker(), range(8)))
            return total / args.small_seconds

        for name, d, v, unit in [
            ("PUT %d MiB, one stream" % args.size_mib, put(direct, "big-d"), put(via, "big-v"), "MiB/s"),
            ("GET %d MiB, one stream" % args.size_mib, get(direct, "big-d"), get(via, "big-v"), "MiB/s"),
        ]:
            ds, vs = [], []
            for _ in range(args.runs):
                ds.append(args.size_mib / timed(d))
                vs.append(args.size_mib / timed(v))
            rows.append((name, statistics.median(ds), statistics.median(vs), unit))
        ds = [small_rate(direct) for _ in range(args.runs)]
        vs = [small_rate(via) for _ in range(args.runs)]
        rows.append(("GET 4 KiB, 8 client threads", statistics.median(ds), statistics.median(vs), "req/s"))

        print("| workload | direct to s3rver | through Granary | Granary / direct |")
        print("|---|---|---|---|")
        for name, d, v, unit in rows:
            print("| %s | %.0f %s | %.0f %s | %.2f |" % (name, d, unit, v, unit, v / d))
        print("\nGranary peak RSS during the run: %.1f MiB" % (granary.rss_kib() / 1024))
    finally:
        granary.stop()
        origin.stop()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Where a warm hit's CPU goes: starts s3rver and one Granary (2 threads), stores the objects, warms them,
then runs granary-bench against Granary for 10 s while `perf record -g` samples Granary for 8 s.

  python3 bench/hit_profile.py disk-direct|disk-pagecache|ram-64k [--perf FILE]

  disk-direct     8 objects of 64 MiB, 32 connections, no RAM tier: hits from the disk tier with O_DIRECT
  disk-pagecache  the same with --direct-io false (the disk tier through the page cache)
  ram-64k         2,000 objects of 64 KiB, 64 connections, 1 GiB RAM tier

Prints the rate; then read the profile with `perf report -i FILE --no-children --sort symbol`.
Needs a release build and perf (linux-perf). Used for bench/RESULTS.md, issue 17's second pass."""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import harness  # noqa: E402
import peers  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["disk-direct", "disk-pagecache", "ram-64k"])
    ap.add_argument("--perf", metavar="FILE", help="record `perf record -g` of Granary into FILE")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="granary-hitprof-")
    origin = harness.Origin()
    ram = "1GiB" if args.mode == "ram-64k" else "0"
    extra = ["--cache-dir", "%s/cache:3GiB" % work, "--ram-cache", ram, "--access-log", "false",
             "--metadata-ttl", "forever"] + (["--direct-io", "false"] if args.mode == "disk-pagecache" else [])
    g = harness.Granary(origin.url, threads=2, extra=extra)
    key = harness.CLIENT_KEY
    prefix, size, count, conns = ("small64k", "64KiB", 2000, 64) if args.mode == "ram-64k" else ("large", "64MiB", 8, 32)
    try:
        peers.prepare(g.port, key, prefix, size, count)
        load = ["--prefix", prefix, "--list-existing", "--concurrent", conns, "--threads", 2]
        peers.bench("get", g.port, key, *load, "--duration", "3s", "--cold-pass")
        perf = None
        if args.perf:
            perf = subprocess.Popen(["perf", "record", "-g", "-o", args.perf, "-p", str(g.proc.pid), "--", "sleep", "8"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        s = peers.summary(peers.bench("get", g.port, key, *load, "--duration", "10s"), "run")
        print("%s: %.0f MiB/s, %.0f obj/s" % (args.mode, s["mib_per_sec"], s["obj_per_sec"]))
        if perf:
            perf.wait()
    finally:
        g.stop(expect_clean=False)
        origin.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

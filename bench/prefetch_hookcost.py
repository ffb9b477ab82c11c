#!/usr/bin/env python3
"""What the prefetch hook on the client read path costs: instructions per warm hit, counted by callgrind
(stable under load, unlike wall-clock figures), for

  baseline   a Granary binary without the hook (--baseline, e.g. the main branch's build/granary)
  no job     this tree's build/granary, no prefetch job (the hook: one relaxed load)
  job        the same, with a prefetch job whose order holds every key read (each GET looks its key up)

  python3 bench/prefetch_hookcost.py --baseline /work/main/build/granary [--objects 200] [--epochs 5]

Each target: s3rver, Granary under `valgrind --tool=callgrind --instr-atstart=no` (one I/O thread, access
log off), a cold pass (not counted), then instrumentation on and --epochs warm epochs of 4 KiB objects
read by build/bench/granary-bench (SigV4 on, 16 connections): the server's instructions (all threads,
the admin thread's job loop included) divided by the GETs. The method is bench/hitcost.py's (helper HP).
"""
import argparse
import os
import shutil
import sys
import tempfile
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import harness  # noqa: E402

sys.path.insert(0, HERE)
import hitcost  # noqa: E402  (its granary-bench and callgrind helpers)

BUCKET = "hookcost"
TOKEN = "hookcost-token"


def bench(port, key, *args):
    hitcost.bench(port, key, *args, bucket=BUCKET)


def measure(binary, origin, args, with_job):
    out = tempfile.mkdtemp(prefix="granary-hookcost-")
    wrapper = os.path.join(out, "granary-under-callgrind")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nexec valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=%s/callgrind.out.%%p "
                "%s \"$@\"\n" % (out, os.path.abspath(binary)))
    os.chmod(wrapper, 0o755)
    saved, harness.GRANARY = harness.GRANARY, wrapper
    try:
        g = harness.Granary(origin.url, threads=1, extra=["--cache-dir", "%s/c:1GiB" % out, "--ram-cache", "1GiB",
                                                          "--access-log", "false", "--metadata-ttl", "forever",
                                                          "--admin-token", TOKEN])
    finally:
        harness.GRANARY = saved
    try:
        gkey = harness.CLIENT_KEY
        common = ["--prefix", "p", "--list-existing", "--concurrent", 16, "--access", "epoch"]
        bench(g.port, gkey, *common, "--epochs", 2)  # cold, then one warm epoch (untimed)
        if with_job:
            # Every key of the bucket, then keys that do not exist: with a 1-byte window the job fetches one
            # of those at a time and never finishes while the epochs run (60 s of idle allowed).
            s3 = harness.boto3_client(origin.url, key=harness.ORIGIN_KEY)
            keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
                    for o in page.get("Contents", [])]
            body = "\n".join(keys + ["zz/none-%06d" % i for i in range(100000)]).encode()
            req = urllib.request.Request(g.admin_url() + "/admin/prefetch?bucket=%s&window=1&concurrency=1&idle=60"
                                         % BUCKET, data=body, method="POST")
            req.add_header("Authorization", "Bearer " + TOKEN)
            urllib.request.urlopen(req, timeout=60).read()
        hitcost.callgrind_window(g.proc.pid, lambda: bench(g.port, gkey, *common, "--epochs", args.epochs))
    finally:
        g.stop(expect_clean=False)
    total = hitcost.callgrind_total(out)
    shutil.rmtree(out, ignore_errors=True)  # the profile and a preallocated 1 GiB cache directory
    return total / (args.objects * args.epochs)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", required=True, help="a Granary binary without the prefetch hook")
    ap.add_argument("--objects", type=int, default=200)
    ap.add_argument("--epochs", type=int, default=5)
    args = ap.parse_args()
    origin = harness.Origin()
    try:
        okey = harness.ORIGIN_KEY
        harness.boto3_client(origin.url, key=okey).create_bucket(Bucket=BUCKET)
        bench(origin.port, okey, "--prefix", "p", "--obj.size", "4KiB", "--objects", args.objects,
              "--concurrent", 8, "--duration", "0s", "--noclear")
        rows = [("baseline (%s)" % args.baseline, measure(args.baseline, origin, args, False)),
                ("this tree, no prefetch job", measure(harness.GRANARY, origin, args, False)),
                ("this tree, a prefetch job ordering every key read", measure(harness.GRANARY, origin, args, True))]
    finally:
        origin.stop()
    print("| target | instructions per warm 4 KiB hit | / baseline |")
    print("|---|---|---|")
    for name, ir in rows:
        print("| %s | %.0f | %.4f |" % (name, ir, ir / rows[0][1]))


if __name__ == "__main__":
    main()

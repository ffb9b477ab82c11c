#!/usr/bin/env python3
"""Instructions per warm hit, counted by callgrind (stable under load, unlike wall-clock figures).

  python3 bench/hitcost.py [--size 4KiB] [--objects 500] [--epochs 10] [--concurrent 64] [--out DIR]

Starts s3rver (tests/integration/harness.py), Granary under `valgrind --tool=callgrind
--instr-atstart=no` (one I/O thread, access log off, as bench/peers.py runs it), reads every object once
(the cold pass, not counted), then switches instrumentation on and reads all objects --epochs times with
build/bench/granary-bench (SigV4 on), and prints the server's instructions per request (Ir / GETs).
The callgrind profile is left in --out for callgrind_annotate."""
import argparse
import glob
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import harness  # noqa: E402

BENCH = os.path.join(HERE, "..", "build", "bench", "granary-bench")
BUCKET = "hitcost"


def bench(port, key, *args, bucket=BUCKET):
    cmd = [BENCH, "get", "--host", "127.0.0.1:%d" % port, "--access-key", key[0], "--secret-key", key[1],
           "--bucket", bucket, "-q"] + [str(a) for a in args]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=3600)


def callgrind_window(pid, run):
    """Counts instructions in the callgrind-run process `pid` only while run() runs, then dumps them."""
    subprocess.run(["callgrind_control", "-i", "on", str(pid)], check=True, capture_output=True)
    run()
    subprocess.run(["callgrind_control", "-i", "off", str(pid)], check=True, capture_output=True)
    subprocess.run(["callgrind_control", "-d", str(pid)], check=True, capture_output=True)


def callgrind_total(out):
    """The instructions counted in the callgrind.out.* files under `out` (the largest summary)."""
    total = 0
    for f in glob.glob(os.path.join(out, "callgrind.out.*")):
        with open(f) as fh:
            for line in fh:
                if line.startswith("summary:") or line.startswith("totals:"):
                    total = max(total, int(line.split()[1]))
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="4KiB")
    ap.add_argument("--objects", type=int, default=500)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--concurrent", type=int, default=64)
    ap.add_argument("--out", default=tempfile.mkdtemp(prefix="granary-hitcost-"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for f in glob.glob(os.path.join(args.out, "callgrind.out.*")):
        os.unlink(f)
    wrapper = os.path.join(args.out, "granary-under-callgrind")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nexec valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=%s/callgrind.out.%%p "
                "%s \"$@\"\n" % (args.out, os.path.abspath(harness.GRANARY)))
    os.chmod(wrapper, 0o755)
    origin = harness.Origin()
    harness.GRANARY = wrapper
    work = tempfile.mkdtemp(prefix="granary-hitcost-cache-")
    granary = harness.Granary(origin.url, threads=1, extra=["--cache-dir", "%s/c:1GiB" % work, "--ram-cache", "1GiB",
                                                            "--access-log", "false", "--metadata-ttl", "forever"])
    try:
        okey, gkey = harness.ORIGIN_KEY, harness.CLIENT_KEY
        harness.boto3_client(origin.url, key=okey).create_bucket(Bucket=BUCKET)
        bench(origin.port, okey, "--prefix", "p", "--obj.size", args.size, "--objects", args.objects,
              "--concurrent", 8, "--duration", "0s", "--noclear")
        common = ["--prefix", "p", "--list-existing", "--concurrent", args.concurrent, "--access", "epoch"]
        bench(granary.port, gkey, *common, "--epochs", 2)  # cold, then one warm epoch (untimed)
        callgrind_window(granary.proc.pid, lambda: bench(granary.port, gkey, *common, "--epochs", args.epochs))
    finally:
        granary.stop(expect_clean=False)
        origin.stop()
    requests = args.objects * args.epochs
    total = callgrind_total(args.out)
    print("requests %d, Ir %d, instructions per request %.0f, profile in %s" % (requests, total, total / requests, args.out))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Where a cold epoch's CPU goes, process by process: N objects of 1-4 MiB at an s3rver behind the latency
shim (+20 ms first byte, 90 MB/s per connection), read once through each target in the order given, with
the CPU seconds (utime + stime from /proc, children included) of s3rver, the shim, each server and the
client, the wall time and the time to first byte. A target may repeat: "origin" before and after the
proxies brackets them (the page cache and the neighbours' load move during a run).

  python3 bench/cold_profile.py N [origin|granary|before|nginx ...]   (default: origin granary)

Environment: BEFORE=binary adds a second Granary ("before"); CONC (16) readers; RAM (1GiB) and RAMB (the
"before" one's) RAM tiers; CDIR (2GiB) each cache directory; PERF=1 records `perf record -g` of each server
during its epoch into PERF_DIR (/tmp); GRANARY_BIN and GRANARY_BENCH_BIN as in bench/peers.py.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import harness  # noqa: E402
import peers  # noqa: E402


def granary(shim, binary, work, name, ram):
    current, harness.GRANARY = harness.GRANARY, binary
    try:
        return harness.Granary("http://127.0.0.1:%d" % shim.port, threads=2,
                               extra=["--cache-dir", "%s/%s:%s" % (work, name, os.environ.get("CDIR", "2GiB")),
                                      "--ram-cache", ram, "--access-log", "false", "--metadata-ttl", "forever"])
    finally:
        harness.GRANARY = current


def main():
    n = int(sys.argv[1])
    targets = sys.argv[2:] or ["origin", "granary"]
    conc = int(os.environ.get("CONC", "16"))
    perf_dir = os.environ.get("PERF_DIR", "/tmp")
    work = tempfile.mkdtemp(prefix="granary-cold-profile-")
    origin = harness.Origin()
    shim = peers.Shim(origin.port)
    servers = {}
    try:
        if "nginx" in targets:
            servers["nginx"] = peers.Nginx(shim.port, cache_size="%dg" % max(1, int(n * 2.6 / 1024) + 1))
        servers["granary"] = granary(shim, harness.GRANARY, work, "granary", os.environ.get("RAM", "1GiB"))
        if os.environ.get("BEFORE"):
            servers["before"] = granary(shim, os.environ["BEFORE"], work, "before",
                                        os.environ.get("RAMB", os.environ.get("RAM", "1GiB")))
        harness.boto3_client(origin.url, key=harness.ORIGIN_KEY).create_bucket(Bucket=peers.BUCKET)
        peers.prepare(origin.port, harness.ORIGIN_KEY, "epoch", "4MiB", n, randsize_min="1MiB")
        pids = {"s3rver": origin.proc.pid, "shim": shim.proc.pid}
        pids.update({name: s.proc.pid for name, s in servers.items()})
        ports = {"origin": (shim.port, harness.ORIGIN_KEY)}
        ports.update({name: (s.port, harness.ORIGIN_KEY if name == "nginx" else harness.CLIENT_KEY)
                      for name, s in servers.items()})
        for t in targets:
            perf = None
            if os.environ.get("PERF") and t in servers:
                perf = subprocess.Popen(["perf", "record", "-F", "499", "-g", "-p", str(pids[t]), "-o",
                                         os.path.join(perf_dir, "perf-%s.data" % t)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(0.5)
            before = {k: peers.cpu_seconds(p) for k, p in pids.items()}
            r0 = os.times()
            res = peers.bench("get", ports[t][0], ports[t][1], "--prefix", "epoch", "--list-existing",
                              "--concurrent", conc, "--threads", 2, "--access", "epoch", "--epochs", 1)
            r1 = os.times()
            cpu = {k: peers.cpu_seconds(p) - before[k] for k, p in pids.items()}
            cpu = {k: v for k, v in cpu.items() if v >= 0.05 or k in ("s3rver", "shim", t)}
            cpu["client"] = r1.children_user + r1.children_system - r0.children_user - r0.children_system
            if perf:
                perf.send_signal(signal.SIGINT)
                perf.wait()
            ep = peers.summary(res, "epoch-1")
            gib = ep["bytes"] / (1 << 30)
            print("%-8s wall %.2f s  %.2f GiB  TTFB p50/p99 %.1f/%.1f ms  CPU s per GiB: %s" % (
                t, res["phases"][0]["wall_seconds"], gib, ep["ttfb_us"]["p50"] / 1000, ep["ttfb_us"]["p99"] / 1000,
                "  ".join("%s %.2f" % (k, v / gib) for k, v in cpu.items())), flush=True)
    finally:
        for s in servers.values():
            if isinstance(s, peers.Nginx):
                s.stop()
            else:
                s.stop(expect_clean=False)
        shim.stop()
        origin.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

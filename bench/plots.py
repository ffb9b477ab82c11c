#!/usr/bin/env python3
"""The two plots of bench/RESULTS.md, from one run on one machine:

  - warm-hit throughput against object size (4 KiB to 64 MiB, 32 connections), nginx proxy_cache+slice
    against Granary, both in front of the same s3rver origin (no latency shim: these are hits);
  - the latency CDF of warm hits on 64 KiB objects over 64 connections, from granary-bench's per-request
    TSV (Warp's --full columns).

  python3 bench/plots.py [--seconds 5] [--out bench/results]
Writes OUT/throughput_vs_size.{dat,png} and OUT/hit_latency_cdf.{dat,png} (gnuplot, from Debian's
gnuplot-nox; scripts/deps --bench installs it).
"""
import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import peers  # noqa: E402
from peers import harness  # noqa: E402

SIZES = [("4KiB", 4 << 10), ("64KiB", 64 << 10), ("1MiB", 1 << 20), ("16MiB", 16 << 20), ("64MiB", 64 << 20)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--replot", action="store_true", help="only redraw the PNGs from OUT's .dat files")
    args = ap.parse_args()
    if args.replot:
        return draw(args.out)
    if not shutil.which("gnuplot"):
        raise SystemExit("gnuplot is missing: scripts/deps --bench installs it")
    os.makedirs(args.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="granary-plots-")
    origin = harness.Origin()
    nginx = peers.Nginx(origin.port, cache_size="4g")
    granary = harness.Granary(origin.url, threads=2,
                              extra=["--cache-dir", "%s/cache:3GiB" % work, "--ram-cache", "2GiB", "--access-log", "false",
                                     "--metadata-ttl", "forever"])
    okey, gkey = harness.ORIGIN_KEY, harness.CLIENT_KEY
    targets = [("nginx", nginx.port, okey), ("granary", granary.port, gkey)]
    secs = "%ds" % args.seconds
    rows = []
    try:
        harness.boto3_client(origin.url, key=okey).create_bucket(Bucket=peers.BUCKET)
        for label, size in SIZES:
            count = max(8, min(2000, (256 << 20) // size))
            peers.prepare(origin.port, okey, "size-" + label, label, count)
            row = [label, size]
            for name, port, key in targets:
                res = peers.bench("get", port, key, "--prefix", "size-" + label, "--list-existing", "--concurrent", 32,
                                  "--threads", 2, "--duration", secs, "--cold-pass")
                row.append(peers.summary(res, "warm")["mib_per_sec"])
            rows.append(row)
            print("%-6s nginx %.0f MiB/s, Granary %.0f MiB/s" % (label, row[2], row[3]), file=sys.stderr)
        # Latency CDF of 64 KiB hits over 64 connections.
        cdf = {}
        for name, port, key in targets:
            tsv = os.path.join(work, name + ".tsv")
            cmd = [peers.BENCH, "get", "--host", "127.0.0.1:%d" % port, "--access-key", key[0], "--secret-key", key[1],
                   "--bucket", peers.BUCKET, "--prefix", "size-64KiB", "--list-existing", "--concurrent", "64",
                   "--threads", "2", "--duration", secs, "--cold-pass", "--csv", tsv, "-q"]
            subprocess.run(cmd, check=True, capture_output=True)
            with open(tsv) as f:
                lat = sorted(int(r["duration_ns"]) / 1e3 for r in csv.DictReader(f, delimiter="\t")
                             if r["cat"] == "warm" and r["op"] == "GET" and not r["error"])
            cdf[name] = lat
    finally:
        granary.stop(expect_clean=False)
        nginx.stop()
        origin.stop()
        shutil.rmtree(work, ignore_errors=True)

    with open(os.path.join(args.out, "throughput_vs_size.dat"), "w") as f:
        f.write("# size bytes nginx_MiB/s granary_MiB/s (warm hits, 32 connections)\n")
        for r in rows:
            f.write("%s %d %.1f %.1f\n" % tuple(r))
    with open(os.path.join(args.out, "hit_latency_cdf.dat"), "w") as f:
        f.write("# latency_us fraction target (64 KiB warm hits, 64 connections)\n")
        for name, lat in cdf.items():
            step = max(1, len(lat) // 400)
            for i in range(0, len(lat), step):
                f.write("%.1f %.5f\n" % (lat[i], (i + 1) / len(lat)))
            f.write("%.1f 1.0\n\n\n" % lat[-1])
    draw(args.out)
    print("wrote %s/throughput_vs_size.png and %s/hit_latency_cdf.png" % (args.out, args.out))
    for r in rows:
        print("| %s | %.0f | %.0f | %.2f |" % (r[0], r[2], r[3], r[3] / r[2] if r[2] else 0))
    for name, lat in cdf.items():
        print("%s 64 KiB hit latency: p50 %.0f us, p99 %.0f us" % (name, lat[len(lat) // 2], lat[int(len(lat) * 0.99)]))


def draw(out):
    plot = """
set terminal pngcairo size 900,560 font "DejaVu Sans,11" noenhanced
set grid
set key top left
set output "%(out)s/throughput_vs_size.png"
set title "Warm hits, 32 connections: MiB/s by object size (same machine, same run)"
set logscale x 2
set xlabel "object size"
set xtics ("4 KiB" 4096, "64 KiB" 65536, "1 MiB" 1048576, "16 MiB" 16777216, "64 MiB" 67108864)
set ylabel "MiB/s"
plot "%(out)s/throughput_vs_size.dat" using 2:3 with linespoints lw 2 title "nginx proxy_cache+slice", \\
     "" using 2:4 with linespoints lw 2 title "Granary"
unset logscale x
set xtics autofreq
set output "%(out)s/hit_latency_cdf.png"
set title "Latency CDF, 64 KiB warm hits, 64 connections"
set logscale x 10
set xlabel "request latency (microseconds)"
set ylabel "fraction of requests"
set key bottom right
plot "%(out)s/hit_latency_cdf.dat" index 0 using 1:2 with lines lw 2 title "nginx proxy_cache+slice", \\
     "" index 1 using 1:2 with lines lw 2 title "Granary"
""" % {"out": out}
    subprocess.run(["gnuplot"], input=plot, text=True, check=True)


if __name__ == "__main__":
    main()

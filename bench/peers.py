#!/usr/bin/env python3
"""Side by side, in one run, on one machine, over the same objects: the same granary-bench load against
(a) the origin directly, (b) nginx proxy_cache + slice (bench/nginx/s3-cache.conf.in) and (c) Granary.
The origin is a real s3rver behind the latency shim (granary-bench shim: +20 ms to each first byte,
90 MB/s per connection, each way), so misses cost what they cost against S3. Workloads:

  1. warm hits, 64 MiB objects, 32 connections: MiB/s
  2. warm hits, 4 KiB and 64 KiB objects, 64 connections: obj/s and p99 latency
  3. cold reads of 1 GiB objects, one stream: MiB/s and time to first byte
  4. a training epoch: 2,000 objects of 1-4 MiB, 4 epochs, each in a new shuffled order: wall time per epoch,
     and the CPU seconds (utime + stime from /proc, workers included) each server spent per GiB of epoch 1.
     Every run starts a fresh Granary and nginx (empty caches) for it, so epoch 1 is cold in every run.
  5. iperf3 on loopback: the wire, so hit throughput is also a share of it
  6. wrk (Debian's wrk 4.1) with presigned URLs, one per object, replayed in turn: warm hits of the 64 MiB
     objects over 32 connections (MiB/s) and of the 4 KiB ones over 64 (obj/s, p99): a second load tool,
     and SigV4 query-string verification on every hit

Workloads 1, 2 and 6 also run against target "limit": bench/wire_limit.cpp, an HTTP server that answers each
GET with bytes already in memory and does nothing else (no signature check, no cache). No server can answer
these clients faster on this machine, so each server's figure is also a share of it. Workload 2 also
records each server's CPU microseconds per object (utime + stime from /proc) and the client's
(granary-bench's, from getrusage of the waited child), since on 2 cores both share the CPUs.

Each figure is the median of --runs repetitions, and is printed with its ratio to nginx and to the origin.
Scale with --scale (0.1 for a quick look); results as Markdown on stdout and JSON with --json.

  python3 bench/peers.py [--runs 3] [--scale 1] [--json out.json] [--workloads 1,2,3,4,5] [--baseline OLD_BINARY]
                         [--policy]
Needs a release build (scripts/build release or cmake -DCMAKE_BUILD_TYPE=Release), and nginx-core,
iperf3 and wrk from Debian (scripts/deps --bench installs them).
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402

BENCH = os.environ.get("GRANARY_BENCH_BIN", os.path.join(ROOT, "build", "bench", "granary-bench"))
WIRE_LIMIT = os.path.join(os.path.dirname(BENCH), "wire-limit")
BUCKET = "peers"
MIB = 1 << 20


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def listening_port(proc):
    """The port in the first line a bench tool prints ("... listening on 127.0.0.1:PORT")."""
    return int(re.search(r"listening on 127\.0\.0\.1:(\d+)", proc.stdout.readline()).group(1))


class Shim:
    def __init__(self, target_port, latency="20ms", rate="90MB"):
        self.proc = subprocess.Popen([BENCH, "shim", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:%d" % target_port,
                                      "--latency", latency, "--rate", rate], stdout=subprocess.PIPE, text=True)
        self.port = listening_port(self.proc)

    def stop(self):
        self.proc.kill()
        self.proc.wait()


class Nginx:
    def __init__(self, upstream_port, cache_size="64g"):
        self.prefix = tempfile.mkdtemp(prefix="granary-nginx-")
        self.port = free_port()
        with open(os.path.join(HERE, "nginx", "s3-cache.conf.in")) as f:
            conf = f.read()
        for k, v in {"@PREFIX@": self.prefix, "@PORT@": str(self.port), "@UPSTREAM@": "127.0.0.1:%d" % upstream_port,
                     "@CACHE_SIZE@": cache_size}.items():
            conf = conf.replace(k, v)
        with open(os.path.join(self.prefix, "nginx.conf"), "w") as f:
            f.write(conf)
        self.proc = subprocess.Popen(["nginx", "-p", self.prefix, "-c", "nginx.conf", "-g", "daemon off;"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                import socket
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("nginx did not start: %s" % self.proc.stderr.read())

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.prefix, ignore_errors=True)


class WireLimit:
    """bench/wire_limit.cpp on a free loopback port: listings relayed to `origin_port`, GETs answered from RAM."""

    def __init__(self, origin_port):
        self.proc = subprocess.Popen([WIRE_LIMIT, "--listen", "127.0.0.1:0", "--origin", "127.0.0.1:%d" % origin_port,
                                      "--threads", "2"], stdout=subprocess.PIPE, text=True)
        self.port = listening_port(self.proc)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def cpu_seconds(pid):
    """utime + stime of a process and its descendants (nginx's workers), from /proc, in seconds."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
        for task in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, task)) as f:
                total += sum(cpu_seconds(int(c)) for c in f.read().split())
    except OSError:
        pass
    return total


CLIENT_CPU = [0.0]  # granary-bench's CPU seconds in the last bench() call


def bench(mode, port, key, *args):
    import resource
    fd, out = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    cmd = [BENCH, mode, "--host", "127.0.0.1:%d" % port, "--access-key", key[0], "--secret-key", key[1],
           "--bucket", BUCKET, "--json", out, "-q"] + [str(a) for a in args]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CLIENT_CPU[0] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if p.returncode != 0:
        raise SystemExit("%s failed:\n%s\n%s" % (" ".join(cmd), p.stdout, p.stderr))
    with open(out) as f:
        result = json.load(f)
    os.unlink(out)
    return result


def summary(result, category, op="GET"):
    for s in result["summaries"]:
        if s["category"] == category and s["op"] == op:
            return s
    raise SystemExit("no %s/%s summary in %s" % (category, op, result["summaries"]))


def prepare(port, key, prefix, size, objects, randsize_min=None):
    args = ["--prefix", prefix, "--obj.size", size, "--objects", objects, "--concurrent", 8, "--duration", "0s",
            "--noclear"]
    if randsize_min:
        args += ["--obj.randsize", "--obj.minsize", randsize_min]
    bench("get", port, key, *args)


WRK_PATHS = {}  # (port, prefix) -> presigned paths, signed once: nginx's cache key holds the query string


def presigned_paths(port, key, prefix):
    if (port, prefix) in WRK_PATHS:
        return WRK_PATHS[(port, prefix)]
    import boto3
    from botocore.config import Config
    s3 = boto3.client("s3", endpoint_url="http://127.0.0.1:%d" % port, aws_access_key_id=key[0],
                      aws_secret_access_key=key[1], region_name="us-east-1",
                      config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix + "/")
            for o in page.get("Contents", [])]
    if not keys:
        raise SystemExit("wrk: no objects under %s/" % prefix)
    paths = []
    for k in keys:  # valid for the whole run (a week at most, as SigV4 allows)
        url = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": k}, ExpiresIn=6 * 3600)
        paths.append(url[url.index("/", len("http://")):])
    WRK_PATHS[(port, prefix)] = paths
    return paths


def wrk(port, key, prefix, connections, secs):
    """Workload 6: wrk over presigned GET URLs of every object under `prefix` (signed with `key` for this
    port's host, once per run of peers.py, so the warm-up and every run send the same URLs), each thread
    walking them in turn from its own place. @return (MiB/s received, requests/s, p99 ms)."""
    paths = presigned_paths(port, key, prefix)
    fd, script = tempfile.mkstemp(suffix=".lua")
    with os.fdopen(fd, "w") as f:
        f.write("local paths = {\n%s\n}\n" % ",\n".join('"%s"' % p for p in paths))
        # setup() runs once per thread in the main state; each thread starts at its own place in the list.
        f.write("local threads = 0\nfunction setup(thread)\n  thread:set(\"start\", threads * 997)\n"
                "  threads = threads + 1\nend\n"
                "local i = 0\nfunction init(args)\n  i = (start or 0) % #paths\nend\n"
                "function request()\n  i = i % #paths + 1\n  return wrk.format(\"GET\", paths[i])\nend\n")
    try:
        p = subprocess.run(["wrk", "-t", "2", "-c", str(connections), "-d", secs, "--timeout", "30s", "--latency", "-s", script,
                            "http://127.0.0.1:%d" % port], capture_output=True, text=True, timeout=600)
    finally:
        os.unlink(script)
    out = p.stdout
    if p.returncode != 0 or "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit("wrk against port %d failed or saw errors:\n%s\n%s" % (port, out, p.stderr))
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))
    m = re.search(r"99%\s+([0-9.]+)(us|ms|s)\b", out)
    p99 = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    # Bytes received, partial responses included (wrk's units are powers of 1024).
    m = re.search(r"Transfer/sec:\s+([0-9.]+)([KMGT]?B)", out)
    mib = float(m.group(1)) * {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}[m.group(2)] / MIB
    return mib, rps, p99


def iperf3():
    port = free_port()
    server = subprocess.Popen(["iperf3", "-s", "-B", "127.0.0.1", "-p", str(port), "-1"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        # 32 streams, as many as workload 1's connections.
        p = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", "5", "-P", "32", "-J"], capture_output=True,
                           text=True, timeout=60)
        return json.loads(p.stdout)["end"]["sum_received"]["bits_per_second"] / 8 / MIB
    finally:
        server.kill()
        server.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--scale", type=float, default=1.0, help="object counts and durations times this")
    ap.add_argument("--workloads", default="1,2,3,4,5")
    ap.add_argument("--seconds", type=int, default=10, help="length of each timed warm run")
    ap.add_argument("--ram-gib", type=int, default=6,
                    help="Granary's RAM tier; nginx serves hits from the OS page cache, as large as free memory")
    ap.add_argument("--baseline", metavar="GRANARY_BINARY",
                    help="also run this Granary binary (an earlier build) as target 'baseline', in the same run and "
                         "with the same options: before/after figures")
    ap.add_argument("--baseline-extra", default="", metavar="ARGS",
                    help="more Granary flags for the baseline target only, e.g. \"--direct-io false\" with --baseline "
                         "set to the same binary: the disk tier through the page cache against O_DIRECT")
    ap.add_argument("--policy", action="store_true",
                    help="the 'granary' target's client key has an access policy (ten Allow statements, the last "
                         "one matching); with --baseline set to the same binary, the policy check's cost")
    ap.add_argument("--json")
    args = ap.parse_args()
    wl = set(int(w) for w in args.workloads.split(","))
    for tool in ("nginx", "iperf3") + (("wrk",) if 6 in wl else ()):
        if not shutil.which(tool):
            raise SystemExit("%s is missing: scripts/deps --bench installs it" % tool)
    if not os.path.exists(BENCH):
        raise SystemExit("%s is missing: build the tree first" % BENCH)

    n = lambda x: max(1, int(round(x * args.scale)))  # noqa: E731
    secs = "%ds" % max(2, int(args.seconds * min(1.0, args.scale * 2)))
    work = tempfile.mkdtemp(prefix="granary-peers-")
    origin = harness.Origin()
    shim = Shim(origin.port)
    nginx = Nginx(shim.port)
    # Room for everything the run reads (Granary preallocates its cache directory; nginx's is a bound).
    cold_size = (1 << 30) if args.scale >= 1 else (128 << 20)
    need = ((8 * 64 * MIB * args.scale if 1 in wl else 0) + (2000 * 68 * 1024 * args.scale if 2 in wl else 0) +
            (args.runs * cold_size if 3 in wl else 0))
    cache_gib = max(1, int(need * 1.25 / (1 << 30)) + 1)
    epoch_gib = max(1, int(2000 * 2.6 * MIB * args.scale * 1.25 / (1 << 30)) + 1)  # workload 4's own servers
    nginx.stop()
    nginx = Nginx(shim.port, cache_size="%dg" % cache_gib)
    policy = {}
    if args.policy:
        # The bench key under a policy as a shared cluster would write one: statements for other teams'
        # prefixes first, so each request walks them all before the one that allows it.
        statements = "".join('[[client_keys.allow]]\nactions = ["s3:GetObject", "s3:ListBucket"]\n'
                             'resources = ["arn:aws:s3:::datasets-%d/team-%d/*", "arn:aws:s3:::%s/team-%d/*"]\n'
                             % (i, i, BUCKET, i) for i in range(9))
        statements += ('[[client_keys.allow]]\nactions = ["s3:Get*", "s3:List*"]\nresources = ["arn:aws:s3:::%s/*"]\n'
                       % BUCKET)
        policy = {"client_keys": (), "config": '[[client_keys]]\naccess_key = "%s"\nsecret_key = "%s"\n%s' % (
            harness.CLIENT_KEY[0], harness.CLIENT_KEY[1], statements)}
    granary = harness.Granary("http://127.0.0.1:%d" % shim.port, threads=2,
                              extra=["--cache-dir", "%s/granary-cache:%dGiB" % (work, cache_gib),
                                     "--ram-cache", "%dGiB" % args.ram_gib,
                                     "--access-log", "false", "--metadata-ttl", "forever"], **policy)
    okey, gkey = harness.ORIGIN_KEY, harness.CLIENT_KEY
    targets = {"origin": (shim.port, okey), "nginx": (nginx.port, okey), "granary": (granary.port, gkey)}
    pids = {"nginx": nginx.proc.pid, "granary": granary.proc.pid}
    limit = None
    baseline = None
    if args.baseline:
        current, harness.GRANARY = harness.GRANARY, os.path.abspath(args.baseline)
        try:
            baseline = harness.Granary("http://127.0.0.1:%d" % shim.port, threads=2,
                                       extra=["--cache-dir", "%s/baseline-cache:%dGiB" % (work, cache_gib),
                                              "--ram-cache", "%dGiB" % args.ram_gib,
                                              "--access-log", "false", "--metadata-ttl", "forever"] +
                                       args.baseline_extra.split())
        finally:
            harness.GRANARY = current
        targets["baseline"] = (baseline.port, gkey)
        pids["baseline"] = baseline.proc.pid
    results = {}  # name -> {target: [values per run]}

    def record(name, target, value):
        results.setdefault(name, {}).setdefault(target, []).append(value)

    def epochs(r):
        """Workload 4, run r: a fresh nginx and Granary (empty caches, so epoch 1 is cold in every run), the
        targets in turned order; epoch 1 alone in one granary-bench call with each server's CPU seconds
        read before and after it, then epochs 2-4."""
        fresh = {"nginx": Nginx(shim.port, cache_size="%dg" % epoch_gib)}
        servers = {"nginx": fresh["nginx"].proc.pid}
        binaries = [("granary", harness.GRANARY)] + ([("baseline", os.path.abspath(args.baseline))] if args.baseline else [])
        current = harness.GRANARY
        try:
            for name, binary in binaries:
                harness.GRANARY = binary
                more = args.baseline_extra.split() if name == "baseline" else []
                fresh[name] = harness.Granary("http://127.0.0.1:%d" % shim.port, threads=2,
                                              extra=["--cache-dir", "%s/epoch-%s-%d:%dGiB" % (work, name, r, epoch_gib),
                                                     "--ram-cache", "%dGiB" % args.ram_gib, "--access-log", "false",
                                                     "--metadata-ttl", "forever"] + more)
                servers[name] = fresh[name].proc.pid
        finally:
            harness.GRANARY = current
        ports = {"origin": (shim.port, okey)}
        ports.update({name: (srv.port, gkey if name != "nginx" else okey) for name, srv in fresh.items()})
        order = [t for t in ["origin", "nginx", "granary", "baseline"] if t in ports]
        order = order[r % len(order):] + order[:r % len(order)]
        try:
            for t in order:
                port, key = ports[t]
                common = ["--prefix", "epoch", "--list-existing", "--concurrent", 16, "--threads", 2, "--access", "epoch"]
                before = cpu_seconds(servers[t]) if t in servers else 0.0
                res = bench("get", port, key, *common, "--epochs", 1)
                cpu = cpu_seconds(servers[t]) - before if t in servers else 0.0
                record("4. epoch 1 (cold) wall s", t, res["phases"][0]["wall_seconds"])
                if t in servers:
                    gib = summary(res, "epoch-1")["bytes"] / (1 << 30)
                    record("4. epoch 1: server CPU s per GiB", t, cpu / gib)
                res = bench("get", port, key, *common, "--epochs", 3)
                walls = {p["category"]: p["wall_seconds"] for p in res["phases"]}
                for e in range(2, 5):
                    record("4. epoch %d wall s" % e, t, walls["epoch-%d" % (e - 1)])
        finally:
            for srv in fresh.values():
                if isinstance(srv, Nginx):
                    srv.stop()
                else:
                    srv.stop(expect_clean=False)
            for name in binaries:
                shutil.rmtree("%s/epoch-%s-%d" % (work, name[0], r), ignore_errors=True)

    try:
        if wl & {1, 2, 6}:
            limit = WireLimit(origin.port)
            targets["limit"] = (limit.port, okey)
            pids["limit"] = limit.proc.pid
        harness.boto3_client(origin.url, key=okey).create_bucket(Bucket=BUCKET)
        print("preparing objects at the origin...", file=sys.stderr)
        if wl & {1, 6}:
            prepare(origin.port, okey, "large", "64MiB", n(8))
        if wl & {2, 6}:
            prepare(origin.port, okey, "small4k", "4KiB", n(2000))
        if 2 in wl:
            prepare(origin.port, okey, "small64k", "64KiB", n(2000))
        if 3 in wl:
            for r in range(args.runs):
                for t in targets:
                    if t != "limit":
                        prepare(origin.port, okey, "cold-%s-%d" % (t, r), cold_size, 1)
        if 4 in wl:
            prepare(origin.port, okey, "epoch", "4MiB", n(2000), randsize_min="1MiB")

        for r in range(args.runs):
            print("run %d of %d" % (r + 1, args.runs), file=sys.stderr)
            if 5 in wl:
                record("iperf3 loopback MiB/s", "wire", iperf3())
            # The targets' order turns by one each run, so no target always runs right after another
            # (the page cache and the CPU's state then weigh on every target alike across runs).
            names = list(targets)
            names = names[r % len(names):] + names[:r % len(names)]
            if 4 in wl:
                epochs(r)
            for t in names if wl & {1, 2, 3, 6} else []:  # (workload 4 has servers of its own: epochs())
                port, key = targets[t]
                if 1 in wl:  # the origin through the shim is never warm: it is the S3 a user would read directly
                    res = bench("get", port, key, "--prefix", "large", "--list-existing", "--concurrent", 32,
                                "--threads", 2, "--duration", secs, *(["--cold-pass"] if r == 0 and t != "origin" else []))
                    record("1. 64 MiB hits, 32 conns: MiB/s", t, summary(res, "warm" if r == 0 and t != "origin" else "run")["mib_per_sec"])
                if 2 in wl:
                    for prefix, label in (("small4k", "4 KiB"), ("small64k", "64 KiB")):
                        common = ["--prefix", prefix, "--list-existing", "--concurrent", 64, "--threads", 2]
                        if r == 0 and t != "origin":  # the cold pass and a second of hits, not measured
                            bench("get", port, key, *common, "--duration", "1s", "--cold-pass")
                        before = cpu_seconds(pids[t]) if t in pids else 0.0
                        res = bench("get", port, key, *common, "--duration", secs)
                        cpu = cpu_seconds(pids[t]) - before if t in pids else 0.0
                        s = summary(res, "run")
                        record("2. %s hits, 64 conns: obj/s" % label, t, s["obj_per_sec"])
                        record("2. %s hits, 64 conns: p99 ms" % label, t, s["latency_us"]["p99"] / 1000)
                        if t in pids and s["objects"]:
                            record("2. %s hits: server CPU us per obj" % label, t, 1e6 * cpu / s["objects"])
                            record("2. %s hits: client CPU us per obj" % label, t, 1e6 * CLIENT_CPU[0] / s["objects"])
                if 6 in wl:
                    if r == 0 and t != "origin":  # warm, with the same URLs (nginx's key holds the query)
                        wrk(port, key, "large", 32, "5s")
                        wrk(port, key, "small4k", 64, "3s")
                    mib, _, _ = wrk(port, key, "large", 32, secs)
                    record("6. wrk, presigned, 64 MiB hits, 32 conns: MiB/s", t, mib)
                    _, rps, p99 = wrk(port, key, "small4k", 64, secs)
                    record("6. wrk, presigned, 4 KiB hits, 64 conns: obj/s", t, rps)
                    record("6. wrk, presigned, 4 KiB hits, 64 conns: p99 ms", t, p99)
                if 3 in wl and t != "limit":
                    res = bench("get", port, key, "--prefix", "cold-%s-%d" % (t, r), "--list-existing", "--concurrent", 1,
                                "--access", "epoch", "--epochs", 1)
                    s = summary(res, "epoch-1")
                    record("3. cold 1 GiB, one stream: MiB/s", t, s["mib_per_sec"])
                    record("3. cold 1 GiB, one stream: TTFB ms", t, s["ttfb_us"]["p50"] / 1000)
    finally:
        granary.stop(expect_clean=False)
        if baseline:
            baseline.stop(expect_clean=False)
        nginx.stop()
        if limit:
            limit.stop()
        shim.stop()
        origin.stop()
        shutil.rmtree(work, ignore_errors=True)

    med = {name: {t: statistics.median(v) for t, v in per.items()} for name, per in results.items()}
    ratio = lambda a, b: "%.2f" % (a / b) if a and b else "-"  # noqa: E731
    cols = [("origin", "origin (S3-like)"), ("nginx", "nginx proxy_cache+slice")] + (
        [("baseline", "Granary before (baseline)")] if baseline else []) + [("granary", "Granary")] + (
        [("limit", "wire limit")] if limit else [])
    pairs = ([("baseline", "nginx", "before / nginx")] if baseline else []) + [("granary", "nginx", "Granary / nginx")] + (
        [("granary", "baseline", "Granary / before")] if baseline else []) + [("granary", "origin", "Granary / origin")] + (
        [("nginx", "limit", "nginx / limit"), ("granary", "limit", "Granary / limit")] if limit else [])
    print("| workload | %s | %s |" % (" | ".join(c[1] for c in cols), " | ".join(p[2] for p in pairs)))
    print("|---" * (1 + len(cols) + len(pairs)) + "|")
    for name, m in med.items():
        if "wire" in m:
            print("| %s | %.0f |%s" % (name, m["wire"], " |" * (len(cols) + len(pairs) - 1)))
            continue
        print("| %s | %s | %s |" % (name, " | ".join("%.2f" % m[c] if c in m else "" for c, _ in cols),
                                    " | ".join(ratio(m.get(a), m.get(b)) for a, b, _ in pairs)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"runs": args.runs, "scale": args.scale, "raw": results, "median": med}, f, indent=1)


if __name__ == "__main__":
    main()

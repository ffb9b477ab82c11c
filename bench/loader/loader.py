#!/usr/bin/python3
"""A real training input pipeline as the benchmark: a PyTorch DataLoader over an image data set in S3.

Each worker (--workers of them, one boto3 client each, made in worker_init_fn) GETs JPEG objects of
100-500 KiB, decodes them with PIL and applies RandomResizedCrop(224) + flip + ToTensor, as an ImageNet
loader would; batches of --batch go to a training loop whose "GPU" step is a fixed --compute-ms per batch
(time.sleep on the CPU; a kernel of that length on the GPU with --device cuda). Per epoch (1 to --epochs,
each in its own shuffled order, the same orders for every target) it reports samples/s and the data-stall
fraction: the share of the epoch's wall time the training loop spent waiting for its next batch.

Targets, each read cold in epoch 1 (a fresh cache for every target and run):
  local             the same files from local disk (page cache): this machine's decode-bound ceiling
  direct            the origin itself: s3rver behind the latency shim (+20 ms first byte, 90 MB/s a connection)
  nginx             nginx proxy_cache + slice in front of it (bench/nginx/s3-cache.conf.in, as bench/peers.py)
  granary           Granary in front of it
  granary-prefetch  Granary, and before each epoch `granary admin prefetch s3://BUCKET --order FILE` with that
                    epoch's key order (skipped, with a message, where the build has no such command)

  /usr/bin/python3 bench/loader/loader.py [--quick] [--objects 2000] [--workers 8] [--batch 32]
      [--compute-ms 100] [--epochs 3] [--runs 1] [--targets local,direct,nginx,granary,granary-prefetch]
      [--scale 1] [--device cpu|cuda] [--json out.json]

Needs Debian's python3-torch and python3-torchvision (scripts/deps --bench), which /usr/bin/python3 imports
(run under another python3, the script starts itself again under /usr/bin/python3), a release build
(build/granary, build/bench/granary-bench) and nginx-core. Prints a Markdown table of medians over --runs.
"""
import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

BUCKET = "loader"
KIB = 1024
MIB = 1 << 20
ALL_TARGETS = ("local", "direct", "nginx", "granary", "granary-prefetch")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objects", type=int, default=2000, help="images in the data set (times --scale)")
    ap.add_argument("--min-kib", type=int, default=100, help="smallest encoded image")
    ap.add_argument("--max-kib", type=int, default=500, help="largest encoded image")
    ap.add_argument("--workers", type=int, default=8, help="DataLoader workers, one boto3 client each")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--compute-ms", type=float, default=100.0, help="the simulated training step per batch")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--runs", type=int, default=1, help="repetitions; the table shows medians")
    ap.add_argument("--targets", default=",".join(ALL_TARGETS))
    ap.add_argument("--scale", type=float, default=1.0, help="--objects times this")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                    help="cuda: batches move to the GPU and the step runs there (GPU utilisation reported)")
    ap.add_argument("--decode", choices=("jpeg", "none"), default="jpeg",
                    help="jpeg: PIL decode + RandomResizedCrop + ToTensor in the workers; none: the bytes only "
                         "(a loader of token shards: the data path without the decode's CPU)")
    ap.add_argument("--ram-gib", type=int, default=2, help="Granary's RAM tier")
    ap.add_argument("--prefetch-window", default="256MiB", help="granary-prefetch: the job's --window")
    ap.add_argument("--seed", type=int, default=17, help="data set content and the epochs' orders")
    ap.add_argument("--data-dir", help="keep the generated images here and reuse them in later runs (same "
                                       "--objects, sizes and --seed); default: a temporary directory")
    ap.add_argument("--quick", action="store_true",
                    help="a quick look: 400 objects, 2 epochs, compute 50 ms (other flags still apply after)")
    ap.add_argument("--granary", help="the Granary binary (default: $GRANARY_BIN, then build/granary)")
    ap.add_argument("--json", help="write every epoch of every run and the medians here")
    args = ap.parse_args(argv)
    if args.quick:
        given = set(a.split("=")[0] for a in (argv if argv is not None else sys.argv[1:]))
        if "--objects" not in given:
            args.objects = 400
        if "--epochs" not in given:
            args.epochs = 2
        if "--compute-ms" not in given:
            args.compute_ms = 50.0
    args.targets = [t for t in args.targets.split(",") if t]
    for t in args.targets:
        if t not in ALL_TARGETS:
            ap.error("unknown target %r (one of %s)" % (t, ", ".join(ALL_TARGETS)))
    if not (0 < args.min_kib <= args.max_kib):
        ap.error("--min-kib must be positive and at most --max-kib")
    args.objects = max(args.batch, int(round(args.objects * args.scale)))
    return args


def ensure_torch():
    """Imports torch, or starts this script again under Debian's /usr/bin/python3, which sees python3-torch."""
    try:
        import torch  # noqa: F401
        import torchvision  # noqa: F401
        return
    except ImportError as e:
        err = e
    debian = "/usr/bin/python3"
    if os.path.realpath(sys.executable) != os.path.realpath(debian) and os.path.exists(debian):
        probe = subprocess.run([debian, "-c", "import torch, torchvision"], capture_output=True)
        if probe.returncode == 0:
            print("loader: %s has no torch; running under %s" % (sys.executable, debian), file=sys.stderr)
            os.execv(debian, [debian] + sys.argv)
    raise SystemExit("loader: torch/torchvision not importable (%s): scripts/deps --bench installs Debian's "
                     "python3-torch and python3-torchvision for /usr/bin/python3" % err)


# ---------------------------------------------------------------------------------------------- data set

def make_images(n, min_kib, max_kib, seed, out_dir):
    """n JPEGs of min_kib..max_kib KiB (photo-like: smooth gradients, shapes and grain), written to out_dir.
    The pixel count is steered by the bytes per pixel seen so far, so sizes land in the range.
    Returns [(key, path, size)]."""
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(seed)
    # Grain comes from one bank of noise, cut at random offsets: drawing fresh noise for every image was
    # most of the set-up time.
    bank = rng.normal(0, 1, (1024, 1024, 3)).astype(np.float32)
    bpp = 1.0  # encoded bytes per pixel at quality 90 for this kind of content; learnt as we go
    out = []
    for i in range(n):
        target = rng.uniform(min_kib, max_kib) * KIB
        for _ in range(4):
            pixels = target / bpp
            aspect = rng.uniform(0.75, 1.33)
            h = min(1024, max(64, int((pixels / aspect) ** 0.5)))
            w = min(1024, max(64, int(h * aspect)))
            y = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
            x = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
            img = rng.uniform(0, 255, 3).astype(np.float32) * (1 - y) + rng.uniform(0, 255, 3).astype(np.float32) * x
            oy, ox = rng.integers(0, 1024 - h + 1), rng.integers(0, 1024 - w + 1)
            img += bank[oy:oy + h, ox:ox + w] * np.float32(rng.uniform(25, 40))
            for _ in range(3):  # a few blocks of another colour, so crops differ
                y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
                img[y0:y0 + h // 3, x0:x0 + w // 3] += rng.uniform(-80, 80, 3).astype(np.float32)
            buf = io.BytesIO()
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=90)
            size = buf.tell()
            bpp = 0.7 * bpp + 0.3 * (size / (h * w))
            if min_kib * KIB <= size <= max_kib * KIB:
                break
        key = "train/%05d.jpg" % i
        path = os.path.join(out_dir, "%05d.jpg" % i)
        with open(path, "wb") as f:
            f.write(buf.getvalue())
        out.append((key, path, size))
    return out


def data_set(args, work):
    """The images: made in `work`, or kept in and reused from --data-dir."""
    if not args.data_dir:
        return make_images(args.objects, args.min_kib, args.max_kib, args.seed, work)
    os.makedirs(args.data_dir, exist_ok=True)
    tag = "%d-%d-%d-%d" % (args.objects, args.min_kib, args.max_kib, args.seed)
    manifest = os.path.join(args.data_dir, "manifest-%s.json" % tag)
    # The images are made one after another from one seed, so a kept set of more objects begins with this one.
    import glob
    for m in [manifest] + sorted(glob.glob(os.path.join(args.data_dir, "manifest-*-%d-%d-%d.json" % (
            args.min_kib, args.max_kib, args.seed)))):
        if not os.path.exists(m) or int(os.path.basename(m).split("-")[1]) < args.objects:
            continue
        with open(m) as f:
            items = [tuple(x) for x in json.load(f)][:args.objects]
        if all(os.path.exists(p) and os.path.getsize(p) == s for _, p, s in items):
            return items
    d = os.path.join(args.data_dir, tag)
    os.makedirs(d, exist_ok=True)
    items = make_images(args.objects, args.min_kib, args.max_kib, args.seed, d)
    with open(manifest, "w") as f:
        json.dump(items, f)
    return items


def upload(endpoint, key, items, threads=8):
    from concurrent.futures import ThreadPoolExecutor
    client = s3_client(endpoint, key)
    client.create_bucket(Bucket=BUCKET)

    def put(item):
        with open(item[1], "rb") as f:
            client.put_object(Bucket=BUCKET, Key=item[0], Body=f.read(), ContentType="image/jpeg")

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(put, items))


def s3_client(endpoint, key):
    import boto3
    from botocore.config import Config
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint, aws_access_key_id=key[0], aws_secret_access_key=key[1], region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3, "mode": "standard"},
                      connect_timeout=10, read_timeout=120, max_pool_connections=2))


# ------------------------------------------------------------------------------------ loader and training

class ImageSet:
    """A map-style data set of S3 images (endpoint set) or local files (endpoint None). Each worker gets its
    own boto3 client in worker_init (a client must not cross a fork)."""

    def __init__(self, items, endpoint, key, decode="jpeg"):
        from torchvision import transforms
        self.decode = decode
        self.keys = [k for k, _, _ in items]
        self.paths = [p for _, p, _ in items]
        self.endpoint, self.key = endpoint, key
        self.client = None
        self.transform = transforms.Compose([transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(),
                                             transforms.ToTensor()])

    def __len__(self):
        return len(self.keys)

    def __getitem__(self, i):
        """(image tensor, label, seconds the read took): the read's time is the data source's share."""
        import torch
        from PIL import Image
        t0 = time.perf_counter()
        if self.endpoint is None:
            with open(self.paths[i], "rb") as f:
                data = f.read()
        else:
            if self.client is None:  # worker_init_fn makes it; this covers --workers 0
                self.client = s3_client(self.endpoint, self.key)
            data = self.client.get_object(Bucket=BUCKET, Key=self.keys[i])["Body"].read()
        fetch = time.perf_counter() - t0
        if self.decode == "none":  # token shards and the like: the bytes as they came, no decode
            return torch.frombuffer(bytearray(data[:4096].ljust(4096, b"\0")), dtype=torch.uint8), i % 1000, fetch
        img = Image.open(io.BytesIO(data)).convert("RGB")
        return self.transform(img), i % 1000, fetch


def worker_init(_worker_id):
    import torch.utils.data
    ds = torch.utils.data.get_worker_info().dataset
    if ds.endpoint is not None:
        ds.client = s3_client(ds.endpoint, ds.key)


class EpochOrder:
    """The sampler: a fixed permutation per (seed, epoch), the same for every target. set_epoch before
    iterating; with persistent workers it is still read in the main process at each epoch's start."""

    def __init__(self, n, seed):
        self.n, self.seed, self.epoch = n, seed, 1

    def set_epoch(self, epoch):
        self.epoch = epoch

    def order(self):
        import torch
        g = torch.Generator()
        g.manual_seed(self.seed * 1000 + self.epoch)
        return torch.randperm(self.n, generator=g).tolist()

    def __iter__(self):
        return iter(self.order())

    def __len__(self):
        return self.n


class GpuStep:
    """--device cuda: the step is a GPU kernel of compute_ms (torch.cuda._sleep, calibrated) on the batch
    moved to the GPU; utilisation is sampled from NVML (torch.cuda.utilization) or nvidia-smi."""

    def __init__(self, compute_ms):
        import torch
        if not torch.cuda.is_available():
            raise SystemExit("loader: --device cuda but torch.cuda.is_available() is False (Debian's python3-torch "
                             "is a CPU build: use a CUDA build of torch for this flag)")
        self.torch = torch
        torch.cuda._sleep(1000)  # the context and the kernel loaded before the calibration
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        cycles = 10_000_000
        start.record()
        torch.cuda._sleep(cycles)
        end.record()
        end.synchronize()
        self.cycles = max(1, int(cycles * compute_ms / max(1e-3, start.elapsed_time(end))))
        self.samples = []
        self.sampling = False

    def step(self, batch):
        x = batch[0].to("cuda", non_blocking=True)
        x.mul_(1.0)  # touch the data on the device
        self.torch.cuda._sleep(self.cycles)
        self.torch.cuda.synchronize()  # as a loss.item() each step would

    def _sample(self):
        while self.sampling:
            u = None
            try:
                u = self.torch.cuda.utilization()
            except Exception:
                try:
                    p = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                        "-i", str(self.torch.cuda.current_device())],
                                       capture_output=True, text=True, timeout=5)
                    u = float(p.stdout.split()[0])
                except Exception:
                    u = None
            if u is not None:
                self.samples.append(float(u))
            time.sleep(0.2)

    def start(self):
        self.samples, self.sampling = [], True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def stop(self):
        self.sampling = False
        self.thread.join()
        return statistics.mean(self.samples) if self.samples else None


def cpu_seconds(pids):
    """User + system CPU seconds of these processes and their children (nginx's workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    wanted = set(pids)
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(d) in wanted or int(fields[1]) in wanted:  # fields[1]: the parent's pid
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def percentile(xs, p):
    if not xs:
        return 0.0
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))]


def run_epochs(loader, order, args, before_epoch=None, after_epoch=None, server_pids=()):
    """The training loop; returns one dict per epoch: samples, wall, stall seconds, samples/s, stall share,
    and the CPU seconds the target's server (server_pids) used in the epoch. before_epoch(epoch, order) may
    return a prefetch job's id, which after_epoch(id) reports on."""
    gpu = GpuStep(args.compute_ms) if args.device == "cuda" else None
    out = []
    for epoch in range(1, args.epochs + 1):
        order.set_epoch(epoch)
        job = before_epoch(epoch, order.order()) if before_epoch else None
        if gpu:
            gpu.start()
        samples, stall, fetches = 0, 0.0, []
        cpu0 = cpu_seconds(server_pids) if server_pids else None
        t0 = time.perf_counter()
        it = iter(loader)
        while True:
            w = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                stall += time.perf_counter() - w
                break
            stall += time.perf_counter() - w
            samples += batch[0].shape[0]
            fetches += batch[2].tolist()
            if gpu:
                gpu.step(batch)
            else:
                time.sleep(args.compute_ms / 1000.0)
        wall = time.perf_counter() - t0
        e = {"epoch": epoch, "samples": samples, "wall_s": wall, "stall_s": stall,
             "samples_per_s": samples / wall, "stall_frac": stall / wall,
             "fetch_ms_p50": 1000 * percentile(fetches, 50), "fetch_ms_p99": 1000 * percentile(fetches, 99)}
        if cpu0 is not None:
            e["server_cpu_s"] = cpu_seconds(server_pids) - cpu0
        if job is not None and after_epoch:
            e["prefetch"] = after_epoch(job)
        if gpu:
            e["gpu_util_pct"] = gpu.stop()
        print("  epoch %d: %d samples in %.1f s, %.1f samples/s, stall %.0f%%, read p50 %.1f ms p99 %.1f ms%s" % (
            epoch, samples, wall, e["samples_per_s"], 100 * e["stall_frac"], e["fetch_ms_p50"], e["fetch_ms_p99"],
            ", GPU %.0f%%" % e["gpu_util_pct"] if e.get("gpu_util_pct") is not None else ""), file=sys.stderr)
        if "prefetch" in e:
            print("  prefetch job: %s" % json.dumps(e["prefetch"]), file=sys.stderr)
        out.append(e)
    return out


def make_loader(dataset, order, args):
    import torch.utils.data
    return torch.utils.data.DataLoader(dataset, batch_size=args.batch, sampler=order, num_workers=args.workers,
                                       worker_init_fn=worker_init, persistent_workers=args.workers > 0,
                                       pin_memory=args.device == "cuda", drop_last=False, timeout=300)


# ------------------------------------------------------------------------------------------------ targets

def prefetch_supported(granary_bin):
    p = subprocess.run([granary_bin, "admin", "prefetch", "--help"], capture_output=True, text=True)
    return p.returncode == 0 and "--order" in p.stdout


def start_prefetch(granary, work, epoch, order, keys, window):
    path = os.path.join(work, "order-%d.txt" % epoch)
    with open(path, "w") as f:
        f.write("".join(keys[i] + "\n" for i in order))
    p = granary.admin("prefetch", "s3://%s" % BUCKET, "--order", path, "--window", window, check=False)
    if p.returncode != 0 or not p.stdout.split():
        raise SystemExit("granary admin prefetch failed (%d):\n%s\n%s" % (p.returncode, p.stdout, p.stderr))
    return p.stdout.split()[-1]


def prefetch_report(granary, job):
    """The job's state after the epoch, from GET /admin/jobs/ID (the fields bench/loader/README.md names)."""
    import urllib.parse
    import urllib.request
    try:
        with urllib.request.urlopen("%s/admin/jobs/%s" % (granary.admin_url(), urllib.parse.quote(job)), timeout=10) as r:
            j = json.load(r)
    except (OSError, ValueError) as e:
        return {"id": job, "error": str(e)}
    keep = ("id", "state", "objects_total", "objects_fetched", "objects_cached", "objects_passed", "objects_failed",
            "bytes_fetched", "elapsed_seconds")
    return {k: j[k] for k in keep if k in j}


def run_target(target, items, shim_port, args, work, run):
    """Starts the target's server (a fresh, empty cache), reads every epoch through it, stops it."""
    import harness
    import peers
    okey = harness.ORIGIN_KEY
    server, endpoint, key, hook, report = None, None, okey, None, None
    cache = os.path.join(work, "granary-cache-%s-%d" % (target, run))
    data_bytes = sum(s for _, _, s in items)
    # Room for the data set and a margin, no more: Granary reserves its cache directory's size on disk.
    cache_mib = int(data_bytes * 1.25 / MIB) + 64
    try:
        if target == "direct":
            endpoint = "http://127.0.0.1:%d" % shim_port
        elif target == "nginx":
            server = peers.Nginx(shim_port, cache_size="%dm" % cache_mib)
            endpoint = "http://127.0.0.1:%d" % server.port
        elif target.startswith("granary"):
            server = harness.Granary("http://127.0.0.1:%d" % shim_port, threads=2,
                                     extra=["--cache-dir", "%s:%dMiB" % (cache, cache_mib),
                                            "--ram-cache", "%dGiB" % args.ram_gib,
                                            "--access-log", "false", "--metadata-ttl", "forever"])
            endpoint, key = server.url, harness.CLIENT_KEY
            if target == "granary-prefetch":
                keys = [k for k, _, _ in items]
                g = server
                hook = lambda e, order: start_prefetch(g, work, e, order, keys, args.prefetch_window)  # noqa: E731
                report = lambda job: prefetch_report(g, job)  # noqa: E731
        dataset = ImageSet(items, endpoint, key, args.decode)
        order = EpochOrder(len(items), args.seed)
        loader = make_loader(dataset, order, args)
        try:
            pids = [server.proc.pid] if server is not None else []
            return run_epochs(loader, order, args, before_epoch=hook, after_epoch=report, server_pids=pids)
        finally:
            it = getattr(loader, "_iterator", None)  # the persistent workers
            if it is not None:
                it._shutdown_workers()
    finally:
        if server is not None:
            if target.startswith("granary"):
                server.stop(expect_clean=False)
                shutil.rmtree(cache, ignore_errors=True)
            else:
                server.stop()


# ------------------------------------------------------------------------------------------------- report

def table(med, targets, args):
    """Rows: targets; per epoch samples/s and stall share (and GPU utilisation with --device cuda); then
    samples/s as a ratio to direct for epoch 1 and the last, and the server's CPU seconds in epoch 1."""
    cuda = args.device == "cuda"
    last = sorted({1, args.epochs})
    head, rule = "| target |", "|---|"
    for e in range(1, args.epochs + 1):
        head += " epoch %d samples/s | epoch %d stall |%s" % (e, e, " epoch %d GPU util |" % e if cuda else "")
        rule += "---|---|" + ("---|" if cuda else "")
    for e in last:
        head += " epoch %d vs direct |" % e
        rule += "---|"
    head += " server CPU s, epoch 1 |"
    rule += "---|"
    lines = [head, rule]
    direct = med.get("direct")
    for t in targets:
        if t not in med:
            continue
        row = "| %s |" % t
        for e in med[t]:
            row += " %.1f | %.0f%% |" % (e["samples_per_s"], 100 * e["stall_frac"])
            if cuda:
                row += (" %.0f%% |" % e["gpu_util_pct"]) if e.get("gpu_util_pct") is not None else " - |"
        for e in last:
            row += (" %.2fx |" % (med[t][e - 1]["samples_per_s"] / direct[e - 1]["samples_per_s"])) if direct else " - |"
        cpu = med[t][0].get("server_cpu_s")
        row += (" %.1f |" % cpu) if cpu is not None else " - |"
        lines.append(row)
    return "\n".join(lines)


def read_table(med, targets, args):
    """Per target and epoch: how long one object's read took in a worker (GET to the body's last byte), ms."""
    head, rule = "| target (object read in a worker, ms) |", "|---|"
    for e in range(1, args.epochs + 1):
        head += " epoch %d p50 | epoch %d p99 |" % (e, e)
        rule += "---|---|"
    lines = [head, rule]
    for t in targets:
        if t in med:
            lines.append("| %s |" % t + "".join(" %.1f | %.1f |" % (e["fetch_ms_p50"], e["fetch_ms_p99"])
                                                 for e in med[t]))
    return "\n".join(lines)


def medians(per_run):
    """[[epoch dict]] over runs -> [epoch dict of medians]."""
    out = []
    for e in range(len(per_run[0])):
        vals = [r[e] for r in per_run]
        m = {"epoch": e + 1}
        for k in ("samples_per_s", "stall_frac", "wall_s", "stall_s", "gpu_util_pct", "server_cpu_s", "fetch_ms_p50",
                  "fetch_ms_p99"):
            xs = [v[k] for v in vals if v.get(k) is not None]
            if xs:
                m[k] = statistics.median(xs)
        out.append(m)
    return out


def main():
    args = parse_args()
    ensure_torch()
    import faulthandler
    import signal
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # kill -USR1 PID: where a stuck run (or worker) is
    import harness
    import peers
    if args.granary:
        harness.GRANARY = os.path.abspath(args.granary)
    if not os.path.exists(peers.BENCH) or not os.path.exists(harness.GRANARY):
        raise SystemExit("loader: build/granary and build/bench/granary-bench are missing: build a release tree first")
    if "nginx" in args.targets and not shutil.which("nginx"):
        raise SystemExit("loader: nginx is missing: scripts/deps --bench installs it")
    targets = list(args.targets)
    skipped = {}
    if "granary-prefetch" in targets and not prefetch_supported(harness.GRANARY):
        skipped["granary-prefetch"] = "%s has no `granary admin prefetch --order` yet" % harness.GRANARY
        print("loader: skipping granary-prefetch: %s" % skipped["granary-prefetch"], file=sys.stderr)
        targets.remove("granary-prefetch")
    import torch
    import warnings
    # 8-16 workers on a 2-core machine is the point (they wait on the network), not a mistake.
    warnings.filterwarnings("ignore", message="This DataLoader will create")
    torch.set_num_threads(1)  # the main process only waits and sleeps; the workers decode
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("loader: --device cuda but torch.cuda.is_available() is False (Debian's python3-torch is a "
                         "CPU build: run this under a CUDA build of torch)")

    # Disk: the images (unless kept), the origin's copy, and one cache at a time (Granary reserves its size).
    need = args.objects * (args.min_kib + args.max_kib) / 2 * KIB * (1 + 1 + 1.25)
    free = shutil.disk_usage(tempfile.gettempdir()).free
    if free < need + 512 * MIB:
        raise SystemExit("loader: %d objects need about %d MiB in %s and 512 MiB to spare; %d MiB are free (fewer "
                         "--objects)" % (args.objects, need / MIB, tempfile.gettempdir(), free / MIB))
    load_before = os.getloadavg()[0]
    work = tempfile.mkdtemp(prefix="granary-loader-")
    origin = harness.Origin()
    shim = None
    results = {}
    try:
        t0 = time.time()
        items = data_set(args, work)
        sizes = [s for _, _, s in items]
        print("loader: %d JPEGs, %.0f MiB, %d-%d KiB (median %d KiB), made in %.0f s" % (
            len(items), sum(sizes) / MIB, min(sizes) // KIB, max(sizes) // KIB, statistics.median(sizes) // KIB,
            time.time() - t0), file=sys.stderr)
        upload(origin.url, harness.ORIGIN_KEY, items)
        shim = peers.Shim(origin.port)
        for run in range(args.runs):
            # The targets' order turns by one each run, as in bench/peers.py.
            names = targets[run % len(targets):] + targets[:run % len(targets)]
            for t in names:
                print("run %d of %d: %s" % (run + 1, args.runs, t), file=sys.stderr)
                results.setdefault(t, []).append(run_target(t, items, shim.port, args, work, run))
    finally:
        if shim:
            shim.stop()
        origin.stop()
        shutil.rmtree(work, ignore_errors=True)

    med = {t: medians(r) for t, r in results.items()}
    ceiling = args.batch * 1000.0 / args.compute_ms
    load = (load_before, os.getloadavg()[0])
    print("%d JPEGs of %d-%d KiB (%.0f MiB), %s, %d workers, batch %d, compute %.0f ms/batch (at most %.0f "
          "samples/s), %s, medians of %d run(s); load average %.1f at the start, %.1f at the end (%d cores)\n" % (
              len(items), min(sizes) // KIB, max(sizes) // KIB, sum(sizes) / MIB,
              "decoded (PIL + RandomResizedCrop)" if args.decode == "jpeg" else "not decoded", args.workers,
              args.batch, args.compute_ms, ceiling, args.device, args.runs, load[0], load[1], os.cpu_count()))
    print(table(med, targets, args))
    print()
    print(read_table(med, targets, args))
    for t, why in skipped.items():
        print("\n%s: skipped: %s" % (t, why))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": {k: v for k, v in vars(args).items()}, "objects_bytes": sum(sizes), "loadavg": load,
                       "raw": results, "median": med, "skipped": skipped}, f, indent=1)


if __name__ == "__main__":
    main()

"""Cluster harness: an etcd on free loopback ports in a temporary directory (stop, kill, restart on the same
ports and data), and N Granary nodes started with cluster flags in front of one origin.

Shared by test_cluster_membership.py and test_cluster_peers.py. Everything binds 127.0.0.1.

    etcd = Etcd()                                   # started
    nodes = start_nodes(3, origin.url, etcd=etcd)   # node ids n0, n1, n2
    nodes[0].admin("cluster")                       # granary admin cluster
    etcd.stop(); ...; etcd.start()
    stop_nodes(nodes); etcd.close()
"""
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import harness

ETCD = os.environ.get("GRANARY_ETCD", shutil.which("etcd") or "/usr/bin/etcd")
SECRET = "granary-cluster-test-secret-0123456789"
CLUSTER_NAME = "t"


def free_port():
    """A port the kernel just handed out on 127.0.0.1 (closed again: a small race, fine on loopback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def have_etcd():
    return os.path.exists(ETCD)


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


class Etcd:
    """One etcd member on 127.0.0.1 with its data in a temporary directory. start() waits until its v3
    gateway answers; stop() is SIGTERM (clean), kill() SIGKILL; start() again reuses ports and data."""

    def __init__(self, start=True):
        self.dir = tempfile.mkdtemp(prefix="granary-etcd-")
        self.client_port = free_port()
        self.peer_port = free_port()
        self.proc = None
        self.log = os.path.join(self.dir, "etcd.log")
        if start:
            self.start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.client_port

    def start(self, timeout=30):
        if self.running():
            return
        peer = "http://127.0.0.1:%d" % self.peer_port
        args = [ETCD, "--name", "default", "--data-dir", os.path.join(self.dir, "data"),
                "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", "default=" + peer, "--log-level", "warn"]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("etcd exited with %s:\n%s" % (self.proc.returncode, self.log_text()[-3000:]))
            try:
                self.call("/v3/maintenance/status", {}, timeout=1)
                return
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        raise AssertionError("etcd did not answer within %ss:\n%s" % (timeout, self.log_text()[-3000:]))

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self):
        if self.running():
            self.proc.kill()
            self.proc.wait()

    def restart(self):
        self.stop()
        self.start()

    def close(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_text(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    # --- the v3 gateway, for assertions ---
    def call(self, path, body, timeout=5):
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read().decode() or "{}")

    def get_prefix(self, prefix):
        """{key: value} of every key under `prefix` (str keys and values)."""
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        out = self.call("/v3/kv/range", {"key": b64(prefix), "range_end": b64(end)})
        return {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", "")).decode()
                for kv in out.get("kvs", [])}

    def members(self, cluster=CLUSTER_NAME):
        """{node id: parsed record} of the members registered in etcd."""
        prefix = "/granary/clusters/%s/members/" % cluster
        return {k[len(prefix):]: json.loads(v) for k, v in self.get_prefix(prefix).items()}

    def compact(self):
        """Compacts etcd's history to its current revision (a watcher behind it must relist)."""
        rev = self.call("/v3/kv/range", {"key": b64("/")})["header"]["revision"]
        self.call("/v3/kv/compaction", {"revision": rev, "physical": True})
        return int(rev)


def node_args(node_id, etcd=None, members=None, peer_port=None, cluster=CLUSTER_NAME, weight=None):
    """Cluster flags for one node: etcd-discovered (etcd given) or a static member list."""
    peer_port = peer_port or free_port()
    args = ["--cluster-name", cluster, "--node-id", node_id, "--peer-listen", "127.0.0.1:%d" % peer_port,
            "--cluster-secret", SECRET]
    if etcd is not None:
        args += ["--cluster-etcd", etcd.url if isinstance(etcd, Etcd) else etcd]
    for m in members or ():
        args += ["--cluster-member", m]
    if weight is not None:
        args += ["--node-weight", str(weight)]
    return args


def cluster_config(lease_ttl="3s", extra=""):
    """A config file's [cluster] section with a short lease (tests see a dead node's record go fast)."""
    return "[cluster]\nlease_ttl = \"%s\"\n%s" % (lease_ttl, extra)


class Node(harness.Granary):
    """A Granary started with cluster flags; remembers what restart() needs."""

    def __init__(self, node_id, backend_url, etcd=None, members=None, peer_port=None, cache_dir=None,
                 extra=(), lease_ttl="3s", weight=None, threads=2, cache="256MiB", ram="8MiB", chunk="1MiB"):
        self.node_id = node_id
        self.peer_port = peer_port or free_port()
        self.own_dir = cache_dir is None
        self.cache_dir = cache_dir or tempfile.mkdtemp(prefix="granary-node-%s-" % node_id)
        self._spec = dict(backend_url=backend_url, etcd=etcd, members=members, extra=tuple(extra),
                          lease_ttl=lease_ttl, weight=weight, threads=threads, cache=cache, ram=ram, chunk=chunk)
        self._launch()

    def _launch(self):
        s = self._spec
        args = node_args(self.node_id, etcd=s["etcd"], members=s["members"], peer_port=self.peer_port,
                         weight=s["weight"])
        args += ["--cache-dir", "%s/cache:%s" % (self.cache_dir, s["cache"]), "--ram-cache", s["ram"],
                 "--chunk-size", s["chunk"]] + list(s["extra"])
        harness.Granary.__init__(self, s["backend_url"], extra=args, threads=s["threads"],
                                 config=cluster_config(s["lease_ttl"]))

    @property
    def peer_address(self):
        return "127.0.0.1:%d" % self.peer_port

    def kill9(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def restart(self):
        """Starts the node again on the same cache directory and peer port (after stop() or kill9())."""
        if self.proc.poll() is None:
            self.stop()
        self._launch()

    def readyz(self, token=None):
        """(status, body) of /readyz."""
        req = urllib.request.Request(self.admin_url() + "/readyz")
        if token:
            req.add_header("Authorization", "Bearer " + token)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def cluster_json(self, token=None):
        """GET /admin/cluster as parsed JSON."""
        req = urllib.request.Request(self.admin_url() + "/admin/cluster")
        if token:
            req.add_header("Authorization", "Bearer " + token)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read().decode())

    def cleanup(self):
        if self.own_dir:
            shutil.rmtree(self.cache_dir, ignore_errors=True)


def start_nodes(n, backend_url, etcd=None, static=False, ids=None, **kw):
    """N nodes (ids n0..n{N-1}) in one cluster: through `etcd`, or with static=True a fixed member list."""
    ids = ids or ["n%d" % i for i in range(n)]
    ports = [free_port() for _ in ids]
    members = ["%s=127.0.0.1:%d" % (i, p) for i, p in zip(ids, ports)] if static else None
    return [Node(i, backend_url, etcd=None if static else etcd, members=members, peer_port=p, **kw)
            for i, p in zip(ids, ports)]


def stop_nodes(nodes, expect_clean=True):
    """Stops every node still running (SIGTERM) and removes their cache directories."""
    errors = []
    for n in nodes:
        try:
            if n.proc.poll() is None:
                n.stop(expect_clean=expect_clean)
        except AssertionError as e:
            errors.append(str(e))
        n.cleanup()
    if errors:
        raise AssertionError("\n".join(errors))


def wait_until(predicate, timeout, interval=0.2, what="condition"):
    """Polls `predicate` until it returns a true value (returned) or `timeout` seconds pass (AssertionError)."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except (OSError, urllib.error.URLError, ValueError, KeyError) as e:
            last = e
        time.sleep(interval)
    raise AssertionError("timed out after %ss waiting for %s (last: %r)" % (timeout, what, last))

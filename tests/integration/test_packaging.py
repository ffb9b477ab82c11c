"""docker/: what can be checked without a Docker engine. The compose file, the Kubernetes manifests and the
Grafana dashboard parse and say what they must; every Granary flag and config they pass is accepted by
`granary --check-config`; the runtime image installs the package of every library the binary links; and
every metric the dashboard graphs is one a running Granary exports."""
import json
import os
import re
import subprocess
import tempfile
import unittest

import yaml

import harness

DOCKER = os.path.join(harness.SOURCE_DIR, "docker")
CREDS_ENV = dict(os.environ, AWS_ACCESS_KEY_ID="ak", AWS_SECRET_ACCESS_KEY="sk")


def check_config(args, env=CREDS_ENV):
    """Runs granary --check-config with args; returns (exit code, output)."""
    p = subprocess.run([harness.GRANARY] + args, capture_output=True, text=True, timeout=30, env=env)
    return p.returncode, p.stdout + p.stderr


class PackagingTest(unittest.TestCase):
    def test_compose_file(self):
        with open(os.path.join(DOCKER, "compose.yaml")) as f:
            c = yaml.safe_load(f)
        svc = c["services"]
        nodes = ["granary", "granary-2", "granary-3"]
        self.assertEqual(set(svc), {"minio", "etcd", "warp"} | set(nodes))
        ids, ips = set(), set()
        for name in nodes:
            g = svc[name]
            self.assertTrue(os.path.exists(os.path.join(DOCKER, g["build"]["context"], g["build"]["dockerfile"])))
            self.assertEqual(g["depends_on"]["minio"]["condition"], "service_healthy")
            self.assertEqual(g["depends_on"]["etcd"]["condition"], "service_healthy")
            for port in g["ports"]:
                self.assertTrue(port.startswith("127.0.0.1:"), port)  # published on loopback only
            cmd = g["command"]
            # The flags Granary runs with are flags it has (checked with the container's config file).
            conf = cmd[cmd.index("--config") + 1]
            self.assertEqual(conf, "/etc/granary/granary.toml")
            args = list(cmd)
            args[cmd.index("--config")] = "--check-config"
            args[cmd.index("--config") + 1] = os.path.join(DOCKER, "granary.toml")
            code, out = check_config(args)
            self.assertEqual(code, 0, out)
            self.assertIn("http://minio:9000", out)
            # One cluster through the compose file's etcd; each node its own id, dialled at its service name.
            self.assertIn('etcd = ["http://etcd:2379"]', out)
            ids.add(cmd[cmd.index("--node-id") + 1])
            ip = g["networks"]["default"]["ipv4_address"]
            self.assertEqual(cmd[cmd.index("--peer-advertise") + 1], "%s:9100" % ip)
            ips.add(ip)
            self.assertEqual(g["environment"]["AWS_ACCESS_KEY_ID"], svc["minio"]["environment"]["MINIO_ROOT_USER"])
            self.assertEqual(g["environment"]["AWS_SECRET_ACCESS_KEY"], svc["minio"]["environment"]["MINIO_ROOT_PASSWORD"])
        self.assertEqual(len(ids), 3)
        self.assertEqual(len(ips), 3)
        self.assertEqual(len({p for n in nodes for p in svc[n]["ports"]}), 6)  # no published port twice
        etcd = " ".join(svc["etcd"]["command"])
        self.assertIn("--advertise-client-urls=http://etcd:2379", etcd)
        self.assertNotIn("ports", svc["etcd"])  # on the compose network only
        # Warp signs with the client key Granary verifies, and loads Granary, not MinIO.
        cmd = svc["granary"]["command"]
        warp = svc["warp"]["command"]
        self.assertEqual(warp[0], "get")
        opts = dict(a[2:].split("=", 1) for a in warp[1:])
        self.assertEqual(opts["host"], "granary:9000")
        self.assertEqual("%s:%s" % (opts["access-key"], opts["secret-key"]), cmd[cmd.index("--client-key") + 1])
        self.assertEqual(svc["warp"]["depends_on"]["granary"]["condition"], "service_healthy")

    def test_kubernetes_manifests(self):
        docs = []
        for name in ("daemonset.yaml", "service.yaml"):
            with open(os.path.join(DOCKER, "kubernetes", name)) as f:
                docs += [d for d in yaml.safe_load_all(f) if d]
        by_kind = {d["kind"]: d for d in docs}
        self.assertEqual(set(by_kind), {"Namespace", "Secret", "ConfigMap", "DaemonSet", "Service"})
        ds = by_kind["DaemonSet"]
        self.assertEqual(ds["apiVersion"], "apps/v1")
        pod = ds["spec"]["template"]
        self.assertEqual(pod["metadata"]["labels"], ds["spec"]["selector"]["matchLabels"])
        ann = pod["metadata"]["annotations"]
        self.assertEqual((ann["prometheus.io/scrape"], ann["prometheus.io/port"], ann["prometheus.io/path"]),
                         ("true", "9001", "/metrics"))
        (ctr,) = pod["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in ctr["ports"]}
        self.assertEqual(ports, {"s3": 9000, "admin": 9001, "peer": 9100})
        self.assertEqual(ctr["readinessProbe"]["httpGet"], {"path": "/readyz", "port": "admin"})
        self.assertEqual(ctr["livenessProbe"]["httpGet"]["path"], "/healthz")
        self.assertIn("memory", ctr["resources"]["limits"])
        self.assertIn("cpu", ctr["resources"]["limits"])
        self.assertGreater(pod["spec"]["terminationGracePeriodSeconds"], 30)  # Granary's shutdown grace
        self.assertTrue(pod["spec"]["securityContext"]["runAsNonRoot"])
        vols = {v["name"]: v for v in pod["spec"]["volumes"]}
        self.assertIn("hostPath", vols["cache"])
        mounts = {m["name"]: m["mountPath"] for m in ctr["volumeMounts"]}
        # The config the pod mounts is valid, and its cache directory is the hostPath mount.
        text = by_kind["ConfigMap"]["data"]["granary.toml"]
        secret_file = re.search(r'secret_file = "([^"]+)"', text).group(1)
        self.assertEqual(os.path.dirname(secret_file), mounts["cluster-secret"])
        self.assertIn("secret", vols["cluster-secret"])
        with tempfile.TemporaryDirectory() as d:
            conf = os.path.join(d, "granary.toml")
            with open(os.path.join(d, "secret"), "w") as f:
                f.write("a-cluster-secret-of-32-characters")
            with open(conf, "w") as f:
                f.write(text.replace(secret_file, os.path.join(d, "secret")))
            env = dict(os.environ, **by_kind["Secret"]["stringData"])
            code, out = check_config(["--check-config", conf], env=env)
        self.assertEqual(code, 0, out)
        self.assertRegex(out, r'cache_dir = \["%s:' % re.escape(mounts["cache"]))
        self.assertIn('admin_listen = "0.0.0.0:%d"' % ports["admin"], out)
        self.assertIn('peer_listen = "0.0.0.0:%d"' % ports["peer"], out)
        self.assertEqual(ctr["args"][:2], ["--config", os.path.join(mounts["config"], "granary.toml")])
        # The member id is the node's name (stable across pod restarts), the peer address the pod's IP.
        env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in ctr["env"]}
        self.assertEqual(ctr["args"][2:], ["--node-id", "$(NODE_NAME)", "--peer-advertise", "$(POD_IP):%d" % ports["peer"]])
        self.assertEqual(env, {"NODE_NAME": "spec.nodeName", "POD_IP": "status.podIP"})
        svc = by_kind["Service"]
        self.assertEqual(svc["spec"]["internalTrafficPolicy"], "Local")
        self.assertEqual(svc["spec"]["selector"], ds["spec"]["selector"]["matchLabels"])
        # The Service carries S3 and admin; peers dial each other's pod IPs.
        self.assertEqual({p["targetPort"] for p in svc["spec"]["ports"]}, set(ports) - {"peer"})

    def test_dockerfile_runtime_has_every_linked_library(self):
        with open(os.path.join(DOCKER, "Dockerfile")) as f:
            text = f.read()
        stages = text.split("\nFROM ")[1:]
        self.assertEqual(len(stages), 2, "a build stage and a runtime stage")
        runtime = stages[1]
        self.assertTrue(runtime.startswith("debian:12-slim"))
        self.assertRegex(runtime, r"\nUSER granary\n")
        self.assertRegex(runtime, r'VOLUME \["/var/cache/granary"')
        self.assertRegex(runtime, r'HEALTHCHECK .*\n\s+CMD \["/usr/local/bin/granary", "admin", "health"')
        installed = set(re.findall(r"\b(lib[a-z0-9.+-]+|ca-certificates)\b", runtime.split("rm -rf")[0]))
        # The Debian package of every shared library the binary links (the base image has libc6 & co).
        ldd = subprocess.run(["ldd", harness.GRANARY], capture_output=True, text=True, check=True).stdout
        needed = set()
        for path in re.findall(r"=> (/\S+)", ldd):
            real = os.path.realpath(path)
            p = subprocess.run(["dpkg", "-S", real], capture_output=True, text=True)
            if p.returncode != 0:
                p = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
            if p.returncode == 0:
                needed.add(p.stdout.split(":")[0])
        base = {"libc6", "libgcc-s1", "libstdc++6", "zlib1g"}
        if os.environ.get("GRANARY_SANITIZED"):
            base |= {"libasan8", "libubsan1"}  # this tree's binary is the sanitized one; the image's is not
        self.assertTrue(needed, ldd)
        self.assertEqual(needed - base - installed, set(), "runtime stage lacks these packages")
        copied = re.findall(r"^COPY (?!--from)(\S+) ", runtime, re.M)
        for src in copied:
            self.assertTrue(os.path.exists(os.path.join(harness.SOURCE_DIR, src)), src)
        # Client keys come from flags (compose) or a mounted file: the image's file is valid given one.
        code, out = check_config(["--check-config", os.path.join(DOCKER, "granary.toml"), "--client-key", "a:b"])
        self.assertEqual(code, 0, out)

    def test_grafana_dashboard_graphs_only_exported_metrics(self):
        with open(os.path.join(DOCKER, "grafana", "granary.json")) as f:
            dash = json.load(f)
        exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
        self.assertGreaterEqual(len(exprs), 10)
        used = set()
        for e in exprs:
            for m in re.findall(r"\b(granary_[a-z0-9_]+)", e):
                used.add(re.sub(r"_(bucket|sum|count)$", "", m) if "duration" in m else m)
        origin = harness.Origin()
        d = tempfile.mkdtemp(prefix="granary-packaging-")
        g = harness.Granary(origin.url, extra=["--cache-dir", "%s/c:64MiB" % d, "--ram-cache", "4MiB",
                                               "--writeback-dir", "%s/wb:16MiB" % d])
        try:
            s3 = harness.boto3_client(g.url)
            s3.create_bucket(Bucket="dash")
            s3.put_object(Bucket="dash", Key="k", Body=b"x")
            s3.get_object(Bucket="dash", Key="k")["Body"].read()
            exported = {re.sub(r"\{.*", "", k) for k in g.metrics()}
            exported |= {re.sub(r"_(bucket|sum|count)$", "", m) for m in exported}
            self.assertEqual(used - exported, set())
            # The container's health check command.
            p = subprocess.run([harness.GRANARY, "admin", "health", "--admin", g.admin_url()], capture_output=True,
                               text=True, timeout=30)
            self.assertEqual((p.returncode, p.stdout), (0, "ok\n"))
        finally:
            g.stop()
            origin.stop()
            import shutil
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()

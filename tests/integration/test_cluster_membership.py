"""Cluster membership through etcd: nodes register under /granary/clusters/NAME/members/ID with a lease,
list each other (`granary admin cluster`), lose a killed node's record when its lease expires, keep
serving with the last membership while etcd is stopped (and say so in /readyz and /metrics), join late
when started while etcd is down, drain on request and leave at once (lease revoked) when stopped.

A real etcd (cluster_harness.Etcd) on loopback ports; a lease of 3 s so that expiries are quick."""
import json
import time
import unittest

import cluster_harness as ch
import harness

origin = direct = None
BUCKET = "cluster-membership"
BODY = b"".join(b"%08d" % i for i in range(40000))  # 320 kB


def setUpModule():
    global origin, direct
    if not ch.have_etcd():
        raise unittest.SkipTest("etcd is not installed (scripts/deps installs etcd-server)")
    origin = harness.Origin()
    direct = harness.boto3_client(origin.url, key=harness.ORIGIN_KEY)
    direct.create_bucket(Bucket=BUCKET)
    direct.put_object(Bucket=BUCKET, Key="obj", Body=BODY)


def tearDownModule():
    if origin is not None:
        origin.stop()


def view(node):
    """{id: member} as `node` sees the cluster (GET /admin/cluster)."""
    return {m["id"]: m for m in node.cluster_json()["members"]}


def states(node):
    return {i: m["state"] for i, m in view(node).items()}


class MembershipCase(unittest.TestCase):
    def setUp(self):
        origin.ensure_alive()
        self.etcd = ch.Etcd()
        self.nodes = []

    def tearDown(self):
        try:
            ch.stop_nodes(self.nodes, expect_clean=False)
        finally:
            self.etcd.close()

    def start(self, n=3, **kw):
        nodes = ch.start_nodes(n, origin.url, etcd=self.etcd, **kw)
        self.nodes += nodes
        return nodes

    def wait_all_active(self, nodes, ids, timeout=20):
        want = {i: "active" for i in ids}
        for node in nodes:
            ch.wait_until(lambda: states(node) == want, timeout, what="%s to see %s" % (node.node_id, want))

    def read(self, node):
        c = harness.boto3_client(node.url)
        return c.get_object(Bucket=BUCKET, Key="obj")["Body"].read()

    def test_three_nodes_register_and_list_each_other(self):
        nodes = self.start(3)
        ids = ["n0", "n1", "n2"]
        self.wait_all_active(nodes, ids)
        records = ch.wait_until(lambda: len(self.etcd.members()) == 3 and self.etcd.members(), 10, what="3 records")
        for i, node in zip(ids, nodes):
            r = records[i]
            self.assertEqual(r["id"], i)
            self.assertEqual(r["address"], node.peer_address)
            self.assertEqual(r["weight"], 1)
            for f in ("since", "chunks", "bytes", "peer_bytes_served", "peer_bytes_fetched"):
                self.assertIn(f, r)
        out = nodes[0].admin("cluster").stdout
        self.assertIn("current", out)
        for i, node in zip(ids, nodes):
            line = [ln for ln in out.splitlines() if " %s " % i in ln or ln.startswith("* %s" % i)]
            self.assertTrue(line, out)
            self.assertIn(node.peer_address, line[0])
            self.assertIn("active", line[0])
        j = json.loads(nodes[1].admin("cluster", "--json").stdout)
        self.assertEqual(j["source"], "etcd")
        self.assertTrue(j["current"])
        self.assertEqual(sorted(m["id"] for m in j["members"]), ids)
        self.assertEqual([m["id"] for m in j["members"] if m["self"]], ["n1"])
        m = nodes[2].metrics()
        self.assertEqual(m['granary_cluster_members{state="active"}'], 3)
        self.assertEqual(m["granary_cluster_etcd_reachable"], 1)
        self.assertEqual(m["granary_cluster_membership_current"], 1)
        status, body = nodes[0].readyz()
        self.assertEqual(status, 200)
        self.assertIn("membership current", body)
        for node in nodes:
            self.assertEqual(self.read(node), BODY)

    def test_kill9_record_goes_after_the_lease_and_a_clean_stop_leaves_at_once(self):
        nodes = self.start(3)
        self.wait_all_active(nodes, ["n0", "n1", "n2"])
        nodes[2].kill9()
        killed = time.time()
        ch.wait_until(lambda: "n2" not in self.etcd.members(), 15, what="n2's record to expire")
        ch.wait_until(lambda: set(view(nodes[0])) == {"n0", "n1"}, 5, what="n0 to drop n2")
        self.assertGreater(time.time() - killed, 1.0)  # the lease, not a revoke, removed it
        self.assertEqual(set(view(nodes[1])), {"n0", "n1"})
        # A clean stop revokes the lease: gone well within the TTL.
        nodes[1].stop()
        stopped = time.time()
        ch.wait_until(lambda: set(view(nodes[0])) == {"n0"}, 10, what="n0 to drop n1")
        self.assertLess(time.time() - stopped, 2.5)
        self.assertIn("revoked", nodes[1].log_text())
        # The killed node comes back on its cache and registers again.
        nodes[2].restart()
        ch.wait_until(lambda: states(nodes[0]) == {"n0": "active", "n2": "active"}, 20, what="n2 to rejoin")

    def test_etcd_stopped_nodes_keep_serving_with_the_last_membership(self):
        nodes = self.start(3)
        ids = ["n0", "n1", "n2"]
        self.wait_all_active(nodes, ids)
        self.etcd.stop()
        deadline = time.time() + 16
        while time.time() < deadline:
            for node in nodes:
                self.assertEqual(self.read(node), BODY)
            time.sleep(1)
        for node in nodes:
            status, body = node.readyz()
            self.assertEqual(status, 200, body)
            self.assertIn("last membership seen", body)
            self.assertEqual(set(view(node)), set(ids))  # the last membership, kept
            j = node.cluster_json()
            self.assertFalse(j["current"])
            self.assertFalse(j["etcd_reachable"])
            m = node.metrics()
            self.assertEqual(m["granary_cluster_etcd_reachable"], 0)
            self.assertEqual(m["granary_cluster_membership_current"], 0)
            self.assertGreater(m["granary_cluster_membership_age_seconds"], 10)
            self.assertGreater(m["granary_cluster_lease_renew_failures_total"], 0)
        out = nodes[0].admin("cluster").stdout
        self.assertIn("LAST SEEN", out)
        self.etcd.start()
        for node in nodes:
            ch.wait_until(lambda: node.cluster_json()["current"], 20, what="%s to follow etcd again" % node.node_id)
        self.wait_all_active(nodes, ids)
        ch.wait_until(lambda: set(self.etcd.members()) == set(ids), 20, what="every record back in etcd")
        status, body = nodes[0].readyz()
        self.assertIn("membership current", body)

    def test_a_node_started_while_etcd_is_down_waits_then_joins(self):
        nodes = self.start(2)
        self.wait_all_active(nodes, ["n0", "n1"])
        self.etcd.stop()
        late = ch.Node("n9", origin.url, etcd=self.etcd)
        self.nodes.append(late)
        self.assertEqual(self.read(late), BODY)  # serves alone meanwhile
        status, body = late.readyz()
        self.assertEqual(status, 200, body)
        self.assertIn("waiting for etcd", body)
        self.assertEqual(states(late), {"n9": "joining"})
        time.sleep(3)
        self.etcd.start()
        want = {"n0": "active", "n1": "active", "n9": "active"}
        for node in nodes + [late]:
            ch.wait_until(lambda: states(node) == want, 25, what="%s to see n9 active" % node.node_id)
        self.assertEqual(self.etcd.members()["n9"]["state"], "active")

    def test_drain_shows_draining_everywhere(self):
        nodes = self.start(3)
        self.wait_all_active(nodes, ["n0", "n1", "n2"])
        out = nodes[1].admin("drain").stdout
        self.assertIn("draining", out)
        for node in nodes:
            ch.wait_until(lambda: states(node)["n1"] == "draining", 10, what="%s to see n1 draining" % node.node_id)
        self.assertEqual(self.etcd.members()["n1"]["state"], "draining")
        self.assertIn("draining", nodes[2].admin("cluster").stdout)
        self.assertEqual(self.read(nodes[1]), BODY)  # a draining node keeps serving
        m = nodes[0].metrics()
        self.assertEqual(m['granary_cluster_members{state="draining"}'], 1)
        self.assertEqual(m['granary_cluster_members{state="active"}'], 2)

    def test_a_lost_lease_is_granted_again_and_the_record_put_back(self):
        nodes = self.start(2)
        self.wait_all_active(nodes, ["n0", "n1"])
        old = nodes[1].cluster_json()["lease"]
        self.etcd.call("/v3/lease/revoke", {"ID": str(old)})  # as if it had expired: the record goes with it
        ch.wait_until(lambda: nodes[1].cluster_json()["lease"] not in (0, old), 10, what="n1 to register again")
        ch.wait_until(lambda: "n1" in self.etcd.members(), 10, what="n1's record back")
        ch.wait_until(lambda: states(nodes[0]) == {"n0": "active", "n1": "active"}, 10, what="n0 to see n1 again")
        self.assertIn("registering again", nodes[1].log_text())
        self.assertEqual(nodes[1].metrics()["granary_cluster_registrations_total"], 2)

    def test_after_an_etcd_restart_and_a_compaction_the_view_follows_changes(self):
        nodes = self.start(2)
        self.wait_all_active(nodes, ["n0", "n1"])
        # The watch breaks with the restart and history is compacted past the revision it had reached: a
        # watch resumed from there would be refused; the nodes list again and follow the later changes.
        self.etcd.stop()
        self.etcd.start()
        for i in range(5):
            self.etcd.call("/v3/kv/put", {"key": ch.b64("/granary/other/%d" % i), "value": ch.b64("x")})
        self.etcd.compact()
        nodes[1].admin("drain")
        ch.wait_until(lambda: states(nodes[0]).get("n1") == "draining", 15, what="n0 to see n1 draining")


class StaticMembershipCase(unittest.TestCase):
    def test_a_static_member_list_without_etcd(self):
        nodes = ch.start_nodes(2, origin.url, static=True)
        try:
            for node in nodes:
                j = node.cluster_json()
                self.assertEqual(j["source"], "static")
                self.assertTrue(j["current"])
                self.assertEqual({m["id"]: m["state"] for m in j["members"]}, {"n0": "active", "n1": "active"})
            self.assertEqual(view(nodes[0])["n1"]["address"], nodes[1].peer_address)
            status, body = nodes[0].readyz()
            self.assertEqual(status, 200)
            self.assertIn("static membership", body)
            p = nodes[0].admin("drain", check=False)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("static", p.stderr)
            self.assertIn("n1", nodes[1].admin("cluster").stdout)
        finally:
            ch.stop_nodes(nodes)


if __name__ == "__main__":
    unittest.main()

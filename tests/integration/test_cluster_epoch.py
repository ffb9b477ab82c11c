"""One cache across the fleet, by capacity: a data set twice the size of one node's cache, but smaller than
the fleet's, read through one node and then through another. Each chunk is kept by its owner (weighted
rendezvous over the three nodes); a node that reads a chunk another node owns serves it without keeping it
(a borrowed chunk goes to disk only once it is read again), so the owners' shares are not pushed out by
chunks passing through. Metadata is asked of the origin once per object by the object's owner. The second epoch, through another
node, sends nothing to the origin: no GET, no HEAD."""
import hashlib
import threading
import unittest

import cluster_harness
import harness

BUCKET = "epochs"
OBJECTS = 80  # of 2 MiB: 160 MiB
OBJ_SIZE = 2 << 20
# A cache directory of N MiB holds N - 16 MiB of chunks (whole 16 MiB regions beside its journal): 80 MiB
# each, so the data set is twice one node's cache and two thirds of the fleet's.
NODE_CACHE_MIB = OBJECTS + 16

origin = proxy = None
nodes = []
digests = {}


def setUpModule():
    global origin, proxy, nodes
    origin = harness.Origin(large=True)
    proxy = harness.CountingProxy(int(origin.url.rsplit(":", 1)[1]))
    direct = harness.boto3_client(origin.url, key=harness.ORIGIN_KEY)
    direct.create_bucket(Bucket=BUCKET)
    for i in range(OBJECTS):
        body = hashlib.shake_256(b"epoch-%d" % i).digest(OBJ_SIZE)
        key = "train/%04d" % i
        direct.put_object(Bucket=BUCKET, Key=key, Body=body)
        digests[key] = hashlib.sha256(body).hexdigest()
    nodes = cluster_harness.start_nodes(3, proxy.url, static=True, cache="%dMiB" % NODE_CACHE_MIB, ram="8MiB",
                                        chunk="1MiB")


def tearDownModule():
    try:
        cluster_harness.stop_nodes(nodes)
    finally:
        proxy.stop()
        origin.stop()


def epoch(node):
    """Reads every object through `node` with 8 readers; returns the keys whose bytes were wrong."""
    keys = sorted(digests)
    wrong, lock = [], threading.Lock()

    def reader(part):
        s3 = harness.boto3_client(node.url)
        for key in part:
            body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
            if hashlib.sha256(body).hexdigest() != digests[key]:
                with lock:
                    wrong.append(key)

    threads = [threading.Thread(target=reader, args=(keys[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return wrong


class Epochs(unittest.TestCase):
    def test_the_second_epoch_through_another_node_sends_nothing_to_the_origin(self):
        self.assertEqual(epoch(nodes[0]), [])
        first = proxy.count(method="GET")
        self.assertGreaterEqual(first, OBJECTS)  # every chunk came from the origin once
        # Metadata too: each object's owner asked the origin once, for the fleet.
        self.assertEqual(proxy.count(method="HEAD"), OBJECTS, proxy.requests[:10])
        # The reading node kept (about) its own third, not the whole data set it read.
        m0 = nodes[0].metrics()
        self.assertGreater(m0.get("granary_cache_borrowed_skipped_total", 0), 0, m0)
        proxy.reset()
        self.assertEqual(epoch(nodes[1]), [])
        self.assertEqual(proxy.count(), 0, "epoch 2 through n1 reached the origin: %r" % proxy.requests[:10])
        m1 = nodes[1].metrics()
        self.assertGreater(m1.get('granary_cache_bytes_total{source="peer"}', 0), 0, m1)


if __name__ == "__main__":
    unittest.main()

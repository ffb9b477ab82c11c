// The peer port's handler without sockets: a signed chunk request is served through this node's cache
// (filled once from the backend, then held), from any offset; fill=0 serves only held chunks; a wrong
// signature, a replay, an unknown backend and a changed object get their statuses; an invalidation drops
// the object's metadata.

#include <catch2/catch.hpp>

#include "cache/object_meta.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <chrono>
#include <random>

#include "cache/chunk_cache.h"
#include "cache/object_meta.h"
#include "cluster/peer_auth.h"
#include "s3api/peer_chunk_source.h"
#include "s3api/peer_handler.h"
#include "support/fake_s3.h"
#include "support/handler_driver.h"

using namespace granary;
using granary::testing::FakeS3;
using granary::testing::FakeUpstream;
using granary::testing::Reply;
namespace asio = boost::asio;
namespace bhttp = boost::beast::http;

namespace {

constexpr std::uint64_t kChunk = 64 << 10;
const std::string kSecret = "peer-handler-test-secret";

std::string payload(std::size_t n, std::uint32_t seed) {
  std::string s(n, '\0');
  std::mt19937 rng(seed);
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

std::int64_t wallMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct Peer {
  FakeS3 s3;
  asio::io_context ioc{1};
  std::unique_ptr<cache::ChunkCache> cache;
  std::shared_ptr<s3api::PeerStats> stats = std::make_shared<s3api::PeerStats>();
  std::unique_ptr<s3api::PeerHandler> handler;

  Peer() {
    cache::CacheOptions co;
    co.ramBytes = 8 << 20;
    co.chunkSize = kChunk;
    cache = std::make_unique<cache::ChunkCache>(std::move(co));
    s3api::PeerHandlerOptions po;
    po.verifier = std::make_shared<cluster::PeerVerifier>(kSecret, std::chrono::seconds(30));
    po.stats = stats;
    po.buckets = std::make_shared<s3api::BucketMap>(std::vector<std::string>{"be"});
    std::vector<std::unique_ptr<upstream::Upstream>> ups;
    ups.push_back(std::make_unique<FakeUpstream>(s3));
    handler = std::make_unique<s3api::PeerHandler>(std::move(po), std::move(ups),
                                                    std::make_unique<cache::CacheThread>(*cache, ioc.get_executor()));
  }

  /// Sends `method target` signed with `secret` (or with the given headers as they are).
  Reply call(bhttp::verb method, const std::string& target, const std::string& secret = kSecret,
             std::vector<std::pair<std::string, std::string>> headers = {}) {
    if (headers.empty()) headers = cluster::signPeerRequest(secret, "n1", bhttp::to_string(method), target, wallMillis());
    http::RequestHeader req;
    req.method(method);
    req.target(target);
    req.version(11);
    for (const auto& [n, v] : headers) req.set(n, v);
    Reply reply;
    auto fut = asio::co_spawn(ioc, [&]() -> asio::awaitable<void> {
      testing::StringBody body("");
      testing::CapturingWriter out(reply);
      co_await handler->handle(req, http::RequestContext{}, body, out);
    }, asio::use_future);
    ioc.restart();
    ioc.run_for(std::chrono::seconds(10));
    fut.get();
    return reply;
  }
};

std::string chunkTarget(const cache::ObjectId& obj, std::uint32_t index, std::uint64_t from, bool fill) {
  const cache::ChunkRequest req{obj, index, obj.chunkOffset(index), obj.chunkLength(index)};
  return s3api::peerChunkTarget(req, from, fill);
}

}  // namespace

TEST_CASE("peer handler: a chunk is filled once through the cache, then served from it", "[unit][s3api]") {
  Peer p;
  const std::string data = payload(3 * kChunk + 100, 1);
  const std::string etag = p.s3.put("bucket", "key", data);
  const cache::ObjectId obj{"be", "bucket", "key", {}, etag, data.size(), kChunk};

  SECTION("fill=0 before anything is held: 404, the backend not asked") {
    CHECK(p.call(bhttp::verb::get, chunkTarget(obj, 1, 0, false)).status == 404);
    CHECK(p.s3.requests().empty());
  }
  SECTION("fill=1, then fill=0 and another offset from what is held") {
    const Reply r = p.call(bhttp::verb::get, chunkTarget(obj, 1, 0, true));
    CHECK(r.status == 200);
    CHECK(r.header("content-length") == std::to_string(kChunk));
    CHECK(r.body == data.substr(kChunk, kChunk));
    CHECK(p.s3.count(bhttp::verb::get, "key") == 1);
    const Reply held = p.call(bhttp::verb::get, chunkTarget(obj, 1, 1000, false));
    CHECK(held.status == 200);
    CHECK(held.body == data.substr(kChunk + 1000, kChunk - 1000));
    const Reply last = p.call(bhttp::verb::get, chunkTarget(obj, 3, 0, true));
    CHECK(last.body == data.substr(3 * kChunk));
    CHECK(p.s3.count(bhttp::verb::get, "key") == 2);
    CHECK(p.stats->bytesServed() == kChunk + (kChunk - 1000) + 100);
  }
  SECTION("the object changed at the backend: 412") {
    p.s3.put("bucket", "key", payload(data.size(), 2));
    CHECK(p.call(bhttp::verb::get, chunkTarget(obj, 0, 0, true)).status == 412);
  }
  SECTION("an unknown backend: 404; a malformed identity: 400") {
    cache::ObjectId other = obj;
    other.backend = "elsewhere";
    CHECK(p.call(bhttp::verb::get, chunkTarget(other, 0, 0, true)).status == 404);
    CHECK(p.call(bhttp::verb::get, "/_granary/peer/v1/chunk?b=be&bucket=bucket&key=key&i=0").status == 400);
  }
  SECTION("sizes a peer controls are checked before use: no crash, no backend request") {
    const std::string base = "/_granary/peer/v1/chunk?b=be&bucket=bucket&key=key&etag=%22e%22&fill=1&from=0";
    const std::string cs = std::to_string(kChunk);
    CHECK(p.call(bhttp::verb::get, base + "&size=100&cs=0&i=0").status == 400);  // chunkCount() divides by it
    CHECK(p.call(bhttp::verb::get, base + "&size=18446744073709551615&cs=" + cs + "&i=0").status == 400);
    CHECK(p.call(bhttp::verb::get, base + "&size=0&cs=" + cs + "&i=0").status == 400);
    CHECK(p.call(bhttp::verb::get, base + "&size=100&cs=" + cs + "&i=1").status == 400);  // past the last chunk
    CHECK(p.call(bhttp::verb::get, base + "&size=100&cs=" + std::to_string(2 * kChunk) + "&i=0").status == 503);
    CHECK(p.call(bhttp::verb::get, base.substr(0, base.size() - 6) + "&from=101&size=100&cs=" + cs + "&i=0").status ==
          400);  // past the chunk's end
    std::string longKey = base;
    longKey.replace(longKey.find("key=key"), 7, "key=" + std::string(1025, 'k'));
    CHECK(p.call(bhttp::verb::get, longKey + "&size=100&cs=" + cs + "&i=0").status == 400);
    CHECK(p.s3.requests().empty());
  }
}

TEST_CASE("peer handler: an object's metadata from its owner, asked of the backend once per TTL", "[unit][s3api]") {
  Peer p;
  const std::string data = payload(kChunk + 10, 3);
  const std::string etag = p.s3.put("bucket", "key", data);
  const std::string target = "/_granary/peer/v1/meta?b=be&bucket=bucket&key=key";
  const Reply first = p.call(bhttp::verb::get, target);
  REQUIRE(first.status == 200);
  const auto meta = cache::parseMeta(first.body);
  REQUIRE(meta);
  CHECK(meta->etag == etag);
  CHECK(meta->size == data.size());
  CHECK(p.s3.count(bhttp::verb::head, "key") == 1);
  CHECK(p.call(bhttp::verb::get, target).body == first.body);  // held and fresh: no second HEAD
  CHECK(p.s3.count(bhttp::verb::head, "key") == 1);
  CHECK(p.call(bhttp::verb::get, "/_granary/peer/v1/meta?b=be&bucket=bucket&key=absent").status == 404);
  CHECK(p.call(bhttp::verb::get, target, "another-secret-0123456789").status == 403);
}

TEST_CASE("peer handler: refusals are 403, counted by reason", "[unit][s3api]") {
  Peer p;
  const std::string target = "/_granary/peer/v1/invalidate?b=be&bucket=bucket&key=key";
  CHECK(p.call(bhttp::verb::post, target, "not-the-secret-at-all").status == 403);
  CHECK(p.stats->refusals(s3api::PeerRefusal::Signature) == 1);
  const auto headers = cluster::signPeerRequest(kSecret, "n1", "POST", target, wallMillis());
  CHECK(p.call(bhttp::verb::post, target, kSecret, headers).status == 200);
  CHECK(p.call(bhttp::verb::post, target, kSecret, headers).status == 403);
  CHECK(p.stats->refusals(s3api::PeerRefusal::Replay) == 1);
  const auto old = cluster::signPeerRequest(kSecret, "n1", "POST", target, wallMillis() - 60'000);
  CHECK(p.call(bhttp::verb::post, target, kSecret, old).status == 403);
  CHECK(p.stats->refusals(s3api::PeerRefusal::Expired) == 1);
  CHECK(p.call(bhttp::verb::get, "/elsewhere").status == 404);
}

TEST_CASE("peer handler: an invalidation drops the object's metadata", "[unit][s3api]") {
  Peer p;
  const cache::ObjectId obj{"be", "bucket", "key", {}, "\"e\"", 10, kChunk};
  auto meta = std::make_shared<cache::ObjectMeta>();
  meta->etag = "\"e\"";
  meta->size = 10;
  p.cache->metaToRam(obj.metaKey(), meta);
  REQUIRE(p.cache->metaInRam(obj.metaKey()));
  CHECK(p.call(bhttp::verb::post, s3api::peerInvalidateTarget("be", "bucket", "key", "")).status == 200);
  CHECK_FALSE(p.cache->metaInRam(obj.metaKey()));
}

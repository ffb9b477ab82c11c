// The cluster's chunk source: which peers it asks in which order (self rank 0, rank 1, neither), with
// fill=0 or 1, how it falls back (no answer, a status, a short body: the next source continues from the
// sink's mark), a 412 ending as Changed, and the counters. Fake peers and a fake backend.

#include <catch2/catch.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <cstring>
#include <map>

#include "s3api/peer_chunk_source.h"

using namespace granary;
using cache::FetchOutcome;
using s3api::PeerOutcome;
namespace asio = boost::asio;

namespace {

constexpr std::uint64_t kChunk = 64 << 10;

char byteAt(std::uint64_t pos) { return static_cast<char>((pos * 2654435761u) >> 13); }

void writeBytes(const cache::ChunkRequest& req, cache::ChunkSink& sink, std::uint64_t upTo) {
  for (std::uint64_t i = sink.written(); i < upTo; ++i) sink.data()[i] = byteAt(req.offset + i);
  sink.advance(static_cast<std::size_t>(upTo - sink.written()));
}

struct Call {
  std::string who;
  bool fill;
  std::uint64_t from;
};

/// A peer: writes up to `bytes` of the chunk (all of it by default), then ends with `outcome`.
struct PeerBehaviour {
  PeerOutcome outcome = PeerOutcome::Ok;
  std::uint64_t bytes = kChunk;
};

class FakePeers final : public s3api::PeerChunkFetcher {
 public:
  std::map<std::string, PeerBehaviour> peers;
  std::vector<Call>& calls;
  explicit FakePeers(std::vector<Call>& c) : calls(c) {}
  asio::awaitable<PeerOutcome> fetch(const cluster::Member& peer, bool fill, const cache::ChunkRequest& req,
                                     cache::ChunkSink& sink) override {
    calls.push_back({peer.id, fill, sink.written()});
    const PeerBehaviour b = peers[peer.id];
    if (b.outcome == PeerOutcome::Ok || b.outcome == PeerOutcome::Short)
      writeBytes(req, sink, std::min(b.bytes, req.length));
    co_return b.outcome;
  }
};

class FakeBackend final : public cache::ChunkSource {
 public:
  std::vector<Call>& calls;
  explicit FakeBackend(std::vector<Call>& c) : calls(c) {}
  asio::awaitable<FetchOutcome> fetch(const cache::ChunkRequest& req, cache::ChunkSink& sink) override {
    calls.push_back({"backend", false, sink.written()});
    writeBytes(req, sink, req.length);
    co_return FetchOutcome::Ok;
  }
};

const cache::ObjectId kObj{"be", "bucket", "key", {}, "\"e1\"", 4 * kChunk, kChunk};

std::vector<cluster::Member> members() {
  return cluster::parseStaticMembers({"a=127.0.0.1:1", "b=127.0.0.1:2", "c=127.0.0.1:3"});
}

/// The ids of chunk 1's owners, best first.
std::vector<std::string> owners() {
  cluster::MemberSet set(members(), "a");
  std::vector<std::string> ids;
  for (const auto* m : set.rank(kObj.chunkKey(1), 3)) ids.push_back(m->id);
  return ids;
}

struct Run {
  FetchOutcome outcome;
  std::vector<Call> calls;
  std::string bytes;
};

Run run(const std::string& self, const std::map<std::string, PeerBehaviour>& behaviour,
        std::shared_ptr<s3api::PeerStats> stats = nullptr) {
  Run r;
  FakePeers peers(r.calls);
  peers.peers = behaviour;
  auto backend = std::make_shared<FakeBackend>(r.calls);
  auto source = std::make_shared<cluster::StaticMembers>(std::make_shared<cluster::MemberSet>(members(), self));
  s3api::PeerChunkSource src(source, peers, backend, stats);
  cache::Fill fill(std::make_shared<cache::Chunk>(kObj.chunkKey(1), kChunk));
  asio::io_context ioc(1);
  auto fut = asio::co_spawn(ioc, [&]() -> asio::awaitable<FetchOutcome> {
    cache::ChunkSink sink(fill);
    const cache::ChunkRequest req{kObj, 1, kObj.chunkOffset(1), kChunk};
    co_return co_await src.fetch(req, sink);
  }, asio::use_future);
  ioc.run();
  r.outcome = fut.get();
  r.bytes.assign(fill.data(), fill.ready());
  return r;
}

std::string expected() {
  std::string s(kChunk, '\0');
  for (std::uint64_t i = 0; i < kChunk; ++i) s[i] = byteAt(kChunk + i);
  return s;
}

}  // namespace

TEST_CASE("peer chunk source: the order of the sources by this node's rank", "[unit][s3api]") {
  const auto o = owners();
  REQUIRE(o.size() == 3);
  SECTION("self is rank 0: rank 1 with fill=0, then the backend") {
    const Run r = run(o[0], {{o[1], {PeerOutcome::NotHeld, 0}}});
    CHECK(r.outcome == FetchOutcome::Ok);
    REQUIRE(r.calls.size() == 2);
    CHECK(r.calls[0].who == o[1]);
    CHECK_FALSE(r.calls[0].fill);
    CHECK(r.calls[1].who == "backend");
    CHECK(r.bytes == expected());
  }
  SECTION("self is rank 0 and rank 1 holds it: no backend") {
    const Run r = run(o[0], {});
    REQUIRE(r.calls.size() == 1);
    CHECK(r.calls[0].who == o[1]);
    CHECK(r.bytes == expected());
  }
  SECTION("self is rank 1: rank 0 with fill=1") {
    const Run r = run(o[1], {});
    REQUIRE(r.calls.size() == 1);
    CHECK(r.calls[0].who == o[0]);
    CHECK(r.calls[0].fill);
  }
  SECTION("self is neither: rank 0, then rank 1, both fill=1, then the backend") {
    auto stats = std::make_shared<s3api::PeerStats>();
    const Run r = run(o[2], {{o[0], {PeerOutcome::Connect, 0}}, {o[1], {PeerOutcome::Status, 0}}}, stats);
    REQUIRE(r.calls.size() == 3);
    CHECK(r.calls[0].who == o[0]);
    CHECK(r.calls[0].fill);
    CHECK(r.calls[1].who == o[1]);
    CHECK(r.calls[1].fill);
    CHECK(r.calls[2].who == "backend");
    CHECK(r.bytes == expected());
    CHECK(stats->fallbacks(s3api::PeerFallback::Connect) == 1);
    CHECK(stats->fallbacks(s3api::PeerFallback::Status) == 1);
    CHECK(stats->bytesFetched() == 0);
  }
  SECTION("a node alone asks nobody") {
    std::vector<Call> calls;
    FakePeers peers(calls);
    auto only = cluster::parseStaticMembers({"a=127.0.0.1:1"});
    CHECK(s3api::PeerChunkSource::plan(cluster::MemberSet(only, "a"), kObj.chunkKey(1)).empty());
  }
}

TEST_CASE("peer chunk source: a source that dies mid-chunk is resumed from the mark", "[unit][s3api]") {
  const auto o = owners();
  auto stats = std::make_shared<s3api::PeerStats>();
  const Run r = run(o[2], {{o[0], {PeerOutcome::Short, 1000}}, {o[1], {PeerOutcome::Short, 5000}}}, stats);
  CHECK(r.outcome == FetchOutcome::Ok);
  REQUIRE(r.calls.size() == 3);
  CHECK(r.calls[0].from == 0);
  CHECK(r.calls[1].from == 1000);
  CHECK(r.calls[2].who == "backend");
  CHECK(r.calls[2].from == 5000);
  CHECK(r.bytes == expected());
  CHECK(stats->fallbacks(s3api::PeerFallback::Short) == 2);
  CHECK(stats->bytesFetched() == 5000);
}

TEST_CASE("peer chunk source: a peer's 412 is a changed object, not a fallback", "[unit][s3api]") {
  const auto o = owners();
  auto stats = std::make_shared<s3api::PeerStats>();
  const Run r = run(o[1], {{o[0], {PeerOutcome::Changed, 0}}}, stats);
  CHECK(r.outcome == FetchOutcome::Changed);
  CHECK(r.calls.size() == 1);
  CHECK(stats->fallbacks(s3api::PeerFallback::Changed) == 1);
}

TEST_CASE("peer chunk source: the request target names the whole identity", "[unit][s3api]") {
  const cache::ObjectId obj{"be", "my bucket", "a/b c&d", "v1", "\"e1\"", 4 * kChunk, kChunk};
  const cache::ChunkRequest req{obj, 2, obj.chunkOffset(2), kChunk};
  CHECK(s3api::peerChunkTarget(req, 7, true) ==
        "/_granary/peer/v1/chunk?b=be&bucket=my%20bucket&key=a%2Fb%20c%26d&v=v1&etag=%22e1%22&size=262144&cs=65536"
        "&i=2&from=7&fill=1");
}

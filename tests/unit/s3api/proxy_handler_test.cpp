// The proxy's middle without sockets: a ProxyHandler in front of an in-memory S3 (tests/support/fake_s3.h),
// driven by a signing client (tests/support/handler_driver.h), with a fake clock for TTLs. Dispatch, hit,
// miss, partial hit, coalesced miss, revalidation, stale-if-error and write invalidation, in milliseconds.

#include <catch2/catch.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <filesystem>
#include <random>

#include "cache/chunk_cache.h"
#include "common/timeutil.h"
#include "s3api/proxy_handler.h"
#include "support/fake_s3.h"
#include "support/handler_driver.h"

using namespace granary;
using namespace granary::s3api;
using granary::testing::Client;
using granary::testing::FakeS3;
using granary::testing::FakeUpstream;
using granary::testing::Reply;
namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using bhttp::verb;

namespace {

constexpr std::uint64_t kChunk = 64 << 10;
const sigv4::Credentials kClientKey{"TESTKEY", "testsecret", ""};

std::string payload(std::size_t n, std::uint32_t seed) {
  std::string s(n, '\0');
  std::mt19937 rng(seed);
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    char tmpl[] = "/tmp/granary-proxy-test-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

/// One proxy thread: an io_context, a cache (RAM and disk tiers) and a handler over a FakeS3.
struct Proxy {
  FakeS3 s3;
  TempDir dir;
  asio::io_context ioc{1};
  std::unique_ptr<cache::ChunkCache> cache;
  std::unique_ptr<ProxyHandler> handler;
  std::shared_ptr<TtlStore> ttls;

  explicit Proxy(std::chrono::milliseconds ttl = std::chrono::seconds(60),
                 std::chrono::milliseconds staleIfError = std::chrono::milliseconds(0)) {
    cache::CacheOptions co;
    co.dirs = {{dir.path.string(), 64 << 20}};
    co.ramBytes = 8 << 20;
    co.chunkSize = kChunk;
    cache = std::make_unique<cache::ChunkCache>(std::move(co));
    ProxyOptions po;
    po.accessLog = false;
    auto table = std::make_shared<TtlTable>();
    table->fallback = ttl;
    table->staleFallback = staleIfError;
    ttls = std::make_shared<TtlStore>(table);
    po.ttls = ttls;
    po.metadataTtl = ttl;
    auto keys = std::make_shared<KeyTable>();
    keys->add(kClientKey.accessKey, kClientKey.secretKey);
    std::vector<std::unique_ptr<upstream::Upstream>> ups;
    ups.push_back(std::make_unique<FakeUpstream>(s3));
    handler = std::make_unique<ProxyHandler>(std::move(po), std::make_shared<KeyStore>(keys), std::move(ups),
                                             std::make_unique<cache::CacheThread>(*cache, ioc.get_executor()));
  }
  ~Proxy() {
    handler->shutdown();
    ioc.run_for(std::chrono::milliseconds(200));  // background fills end
    handler.reset();
    cache->close();
  }

  /// Runs requests concurrently on the handler's thread until all are answered (and background fills land).
  std::vector<Reply> run(std::vector<std::function<http::Awaitable<Reply>(Client&)>> calls) {
    std::vector<Reply> replies(calls.size());
    std::vector<std::unique_ptr<Client>> clients;
    for (std::size_t i = 0; i < calls.size(); ++i) {
      clients.push_back(std::make_unique<Client>(*handler, kClientKey));
      asio::co_spawn(ioc, [&, i]() -> http::Awaitable<void> { replies[i] = co_await calls[i](*clients[i]); },
                     asio::detached);
    }
    ioc.restart();
    ioc.run_for(std::chrono::seconds(10));
    ioc.restart();
    ioc.poll();
    return replies;
  }
  Reply get(const std::string& path, sigv4::HeaderList headers = {}) {
    return run({[&](Client& c) { return c.call(verb::get, path, {}, headers); }}).front();
  }
  Reply put(const std::string& path, std::string body) {
    return run({[&](Client& c) { return c.call(verb::put, path, {}, {}, body); }}).front();
  }
  std::size_t backendGets(const std::string& key) { return s3.count(verb::get, key); }
};

}  // namespace

TEST_CASE("proxy: a miss fills the cache, the second read never reaches the backend", "[s3api][proxy]") {
  Proxy p;
  const std::string data = payload(3 * kChunk + 100, 1);
  p.s3.put("b", "o.bin", data);
  Reply first = p.get("/b/o.bin");
  REQUIRE(first.status == 200);
  CHECK(first.body == data);
  CHECK(first.header("x-granary-cache") == "miss");
  CHECK(p.backendGets("o.bin") == 4);  // one GET per chunk (the first also carried the metadata)
  p.s3.resetCounters();
  Reply second = p.get("/b/o.bin");
  REQUIRE(second.status == 200);
  CHECK(second.body == data);
  CHECK(second.header("x-granary-cache") == "hit");
  CHECK(p.s3.requests().empty());
}

TEST_CASE("proxy: a range read fetches its chunks; a whole read then fetches only the rest", "[s3api][proxy]") {
  Proxy p;
  const std::string data = payload(4 * kChunk, 2);
  p.s3.put("b", "r.bin", data);
  const std::string range = "bytes=" + std::to_string(kChunk + 10) + "-" + std::to_string(kChunk + 20);
  Reply part = p.get("/b/r.bin", {{"range", range}});
  REQUIRE(part.status == 206);
  CHECK(part.body == data.substr(kChunk + 10, 11));
  CHECK(part.header("content-range") == "bytes " + std::to_string(kChunk + 10) + "-" + std::to_string(kChunk + 20) +
                                            "/" + std::to_string(data.size()));
  Reply whole = p.get("/b/r.bin");
  REQUIRE(whole.status == 200);
  CHECK(whole.body == data);
  CHECK(whole.header("x-granary-cache") == "partial");
  // Each chunk's range was asked for once in all (read-ahead included), plus the metadata's HEAD.
  std::map<std::string, int> ranges;
  for (const auto& r : p.s3.requests())
    if (r.method == verb::get) ++ranges[r.range];
  CHECK(ranges.size() == 4);
  for (const auto& [r, n] : ranges) CHECK(n == 1);
}

TEST_CASE("proxy: concurrent cold readers fetch each chunk from the backend once", "[s3api][proxy]") {
  Proxy p;
  const std::string data = payload(6 * kChunk + 5, 3);
  p.s3.put("b", "c.bin", data);
  p.s3.setLatency(std::chrono::milliseconds(20));
  std::vector<std::function<http::Awaitable<Reply>(Client&)>> calls(8, [](Client& c) { return c.call(verb::get, "/b/c.bin"); });
  auto replies = p.run(calls);
  for (const auto& r : replies) {
    REQUIRE(r.status == 200);
    CHECK(r.body == data);
  }
  CHECK(p.backendGets("c.bin") == 7);
  CHECK(p.s3.count(verb::head, "c.bin") == 0);
}

TEST_CASE("proxy: metadata is trusted for its TTL, then revalidated; a changed object is never mixed",
          "[s3api][proxy]") {
  Proxy p(std::chrono::seconds(30));
  const std::string v1 = payload(2 * kChunk, 4), v2 = payload(2 * kChunk, 5);
  p.s3.put("b", "t.bin", v1);
  REQUIRE(p.get("/b/t.bin").body == v1);
  p.s3.put("b", "t.bin", v2);  // behind Granary's back
  CHECK(p.get("/b/t.bin").body == v1);  // within the TTL: the cached copy
  advanceClockForTesting(std::chrono::seconds(31));
  p.s3.resetCounters();
  Reply after = p.get("/b/t.bin");
  REQUIRE(after.status == 200);
  CHECK(after.body == v2);
  CHECK(p.backendGets("t.bin") + p.s3.count(verb::head, "t.bin") >= 1);
  for (const auto& r : p.s3.requests())
    if (r.method == verb::get && !r.ifMatch.empty()) CHECK(r.ifMatch == p.s3.get("b", "t.bin")->etag);
}

TEST_CASE("proxy: past the TTL with the backend down, stale-if-error serves what is cached, marked stale",
          "[s3api][proxy]") {
  Proxy p(std::chrono::seconds(10), std::chrono::seconds(60));
  const std::string data = payload(kChunk + 1, 6);
  p.s3.put("b", "s.bin", data);
  REQUIRE(p.get("/b/s.bin").body == data);
  advanceClockForTesting(std::chrono::seconds(11));
  p.s3.failNext(1000);
  Reply stale = p.get("/b/s.bin");
  REQUIRE(stale.status == 200);
  CHECK(stale.body == data);
  CHECK(stale.header("x-granary-cache") == "stale");
  CHECK(stale.header("warning").find("110") == 0);
  advanceClockForTesting(std::chrono::seconds(61));  // past TTL + stale window: the backend's failure answers
  Reply gone = p.get("/b/s.bin");
  CHECK(gone.status >= 500);
  CHECK(gone.body.find("<Code>") != std::string::npos);
  p.s3.failNext(0);
}

TEST_CASE("proxy: stale metadata without the bytes a GET needs answers no 304 or 412 of its own",
          "[s3api][proxy]") {
  // stale-if-error serves only bytes on hand: with the GET's chunks missing, the backend's failure is the
  // answer (a 5xx a client retries), never a 412 or 304 decided on metadata the backend could not vouch for.
  Proxy p(std::chrono::seconds(10), std::chrono::seconds(60));
  p.s3.put("b", "m.bin", payload(2 * kChunk, 9));
  const std::string etag = p.s3.get("b", "m.bin")->etag;
  REQUIRE(p.run({[](Client& c) { return c.call(verb::head, "/b/m.bin"); }}).front().status == 200);  // metadata only
  advanceClockForTesting(std::chrono::seconds(11));
  p.s3.failNext(1000);
  Reply ifMatch = p.get("/b/m.bin", {{"if-match", "\"other\""}});
  CHECK(ifMatch.status >= 500);
  Reply ifNoneMatch = p.get("/b/m.bin", {{"if-none-match", etag}});
  CHECK(ifNoneMatch.status >= 500);
  // A HEAD needs no bytes: the stale metadata answers it, marked stale.
  Reply head = p.run({[](Client& c) { return c.call(verb::head, "/b/m.bin"); }}).front();
  CHECK(head.status == 200);
  CHECK(head.header("x-granary-cache") == "stale");
  p.s3.failNext(0);
}

TEST_CASE("proxy: a conditional GET ?partNumber= of a cached object is answered 304/412 without the backend",
          "[s3api][proxy]") {
  // Preconditions come before the part number: where the part lies (a HEAD to the backend) is only asked
  // for a read that will send bytes.
  Proxy p;
  p.s3.put("b", "q.bin", payload(kChunk + 3, 10));
  const std::string etag = p.s3.get("b", "q.bin")->etag;
  REQUIRE(p.get("/b/q.bin").status == 200);
  p.s3.resetCounters();
  const std::string path = "/b/q.bin";  // (call() takes it by reference: it must outlive the request)
  auto part = [&](sigv4::HeaderList headers) {
    return p.run({[&](Client& c) { return c.call(verb::get, path, {{"partNumber", "1"}}, headers); }}).front();
  };
  Reply notModified = part({{"if-none-match", etag}});
  CHECK(notModified.status == 304);
  Reply failed = part({{"if-match", "\"other\""}});
  CHECK(failed.status == 412);
  CHECK(failed.body.find("<Condition>If-Match</Condition>") != std::string::npos);
  CHECK(p.s3.requests().empty());
  p.s3.failNext(1000);  // the backend down: the fresh metadata still answers them
  CHECK(part({{"if-none-match", etag}}).status == 304);
  p.s3.failNext(0);
}

TEST_CASE("proxy: a write through the proxy invalidates at once; a delete too", "[s3api][proxy]") {
  Proxy p;
  const std::string v1 = payload(kChunk + 7, 7), v2 = payload(kChunk / 2, 8);
  p.s3.put("b", "w.bin", v1);
  REQUIRE(p.get("/b/w.bin").body == v1);
  Reply put = p.put("/b/w.bin", v2);
  REQUIRE(put.status == 200);
  CHECK(put.header("etag") == p.s3.get("b", "w.bin")->etag);
  CHECK(p.get("/b/w.bin").body == v2);
  Reply del = p.run({[](Client& c) { return c.call(verb::delete_, "/b/w.bin"); }}).front();
  CHECK(del.status == 204);
  Reply after = p.get("/b/w.bin");
  CHECK(after.status == 404);
  CHECK(after.body.find("<Code>NoSuchKey</Code>") != std::string::npos);
}

TEST_CASE("proxy: dispatch answers S3 errors before any backend request", "[s3api][proxy]") {
  Proxy p;
  p.s3.put("b", "k", "x");
  // A bad signature: 403 SignatureDoesNotMatch, nothing reaches the backend.
  Client wrong(*p.handler, sigv4::Credentials{"TESTKEY", "not-the-secret", ""});
  Reply denied;
  asio::co_spawn(p.ioc, [&]() -> http::Awaitable<void> { denied = co_await wrong.call(verb::get, "/b/k"); },
                 asio::detached);
  p.ioc.restart();
  p.ioc.run_for(std::chrono::seconds(5));
  CHECK(denied.status == 403);
  CHECK(denied.body.find("<Code>SignatureDoesNotMatch</Code>") != std::string::npos);
  // An unsatisfiable range on a cached object: 416 with the object's size, from the cache.
  REQUIRE(p.get("/b/k").status == 200);
  p.s3.resetCounters();
  Reply r416 = p.get("/b/k", {{"range", "bytes=5-9"}});
  CHECK(r416.status == 416);
  CHECK(r416.header("content-range") == "bytes */1");
  CHECK(p.s3.requests().empty());
  // If-None-Match with the current ETag: 304 from the cache.
  Reply nm = p.get("/b/k", {{"if-none-match", p.s3.get("b", "k")->etag}});
  CHECK(nm.status == 304);
  CHECK(p.s3.requests().empty());
}

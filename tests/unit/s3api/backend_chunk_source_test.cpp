// The backend as a chunk source: the ranged, If-Match GET it sends, and how each answer ends the fetch
// (206 with the right range, 200 with the whole object, another ETag, another total size, 412/416, a
// wrong range, a 5xx, no answer, a short body), plus the first chunk's already opened answer.

#include <catch2/catch.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <cstring>
#include <functional>

#include "s3api/backend_chunk_source.h"
#include "support/memory_response.h"

using namespace granary;
using cache::FetchOutcome;
namespace asio = boost::asio;
namespace bhttp = boost::beast::http;

namespace {

constexpr std::uint64_t kChunk = 64 << 10;

char byteAt(std::uint64_t pos) { return static_cast<char>((pos * 2654435761u) >> 13); }

std::string objectBytes(std::uint64_t from, std::uint64_t n) {
  std::string s(static_cast<std::size_t>(n), '\0');
  for (std::uint64_t i = 0; i < n; ++i) s[i] = byteAt(from + i);
  return s;
}

/// status, ETag, Content-Range ("" for none), body; Content-Length is the body's size.
upstream::UpstreamResponsePtr answer(unsigned status, const std::string& etag, const std::string& range,
                                     std::string body) {
  upstream::ResponseHeader h;
  h.result(status);
  if (!etag.empty()) h.set(bhttp::field::etag, etag);
  if (!range.empty()) h.set(bhttp::field::content_range, range);
  const std::uint64_t n = body.size();
  return std::make_unique<granary::testing::MemoryResponse>(std::move(h), std::move(body), n, 10000);  // several reads
}

class FakeUpstream final : public upstream::Upstream {
 public:
  std::function<upstream::UpstreamResponsePtr(const upstream::UpstreamRequest&)> respond;
  std::vector<upstream::UpstreamRequest> sent;
  upstream::Awaitable<boost::system::result<upstream::UpstreamResponsePtr>> send(upstream::UpstreamRequest& req) override {
    sent.push_back(req);
    upstream::UpstreamResponsePtr r = respond(req);
    if (!r) co_return boost::system::error_code(boost::asio::error::connection_refused);
    co_return std::move(r);
  }
  void shutdown() override {}
};

const std::string* header(const upstream::UpstreamRequest& r, std::string_view name) {
  for (const auto& [n, v] : r.headers)
    if (n == name) return &v;
  return nullptr;
}

struct Fetched {
  FetchOutcome outcome;
  std::string bytes;  // what the sink holds below its written mark
};

/// @param written bytes another source wrote before this one (the chunk's first ones, already visible).
Fetched fetch(s3api::BackendChunkSource& src, const cache::ObjectId& obj, std::uint32_t index,
              const std::string& written = {}) {
  cache::Fill fill(std::make_shared<cache::Chunk>(obj.chunkKey(index), obj.chunkLength(index)));
  std::memcpy(fill.chunk().value(), written.data(), written.size());
  fill.advance(written.size());
  asio::io_context ioc(1);
  auto fut = asio::co_spawn(ioc, [&]() -> asio::awaitable<Fetched> {
    cache::ChunkSink sink(fill);
    const cache::ChunkRequest req{obj, index, obj.chunkOffset(index), obj.chunkLength(index)};
    const FetchOutcome o = co_await src.fetch(req, sink);
    co_return Fetched{o, std::string(fill.data(), fill.ready())};
  }, asio::use_future);
  ioc.run();
  return fut.get();
}

cache::ObjectId objectOf(std::uint64_t size) {
  return cache::ObjectId{"be", "bucket", "key", {}, "\"e1\"", size, kChunk};
}

std::string rangeOf(std::uint64_t first, std::uint64_t last, std::uint64_t total) {
  return "bytes " + std::to_string(first) + "-" + std::to_string(last) + "/" + std::to_string(total);
}

}  // namespace

TEST_CASE("backend chunk source: a ranged GET pinned to the ETag; the right 206 fills the chunk", "[unit][s3api]") {
  FakeUpstream up;
  const cache::ObjectId obj = objectOf(2 * kChunk + 500);
  up.respond = [&](const upstream::UpstreamRequest&) {
    return answer(206, obj.etag, rangeOf(2 * kChunk, 2 * kChunk + 499, obj.size), objectBytes(2 * kChunk, 500));
  };
  s3api::BackendChunkSource src(&up);
  const Fetched f = fetch(src, obj, 2);
  CHECK(f.outcome == FetchOutcome::Ok);
  CHECK(f.bytes == objectBytes(2 * kChunk, 500));
  REQUIRE(up.sent.size() == 1);
  CHECK(up.sent[0].method == bhttp::verb::get);
  CHECK(up.sent[0].bucket == "bucket");
  CHECK(*header(up.sent[0], "range") == "bytes=" + std::to_string(2 * kChunk) + "-" + std::to_string(2 * kChunk + 499));
  CHECK(*header(up.sent[0], "if-match") == obj.etag);
}

TEST_CASE("backend chunk source: a 200 with the whole object fills the chunk from its offset", "[unit][s3api]") {
  FakeUpstream up;
  const cache::ObjectId obj = objectOf(3 * kChunk);
  up.respond = [&](const upstream::UpstreamRequest&) { return answer(200, obj.etag, "", objectBytes(0, obj.size)); };
  s3api::BackendChunkSource src(&up);
  const Fetched f = fetch(src, obj, 1);
  CHECK(f.outcome == FetchOutcome::Ok);
  CHECK(f.bytes == objectBytes(kChunk, kChunk));
}

TEST_CASE("backend chunk source: answers that end a fetch without bytes", "[unit][s3api]") {
  FakeUpstream up;
  const cache::ObjectId obj = objectOf(2 * kChunk);
  const std::string chunk1 = objectBytes(kChunk, kChunk);
  const std::string right = rangeOf(kChunk, 2 * kChunk - 1, obj.size);
  struct Case {
    const char* what;
    std::function<upstream::UpstreamResponsePtr()> respond;
    FetchOutcome outcome;
  };
  const std::vector<Case> cases = {
      {"another ETag", [&] { return answer(206, "\"e2\"", right, chunk1); }, FetchOutcome::Changed},
      {"412", [&] { return answer(412, "", "", ""); }, FetchOutcome::Changed},
      {"416", [&] { return answer(416, "", "", ""); }, FetchOutcome::Changed},
      {"another total size", [&] { return answer(206, obj.etag, rangeOf(kChunk, 2 * kChunk - 1, 3 * kChunk), chunk1); },
       FetchOutcome::LengthMismatch},
      {"a 200 of another size", [&] { return answer(200, obj.etag, "", objectBytes(0, obj.size + 1)); },
       FetchOutcome::LengthMismatch},
      {"another range", [&] { return answer(206, obj.etag, rangeOf(0, kChunk - 1, obj.size), chunk1); },
       FetchOutcome::Failed},
      {"no Content-Range", [&] { return answer(206, obj.etag, "", chunk1); }, FetchOutcome::Failed},
      {"a 503", [&] { return answer(503, "", "", ""); }, FetchOutcome::Failed},
      {"no answer", [&] { return upstream::UpstreamResponsePtr{}; }, FetchOutcome::Failed},
  };
  for (const Case& c : cases) {
    SECTION(c.what) {
      up.respond = [&](const upstream::UpstreamRequest&) { return c.respond(); };
      s3api::BackendChunkSource src(&up);
      const Fetched f = fetch(src, obj, 1);
      CHECK(f.outcome == c.outcome);
      CHECK(f.bytes.empty());
    }
  }
}

TEST_CASE("backend chunk source: a body that ends early is a failure, its bytes never whole", "[unit][s3api]") {
  FakeUpstream up;
  const cache::ObjectId obj = objectOf(kChunk);
  up.respond = [&](const upstream::UpstreamRequest&) {
    upstream::ResponseHeader h;
    h.result(206);
    h.set(bhttp::field::content_range, rangeOf(0, kChunk - 1, kChunk));
    return std::make_unique<granary::testing::MemoryResponse>(std::move(h), objectBytes(0, 1000), std::nullopt, 10000);
  };
  s3api::BackendChunkSource src(&up);
  const Fetched f = fetch(src, obj, 0);
  CHECK(f.outcome == FetchOutcome::Failed);
  CHECK(f.bytes == objectBytes(0, 1000));  // what readers could stream before it failed
}

TEST_CASE("backend chunk source: the first chunk's opened answer is read, once", "[unit][s3api]") {
  FakeUpstream up;
  const cache::ObjectId obj = objectOf(kChunk + 10);
  up.respond = [&](const upstream::UpstreamRequest&) {
    return answer(206, obj.etag, rangeOf(0, kChunk - 1, obj.size), objectBytes(0, kChunk));
  };
  s3api::BackendChunkSource src(&up, answer(206, obj.etag, rangeOf(0, kChunk - 1, obj.size), objectBytes(0, kChunk)));
  const Fetched first = fetch(src, obj, 0);
  CHECK(first.outcome == FetchOutcome::Ok);
  CHECK(first.bytes == objectBytes(0, kChunk));
  CHECK(up.sent.empty());
  const Fetched again = fetch(src, obj, 0);
  CHECK(again.outcome == FetchOutcome::Ok);
  CHECK(up.sent.size() == 1);
}

TEST_CASE("backend chunk source: resumes a chunk another source left part-written", "[unit][s3api]") {
  FakeUpstream up;
  const cache::ObjectId obj = objectOf(3 * kChunk);
  const std::uint64_t mark = 1000;
  const std::string before = objectBytes(kChunk, mark);  // what a dead peer delivered

  SECTION("a 206 from the mark") {
    up.respond = [&](const upstream::UpstreamRequest&) {
      return answer(206, obj.etag, rangeOf(kChunk + mark, 2 * kChunk - 1, obj.size),
                    objectBytes(kChunk + mark, kChunk - mark));
    };
    s3api::BackendChunkSource src(&up);
    const Fetched f = fetch(src, obj, 1, before);
    CHECK(f.outcome == FetchOutcome::Ok);
    CHECK(f.bytes == objectBytes(kChunk, kChunk));
    REQUIRE(up.sent.size() == 1);
    CHECK(*header(up.sent[0], "range") ==
          "bytes=" + std::to_string(kChunk + mark) + "-" + std::to_string(2 * kChunk - 1));
  }
  SECTION("a 200 of the whole object: the bytes before the mark are skipped above it") {
    up.respond = [&](const upstream::UpstreamRequest&) { return answer(200, obj.etag, "", objectBytes(0, obj.size)); };
    s3api::BackendChunkSource src(&up);
    const Fetched f = fetch(src, obj, 1, before);
    CHECK(f.outcome == FetchOutcome::Ok);
    CHECK(f.bytes == objectBytes(kChunk, kChunk));
  }
  SECTION("a 206 of the whole chunk (the range ignored in part) is refused") {
    up.respond = [&](const upstream::UpstreamRequest&) {
      return answer(206, obj.etag, rangeOf(kChunk, 2 * kChunk - 1, obj.size), std::string(kChunk, 'x'));
    };
    s3api::BackendChunkSource src(&up);
    const Fetched f = fetch(src, obj, 1, before);
    CHECK(f.outcome == FetchOutcome::Failed);
    CHECK(f.bytes == before);  // the bytes below the mark never change
  }
  SECTION("nothing left to fetch") {
    up.respond = [&](const upstream::UpstreamRequest&) { return upstream::UpstreamResponsePtr{}; };
    s3api::BackendChunkSource src(&up);
    const Fetched f = fetch(src, obj, 1, objectBytes(kChunk, kChunk));
    CHECK(f.outcome == FetchOutcome::Ok);
    CHECK(up.sent.empty());
  }
  SECTION("the first chunk's opened answer is not used past the mark") {
    up.respond = [&](const upstream::UpstreamRequest&) {
      return answer(206, obj.etag, rangeOf(mark, kChunk - 1, obj.size), objectBytes(mark, kChunk - mark));
    };
    s3api::BackendChunkSource src(&up, answer(206, obj.etag, rangeOf(0, kChunk - 1, obj.size), objectBytes(0, kChunk)));
    const Fetched f = fetch(src, obj, 0, objectBytes(0, mark));
    CHECK(f.outcome == FetchOutcome::Ok);
    CHECK(f.bytes == objectBytes(0, kChunk));
    CHECK(up.sent.size() == 1);
  }
}

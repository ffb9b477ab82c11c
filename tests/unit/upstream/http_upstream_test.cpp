// HttpUpstream against a scripted backend: retries with backoff, no retry once the body streamed,
// keep-alive reuse, stale pooled connections, resets mid-body, timeouts, and the signature it sends.

#include <catch2/catch.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/beast/http/field.hpp>

#include "common/sigv4.h"
#include "support/raw_http.h"
#include "upstream/errors.h"
#include "upstream/http_upstream.h"

using namespace granary;
using namespace granary::upstream;
using granary::testing::ScriptedBackend;
namespace bhttp = boost::beast::http;

namespace {

ScriptedBackend::Reply reply(unsigned status, std::string body, ScriptedBackend::After after = ScriptedBackend::After::KeepAlive) {
  ScriptedBackend::Reply r;
  r.res.result(status);
  r.res.body() = std::move(body);
  r.after = after;
  return r;
}

HttpUpstreamOptions options(unsigned short port) {
  HttpUpstreamOptions o;
  o.endpoint = *parseEndpoint("http://127.0.0.1:" + std::to_string(port));
  o.credentials = {"AK", "SK", ""};
  o.retry.base = std::chrono::milliseconds(1);
  o.retry.cap = std::chrono::milliseconds(5);
  o.readTimeout = std::chrono::milliseconds(800);
  return o;
}

struct Outcome {
  unsigned status = 0;
  std::string body;
  boost::system::error_code error;
};

asio::awaitable<void> exchange(HttpUpstream& up, UpstreamRequest& req, Outcome& out) {
  auto r = co_await up.send(req);
  if (!r) {
    out.error = r.error();
    co_return;
  }
  out.status = (*r)->header().result_int();
  char buf[4096];
  for (;;) {
    auto n = co_await (*r)->read(asio::buffer(buf));
    if (!n) {
      out.error = n.error();
      co_return;
    }
    if (*n == 0) break;
    out.body.append(buf, *n);
  }
}

Outcome run(HttpUpstream& up, asio::io_context& ioc, UpstreamRequest& req) {
  Outcome out;
  asio::co_spawn(ioc, exchange(up, req, out), asio::detached);
  ioc.restart();
  ioc.run();
  return out;
}

UpstreamRequest getRequest(std::string key = "k") {
  UpstreamRequest r;
  r.method = bhttp::verb::get;
  r.bucket = "bucket";
  r.key = std::move(key);
  return r;
}

/// A body source that counts how far it was read.
class CountingSource final : public BodySource {
 public:
  explicit CountingSource(std::string data) : data_(std::move(data)) {}
  asio::awaitable<boost::system::result<std::size_t>> read(asio::mutable_buffer buf) override {
    started_ = true;
    std::size_t n = std::min(buf.size(), data_.size() - pos_);
    std::memcpy(buf.data(), data_.data() + pos_, n);
    pos_ += n;
    co_return n;
  }
  bool started() const override { return started_; }

 private:
  std::string data_;
  std::size_t pos_ = 0;
  bool started_ = false;
};

}  // namespace

TEST_CASE("upstream: 503 and 500 are retried, then the success is returned", "[net][upstream]") {
  ScriptedBackend be([](const auto&, int i) { return i < 2 ? reply(i == 0 ? 503 : 500, "busy") : reply(200, "hello"); });
  asio::io_context ioc;
  HttpUpstream up(ioc.get_executor(), options(be.port()));
  auto req = getRequest();
  auto out = run(up, ioc, req);
  CHECK(out.status == 200);
  CHECK(out.body == "hello");
  CHECK(be.requests() == 3);
}

TEST_CASE("upstream: after the last attempt the backend's error is passed through", "[net][upstream]") {
  ScriptedBackend be([](const auto&, int) { return reply(503, "<Error><Code>SlowDown</Code></Error>"); });
  asio::io_context ioc;
  auto o = options(be.port());
  o.retry.maxAttempts = 3;
  HttpUpstream up(ioc.get_executor(), o);
  auto req = getRequest();
  auto out = run(up, ioc, req);
  CHECK(out.status == 503);
  CHECK(out.body == "<Error><Code>SlowDown</Code></Error>");
  CHECK(be.requests() == 3);
}

TEST_CASE("upstream: 4xx is not retried", "[net][upstream]") {
  ScriptedBackend be([](const auto&, int) { return reply(404, "nope"); });
  asio::io_context ioc;
  HttpUpstream up(ioc.get_executor(), options(be.port()));
  auto req = getRequest();
  CHECK(run(up, ioc, req).status == 404);
  CHECK(be.requests() == 1);
}

TEST_CASE("upstream: a reset before the reply is retried on a new connection", "[net][upstream]") {
  ScriptedBackend be([](const auto&, int i) {
    return i == 0 ? reply(200, "", ScriptedBackend::After::ResetBeforeReply) : reply(200, "ok");
  });
  asio::io_context ioc;
  HttpUpstream up(ioc.get_executor(), options(be.port()));
  auto req = getRequest();
  auto out = run(up, ioc, req);
  CHECK(out.status == 200);
  CHECK(out.body == "ok");
  CHECK(be.connections() == 2);
}

TEST_CASE("upstream: a streamed body is never retried once it started", "[net][upstream]") {
  ScriptedBackend be([](const auto&, int) { return reply(503, "busy"); });
  asio::io_context ioc;
  HttpUpstream up(ioc.get_executor(), options(be.port()));
  CountingSource src("payload");
  auto req = getRequest();
  req.method = bhttp::verb::put;
  req.source = &src;
  req.contentLength = 7;
  req.payloadHash = "UNSIGNED-PAYLOAD";
  auto out = run(up, ioc, req);
  CHECK(out.status == 503);
  CHECK(be.requests() == 1);
}

TEST_CASE("upstream: keep-alive connections are reused", "[net][upstream]") {
  ScriptedBackend be([](const auto&, int i) { return reply(200, "r" + std::to_string(i)); });
  asio::io_context ioc;
  HttpUpstream up(ioc.get_executor(), options(be.port()));
  for (int i = 0; i < 5; ++i) {
    auto req = getRequest();
    CHECK(run(up, ioc, req).body == "r" + std::to_string(i));
  }
  CHECK(be.connections() == 1);
  CHECK(up.pool().idle() == 1);
}

TEST_CASE("upstream: a pooled connection the backend closed is not reused", "[net][upstream]") {
  ScriptedBackend be([](const auto&, int i) { return reply(200, "r" + std::to_string(i), ScriptedBackend::After::Close); });
  asio::io_context ioc;
  HttpUpstream up(ioc.get_executor(), options(be.port()));
  auto a = getRequest();
  CHECK(run(up, ioc, a).body == "r0");
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto b = getRequest();
  CHECK(run(up, ioc, b).body == "r1");
  CHECK(be.requests() == 2);
}

TEST_CASE("upstream: a reset mid-body surfaces as a read error", "[net][upstream]") {
  ScriptedBackend be([](const auto&, int) { return reply(200, std::string(100000, 'x'), ScriptedBackend::After::ResetMidBody); });
  asio::io_context ioc;
  HttpUpstream up(ioc.get_executor(), options(be.port()));
  auto req = getRequest();
  auto out = run(up, ioc, req);
  CHECK(out.status == 200);
  CHECK(out.error);
  CHECK(out.body.size() < 100000);
}

TEST_CASE("upstream: a stalled backend times out", "[net][upstream]") {
  ScriptedBackend be([](const auto&, int) { return reply(200, "", ScriptedBackend::After::Stall); });
  asio::io_context ioc;
  auto o = options(be.port());
  o.retry.maxAttempts = 1;
  HttpUpstream up(ioc.get_executor(), o);
  auto req = getRequest();
  auto out = run(up, ioc, req);
  CHECK(out.error == Error::ResponseTimeout);
}

TEST_CASE("upstream: connection refused fails after the retries", "[net][upstream]") {
  unsigned short port;
  {
    ScriptedBackend be([](const auto&, int) { return reply(200, ""); });
    port = be.port();
  }
  asio::io_context ioc;
  HttpUpstream up(ioc.get_executor(), options(port));
  auto req = getRequest();
  auto out = run(up, ioc, req);
  CHECK(out.error == boost::asio::error::connection_refused);
}

TEST_CASE("upstream: requests are path-style, re-signed, and empty key segments survive", "[net][upstream]") {
  std::string target, auth, host, sha, forwarded, date;
  ScriptedBackend be([&](const bhttp::request<bhttp::string_body>& r, int) {
    target = std::string(r.target());
    date = std::string(r["x-amz-date"]);
    auth = std::string(r[bhttp::field::authorization]);
    host = std::string(r[bhttp::field::host]);
    sha = std::string(r["x-amz-content-sha256"]);
    forwarded = std::string(r["x-amz-meta-color"]);
    return reply(200, "");
  });
  asio::io_context ioc;
  HttpUpstream up(ioc.get_executor(), options(be.port()));
  auto req = getRequest("dir/a b+c//d~");
  req.query = {{"versionId", "v 1"}, {"acl", ""}};
  req.headers = {{"x-amz-meta-color", "blue"}};
  run(up, ioc, req);
  CHECK(target == "/bucket/dir/a%20b%2Bc/%2Fd~?acl=&versionId=v%201");
  CHECK(host == "127.0.0.1:" + std::to_string(be.port()));
  CHECK(sha == kEmptySha256Hex);
  CHECK(forwarded == "blue");
  CHECK(auth.rfind("AWS4-HMAC-SHA256 Credential=AK/", 0) == 0);
  CHECK(auth.find("SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-meta-color") != std::string::npos);
  // Signed over the path S3 and RGW rebuild from the decoded one ("//" as such), not over the wire's "/%2F":
  // RGW answered SignatureDoesNotMatch to every key with an empty segment or a leading '/'.
  REQUIRE(date.size() == 16);
  const sigv4::HeaderList hs{{"host", host}, {"x-amz-content-sha256", sha}, {"x-amz-date", date},
                             {"x-amz-meta-color", "blue"}};
  const std::string creq = sigv4::canonicalRequest(
      "GET", "/bucket/dir/a%20b%2Bc//d~", "acl=&versionId=v%201",
      sigv4::canonicalHeaders(hs, {"host", "x-amz-content-sha256", "x-amz-date", "x-amz-meta-color"}),
      "host;x-amz-content-sha256;x-amz-date;x-amz-meta-color", kEmptySha256Hex);
  const std::string scope = sigv4::credentialScope(date.substr(0, 8), "us-east-1", "s3");
  const std::string sig =
      sigv4::signatureHex(sigv4::signingKey("SK", date.substr(0, 8), "us-east-1", "s3"),
                          sigv4::stringToSign(date, scope, creq));
  CHECK(auth.ends_with("Signature=" + sig));
}

TEST_CASE("upstream: addressing = virtual puts host-safe buckets in the Host header", "[net][upstream]") {
  std::vector<std::pair<std::string, std::string>> seen;  // target, host
  ScriptedBackend be([&](const bhttp::request<bhttp::string_body>& r, int) {
    seen.emplace_back(std::string(r.target()), std::string(r[bhttp::field::host]));
    return reply(200, "");
  });
  asio::io_context ioc;
  auto o = options(be.port());
  o.virtualHosted = true;
  HttpUpstream up(ioc.get_executor(), o);
  auto req = getRequest("dir/a b//c");
  run(up, ioc, req);
  req.bucket = "Not_Host_Safe";  // legacy bucket names fall back to path style, as the SDKs do
  run(up, ioc, req);
  UpstreamRequest list;  // ListBuckets: no bucket, plain host
  run(up, ioc, list);
  const std::string port = std::to_string(be.port());
  REQUIRE(seen.size() == 3);
  CHECK(seen[0] == std::pair<std::string, std::string>{"/dir/a%20b/%2Fc", "bucket.127.0.0.1:" + port});
  CHECK(seen[1] == std::pair<std::string, std::string>{"/Not_Host_Safe/dir/a%20b/%2Fc", "127.0.0.1:" + port});
  CHECK(seen[2] == std::pair<std::string, std::string>{"/", "127.0.0.1:" + port});
  CHECK(HttpUpstream::hostCompatible("my.bucket", false));
  CHECK_FALSE(HttpUpstream::hostCompatible("my.bucket", true));
  CHECK_FALSE(HttpUpstream::hostCompatible("ab", false));
}

TEST_CASE("upstream: the per-thread connection cap makes requests wait, not fail", "[net][upstream]") {
  ScriptedBackend be([](const auto&, int i) { return reply(200, "r" + std::to_string(i)); });
  asio::io_context ioc;
  auto o = options(be.port());
  o.pool.maxConnections = 1;
  HttpUpstream up(ioc.get_executor(), o);
  std::vector<UpstreamRequest> reqs(4, getRequest());
  std::vector<Outcome> outs(4);
  for (int i = 0; i < 4; ++i) asio::co_spawn(ioc, exchange(up, reqs[i], outs[i]), asio::detached);
  ioc.run();
  for (const auto& out : outs) {
    CHECK(out.status == 200);
    CHECK_FALSE(out.error);
  }
  CHECK(be.connections() == 1);  // four requests, one connection, taken in turn
  CHECK(up.pool().total() == 1);
}

TEST_CASE("upstream: a cap held past the connect timeout reports PoolExhausted", "[net][upstream]") {
  ScriptedBackend be([](const auto&, int) { return reply(200, std::string(1000, 'x')); });
  asio::io_context ioc;
  auto o = options(be.port());
  o.pool.maxConnections = 1;
  o.pool.connectTimeout = std::chrono::milliseconds(200);
  o.retry.maxAttempts = 1;
  HttpUpstream up(ioc.get_executor(), o);
  auto first = getRequest(), second = getRequest();
  UpstreamResponsePtr held;
  boost::system::error_code secondError;
  asio::co_spawn(ioc, [&]() -> asio::awaitable<void> {
    auto r = co_await up.send(first);  // header read, body left unread: the connection stays taken
    if (r) held = std::move(*r);
    auto r2 = co_await up.send(second);
    if (!r2) secondError = r2.error();
  }, asio::detached);
  ioc.run();
  REQUIRE(held);
  CHECK(secondError == Error::PoolExhausted);
}

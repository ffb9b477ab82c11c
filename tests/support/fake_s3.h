#pragma once
// An in-memory S3 behind the upstream::Upstream interface, for unit tests of s3api: objects with ETags
// and Last-Modified, GET/HEAD with one Range, If-Match / If-None-Match, PUT, DELETE; request counters;
// injected faults (connection failures, 5xx answers, latency). Thread-safe: every handler thread of a
// test may hold its own FakeUpstream over one shared FakeS3.
//
// Not an S3 implementation: only what the proxy's cache, write and relay paths ask of a backend.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/status.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/timeutil.h"
#include "upstream/errors.h"
#include "support/memory_response.h"
#include "upstream/upstream.h"

namespace granary::testing {

namespace bhttp = boost::beast::http;

class FakeS3 {
 public:
  struct Object {
    std::string data;
    std::string etag;  // quoted
    std::string contentType = "application/octet-stream";
    std::chrono::system_clock::time_point lastModified;
  };
  struct Seen {
    bhttp::verb method;
    std::string bucket, key, range, ifMatch;
  };

  /// Stores an object as a PUT would (a new ETag each time). @return its ETag.
  std::string put(const std::string& bucket, const std::string& key, std::string data,
                  std::string contentType = "application/octet-stream") {
    std::lock_guard lk(m_);
    Object& o = objects_[bucket + "/" + key];
    o.data = std::move(data);
    o.etag = "\"v" + std::to_string(++version_) + "-" + std::to_string(o.data.size()) + "\"";
    o.contentType = std::move(contentType);
    o.lastModified = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
    return o.etag;
  }
  void remove(const std::string& bucket, const std::string& key) {
    std::lock_guard lk(m_);
    objects_.erase(bucket + "/" + key);
  }
  std::optional<Object> get(const std::string& bucket, const std::string& key) const {
    std::lock_guard lk(m_);
    auto it = objects_.find(bucket + "/" + key);
    if (it == objects_.end()) return std::nullopt;
    return it->second;
  }

  // Faults. The next `n` requests fail without an answer (a connection error), or answer `status`.
  void failNext(unsigned n) { failures_ = n; }
  void answerNext(unsigned n, unsigned status) {
    statusFailures_ = n;
    failStatus_ = status;
  }
  /// Every request waits this long before its answer (coalescing tests).
  void setLatency(std::chrono::milliseconds d) { latencyMs_ = d.count(); }

  // Counters.
  std::vector<Seen> requests() const {
    std::lock_guard lk(m_);
    return seen_;
  }
  std::size_t count(bhttp::verb method, const std::string& key) const {
    std::lock_guard lk(m_);
    return static_cast<std::size_t>(std::count_if(seen_.begin(), seen_.end(), [&](const Seen& s) {
      return s.method == method && s.key == key;
    }));
  }
  void resetCounters() {
    std::lock_guard lk(m_);
    seen_.clear();
  }

 private:
  friend class FakeUpstream;
  mutable std::mutex m_;
  std::map<std::string, Object> objects_;
  std::vector<Seen> seen_;
  std::uint64_t version_ = 0;
  std::atomic<unsigned> failures_{0}, statusFailures_{0}, failStatus_{503};
  std::atomic<std::int64_t> latencyMs_{0};
};

class FakeUpstream final : public upstream::Upstream {
 public:
  explicit FakeUpstream(FakeS3& s3) : s3_(s3) {}

  upstream::Awaitable<boost::system::result<upstream::UpstreamResponsePtr>> send(upstream::UpstreamRequest& req) override {
    if (const auto ms = s3_.latencyMs_.load(); ms > 0) {
      boost::asio::steady_timer t(co_await boost::asio::this_coro::executor, std::chrono::milliseconds(ms));
      co_await t.async_wait(boost::asio::use_awaitable);
    }
    std::string body;
    if (req.source) {  // a streamed body: read it whole
      char buf[65536];
      for (;;) {
        auto n = co_await req.source->read(boost::asio::buffer(buf));
        if (!n) co_return n.error();
        if (*n == 0) break;
        body.append(buf, *n);
      }
    } else {
      body = req.bufferedBody;
    }
    std::lock_guard lk(s3_.m_);
    s3_.seen_.push_back({req.method, req.bucket, req.key, header(req, "range"), header(req, "if-match")});
    if (unsigned f = s3_.failures_.load(); f > 0) {
      s3_.failures_ = f - 1;
      co_return boost::system::error_code(upstream::Error::ConnectTimeout);
    }
    if (unsigned f = s3_.statusFailures_.load(); f > 0) {
      s3_.statusFailures_ = f - 1;
      co_return answer(static_cast<bhttp::status>(s3_.failStatus_.load()), "<Error><Code>ServiceUnavailable</Code></Error>");
    }
    const std::string id = req.bucket + "/" + req.key;
    switch (req.method) {
      case bhttp::verb::put: {
        FakeS3::Object& o = s3_.objects_[id];
        o.data = std::move(body);
        o.etag = "\"v" + std::to_string(++s3_.version_) + "-" + std::to_string(o.data.size()) + "\"";
        o.lastModified = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
        upstream::ResponseHeader h;
        h.result(bhttp::status::ok);
        h.set(bhttp::field::etag, o.etag);
        co_return std::make_unique<MemoryResponse>(std::move(h), std::string(), 0);
      }
      case bhttp::verb::delete_: {
        s3_.objects_.erase(id);
        upstream::ResponseHeader h;
        h.result(bhttp::status::no_content);
        co_return std::make_unique<MemoryResponse>(std::move(h), std::string(), 0);
      }
      case bhttp::verb::get:
      case bhttp::verb::head:
        co_return read(req, id);
      default:
        co_return answer(bhttp::status::not_implemented, "<Error><Code>NotImplemented</Code></Error>");
    }
  }
  void shutdown() override {}

 private:
  static std::string header(const upstream::UpstreamRequest& req, std::string_view name) {
    for (const auto& [n, v] : req.headers)
      if (n == name) return v;
    return {};
  }
  static upstream::UpstreamResponsePtr answer(bhttp::status status, std::string body) {
    upstream::ResponseHeader h;
    h.result(status);
    h.set(bhttp::field::content_type, "application/xml");
    h.set(bhttp::field::content_length, std::to_string(body.size()));
    return std::make_unique<MemoryResponse>(std::move(h), std::move(body), std::nullopt);
  }
  upstream::UpstreamResponsePtr read(const upstream::UpstreamRequest& req, const std::string& id) {
    auto it = s3_.objects_.find(id);
    if (it == s3_.objects_.end())
      return answer(bhttp::status::not_found, "<Error><Code>NoSuchKey</Code><Message>gone</Message></Error>");
    const FakeS3::Object& o = it->second;
    const bool head = req.method == bhttp::verb::head;
    if (const auto im = header(req, "if-match"); !im.empty() && im != o.etag)
      return answer(bhttp::status::precondition_failed, head ? "" : "<Error><Code>PreconditionFailed</Code></Error>");
    upstream::ResponseHeader h;
    h.set(bhttp::field::etag, o.etag);
    h.set(bhttp::field::last_modified, formatHttpDate(o.lastModified));
    h.set(bhttp::field::content_type, o.contentType);
    h.set(bhttp::field::accept_ranges, "bytes");
    std::uint64_t first = 0, last = o.data.empty() ? 0 : o.data.size() - 1;
    bool ranged = false;
    if (const auto r = header(req, "range"); r.rfind("bytes=", 0) == 0 && !o.data.empty()) {
      // "bytes=A-B" or "bytes=A-": all the proxy sends.
      const auto dash = r.find('-');
      first = std::stoull(r.substr(6, dash - 6));
      if (dash + 1 < r.size()) last = std::min<std::uint64_t>(std::stoull(r.substr(dash + 1)), o.data.size() - 1);
      if (first >= o.data.size()) {
        auto r416 = answer(bhttp::status::range_not_satisfiable, "<Error><Code>InvalidRange</Code></Error>");
        auto& fr = static_cast<MemoryResponse&>(*r416);
        fr.setHeader(bhttp::field::content_range, "bytes */" + std::to_string(o.data.size()));
        return r416;
      }
      ranged = true;
    }
    h.result(ranged ? bhttp::status::partial_content : bhttp::status::ok);
    std::string body = o.data.empty() ? std::string() : o.data.substr(first, last - first + 1);
    if (ranged)
      h.set(bhttp::field::content_range,
            "bytes " + std::to_string(first) + "-" + std::to_string(last) + "/" + std::to_string(o.data.size()));
    h.set(bhttp::field::content_length, std::to_string(body.size()));
    if (head) body.clear();
    auto resp = std::make_unique<MemoryResponse>(std::move(h), std::move(body), std::nullopt);
    return resp;
  }

  FakeS3& s3_;
};

}  // namespace granary::testing

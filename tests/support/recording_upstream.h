#pragma once
// An in-memory backend for unit tests: upstream::Upstream that records every request (method, key,
// query, the body it read), answers as S3 would (PUT 200 with the body's MD5 as ETag, DELETE 204, the
// three steps of a multipart upload), and can hold a key's requests until released, fail the next N
// requests, and report how many requests were in flight at once (overall and per key).
//
// send() runs on whatever executor the caller uses; the test thread reads the record and waits for
// conditions with waitFor() (a condition variable, woken on every change).

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/status.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "common/crypto.h"
#include "s3api/state_signal.h"
#include "support/memory_response.h"
#include "upstream/upstream.h"

namespace granary::testing {

class RecordingUpstream final : public upstream::Upstream {
 public:
  struct Request {
    boost::beast::http::verb method;
    std::string key;
    QueryParams query;
    std::string body;
    bool ok = false;  // answered with success
  };

  upstream::Awaitable<boost::system::result<upstream::UpstreamResponsePtr>> send(upstream::UpstreamRequest& req) override {
    begin(req.key);
    const auto released = [this, key = req.key] { return isReleased(key); };
    const auto never = s3api::StateSignal::Clock::time_point::max();  // (named: GCC 12 coroutines)
    co_await signal_.waitUntil(released, never);
    std::string body = req.bufferedBody;
    if (req.source) {
      char buf[4096];
      for (;;) {
        auto n = co_await req.source->read(boost::asio::buffer(buf, sizeof buf));
        if (!n || *n == 0) break;
        body.append(buf, *n);
      }
    }
    const bool fail = end(req, body);
    if (fail) co_return make_error_code(boost::asio::error::connection_refused);
    co_return answer(req, body);
  }
  void shutdown() override {}

  /// Requests for `key` wait until release(key).
  void hold(const std::string& key) {
    std::lock_guard lk(m_);
    held_.insert(key);
  }
  void release(const std::string& key) {
    {
      std::lock_guard lk(m_);
      held_.erase(key);
    }
    signal_.notify();
  }
  /// The next `n` requests fail (no answer: as a backend that is down).
  void failNext(int n) {
    std::lock_guard lk(m_);
    failures_ = n;
  }
  /// Blocks the test thread until `cond(*this)` holds (checked under the lock) or 10 s pass.
  template <class Cond>
  bool waitFor(Cond cond) {
    std::unique_lock lk(m_);
    return cv_.wait_for(lk, std::chrono::seconds(10), [&] { return cond(*this); });
  }
  // Read under waitFor's lock, or through the copies below.
  std::vector<Request> requests;
  std::map<std::string, int> inFlight;        // by key
  std::map<std::string, int> maxInFlightKey;  // by key
  int inFlightAll = 0, maxInFlightAll = 0;
  std::map<std::string, std::string> objects;  // what a client would read back: key -> body

  std::vector<Request> record() const {
    std::lock_guard lk(m_);
    return requests;
  }
  int maxInFlight() const {
    std::lock_guard lk(m_);
    return maxInFlightAll;
  }
  int maxInFlightOf(const std::string& key) const {
    std::lock_guard lk(m_);
    auto it = maxInFlightKey.find(key);
    return it == maxInFlightKey.end() ? 0 : it->second;
  }
  std::map<std::string, std::string> stored() const {
    std::lock_guard lk(m_);
    return objects;
  }

 private:
  static upstream::UpstreamResponsePtr reply(unsigned status, const std::string& etag, std::string body) {
    upstream::ResponseHeader h;
    h.result(status);
    if (!etag.empty()) h.set(boost::beast::http::field::etag, etag);
    const std::uint64_t n = body.size();
    return std::make_unique<MemoryResponse>(std::move(h), std::move(body), n);
  }
  static bool has(const QueryParams& q, const char* name) {
    return std::any_of(q.begin(), q.end(), [&](const auto& p) { return p.first == name; });
  }
  bool isReleased(const std::string& key) {
    std::lock_guard lk(m_);
    return !held_.count(key);
  }
  void begin(const std::string& key) {
    std::lock_guard lk(m_);
    maxInFlightKey[key] = std::max(maxInFlightKey[key], ++inFlight[key]);
    maxInFlightAll = std::max(maxInFlightAll, ++inFlightAll);
    cv_.notify_all();
  }
  /// Records the request; @return whether it fails.
  bool end(const upstream::UpstreamRequest& req, const std::string& body) {
    std::lock_guard lk(m_);
    --inFlight[req.key];
    --inFlightAll;
    const bool fail = failures_ > 0;
    if (fail) --failures_;
    requests.push_back({req.method, req.key, req.query, body, !fail});
    if (!fail && req.method == boost::beast::http::verb::put && !has(req.query, "partNumber")) objects[req.key] = body;
    if (!fail && req.method == boost::beast::http::verb::delete_ && !has(req.query, "uploadId")) objects.erase(req.key);
    cv_.notify_all();
    return fail;
  }
  upstream::UpstreamResponsePtr answer(const upstream::UpstreamRequest& req, const std::string& body) {
    using boost::beast::http::verb;
    if (req.method == verb::post && has(req.query, "uploads"))
      return reply(200, "", "<InitiateMultipartUploadResult><UploadId>up-1</UploadId>"
                                                 "</InitiateMultipartUploadResult>");
    if (req.method == verb::post)
      return reply(200, "", "<CompleteMultipartUploadResult><ETag></ETag>"
                                                 "</CompleteMultipartUploadResult>");
    if (req.method == verb::delete_) return reply(204, "", "");
    Digest md5(Digest::Kind::Md5);
    md5.update(body);
    return reply(200, "\"" + md5.finishHex() + "\"", "");
  }

  mutable std::mutex m_;
  std::condition_variable cv_;
  std::set<std::string> held_;
  int failures_ = 0;
  s3api::StateSignal signal_;  // wakes held requests
};

}  // namespace granary::testing

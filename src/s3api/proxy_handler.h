#pragma once
// The S3 front end as an http::RequestHandler: route, verify the client's signature, then forward to the
// backend (re-signed) and stream the answer back. One instance per I/O thread.

#include <atomic>
#include <memory>
#include <random>

#include "common/buffer_pool.h"
#include "http/handler.h"
#include "s3api/auth.h"
#include "s3api/errors.h"
#include "s3api/range.h"
#include "upstream/upstream.h"

namespace granary::s3api {

struct ProxyOptions {
  std::string domain;  // virtual-hosted base domain; empty = path style only
  AuthOptions auth;
  std::size_t bufferSize = 256 * 1024;               // relay buffer per request
  std::uint64_t maxObjectSize = 5ull * 1024 * 1024 * 1024;  // S3's single-PUT limit
  bool accessLog = true;
  /// Bodies up to this size are read and verified whole before anything goes upstream (and can then
  /// be retried); larger ones stream, their last byte held back until every check has passed.
  std::size_t verifyBeforeSend = 1 << 20;
};

/// Shared, replaceable key table (reloads swap the pointer; requests keep the one they started with).
class KeyStore {
 public:
  explicit KeyStore(std::shared_ptr<const KeyTable> t) : table_(std::move(t)) {}
  std::shared_ptr<const KeyTable> get() const { return std::atomic_load(&table_); }
  void set(std::shared_ptr<const KeyTable> t) { std::atomic_store(&table_, std::move(t)); }

 private:
  std::shared_ptr<const KeyTable> table_;
};

class ProxyHandler final : public http::RequestHandler {
 public:
  ProxyHandler(ProxyOptions opts, std::shared_ptr<KeyStore> keys, std::unique_ptr<upstream::Upstream> upstream);

  http::Awaitable<void> handle(const http::RequestHeader& req, const http::RequestContext& ctx,
                               http::BodyReader& body, http::ResponseWriter& out) override;
  std::string protocolError(http::ResponseHeader& res, http::Status status, std::string_view code,
                            std::string_view message) override;
  void shutdown() override { upstream_->shutdown(); }

 private:
  struct Exchange;
  http::Awaitable<void> forward(Exchange& x);
  std::optional<S3Failure> planBody(const Exchange& x, const VerifiedAuth& auth,
                                    std::optional<std::uint64_t>& payloadLength, bool& hasBody) const;
  http::Awaitable<void> sendError(Exchange& x, const S3Failure& f, std::string contentRange = {});
  RangeFix rangeFixFor(const Exchange& x, const upstream::UpstreamResponse& resp) const;
  upstream::UpstreamRequest upstreamRequestFor(const Exchange& x, const VerifiedAuth& auth) const;
  http::ResponseHeader responseHeaderFor(Exchange& x, const upstream::UpstreamResponse& resp, const RangeFix& fix) const;
  http::Awaitable<void> relay(Exchange& x, upstream::UpstreamResponse& resp);
  http::Awaitable<bool> readWhole(upstream::BodySource& body, std::size_t expected, std::string& out);
  std::string newRequestId();
  void logAccess(const Exchange& x);

  ProxyOptions opts_;
  std::shared_ptr<KeyStore> keys_;
  std::unique_ptr<upstream::Upstream> upstream_;
  std::mt19937_64 rng_;
  BufferPool buffers_;  // relay buffers: each request relaying a body holds its own
};

}  // namespace granary::s3api

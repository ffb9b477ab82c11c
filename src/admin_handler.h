#pragma once
// The admin endpoint (--admin-listen, never the S3 port): GET /metrics in the Prometheus text format
// (cache hits, misses, checksum and I/O errors, cache directories out of service, write-back pending
// objects and bytes) and GET /healthz. Read-only; wired by main. With a token configured, every path but
// /healthz (for probes) requires "Authorization: Bearer TOKEN", else 401.

#include <memory>
#include <string>

#include "cache/chunk_cache.h"
#include "cache/writeback.h"
#include "http/handler.h"

namespace granary {

class AdminHandler final : public http::RequestHandler {
 public:
  AdminHandler(cache::ChunkCache* cache, std::shared_ptr<cache::WriteBackSpool> spool, std::string token = {})
      : cache_(cache), spool_(std::move(spool)), token_(std::move(token)) {}

  http::Awaitable<void> handle(const http::RequestHeader& req, const http::RequestContext& ctx,
                               http::BodyReader& body, http::ResponseWriter& out) override;
  std::string protocolError(http::ResponseHeader& res, http::Status status, std::string_view code,
                            std::string_view message) override;

  /// The metrics page (also used by tests).
  std::string metrics() const;

 private:
  cache::ChunkCache* cache_;
  std::shared_ptr<cache::WriteBackSpool> spool_;
  std::string token_;
};

}  // namespace granary

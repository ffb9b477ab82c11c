#include "admin_handler.h"

#include "common/crypto.h"

#include <sstream>

#include "cache/disk_tier.h"

namespace granary {
namespace {

namespace bhttp = boost::beast::http;

void metric(std::ostringstream& os, const char* name, const char* type, const char* help) {
  os << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
}

std::string escapeLabel(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

}  // namespace

std::string AdminHandler::metrics() const {
  std::ostringstream os;
  if (cache_ && cache_->enabled()) {
    const auto& s = cache_->stats();
    metric(os, "granary_cache_hits_total", "counter", "Chunks served from the cache, by tier.");
    os << "granary_cache_hits_total{tier=\"ram\"} " << s.ramHits.load() << "\n"
       << "granary_cache_hits_total{tier=\"disk\"} " << s.diskHits.load() << "\n";
    metric(os, "granary_cache_misses_total", "counter", "Chunk lookups that found nothing.");
    os << "granary_cache_misses_total " << s.misses.load() << "\n";
    metric(os, "granary_cache_checksum_errors_total", "counter", "Entries read from disk that failed their checksum (dropped, served from the backend).");
    os << "granary_cache_checksum_errors_total " << s.checksumErrors.load() << "\n";
    metric(os, "granary_cache_io_errors_total", "counter", "Cache device reads and writes that failed.");
    os << "granary_cache_io_errors_total{op=\"read\"} " << s.readErrors.load() << "\n"
       << "granary_cache_io_errors_total{op=\"write\"} " << s.writeErrors.load() << "\n";
    metric(os, "granary_cache_bytes_total", "counter", "Object bytes by where they came from.");
    os << "granary_cache_bytes_total{source=\"cache\"} " << s.bytesFromCache.load() << "\n"
       << "granary_cache_bytes_total{source=\"backend\"} " << s.bytesFromBackend.load() << "\n";
    metric(os, "granary_cache_fills_total", "counter", "Chunk downloads started from the backend.");
    os << "granary_cache_fills_total " << s.fillsStarted.load() << "\n";
    metric(os, "granary_cache_revalidations_total", "counter", "Metadata requests sent to the backend.");
    os << "granary_cache_revalidations_total " << s.revalidations.load() << "\n";
    if (const auto* disk = cache_->disk()) {
      metric(os, "granary_cache_dir_failures_total", "counter", "Cache directories taken out of service.");
      os << "granary_cache_dir_failures_total " << disk->dirFailures() << "\n";
      metric(os, "granary_cache_dir_up", "gauge", "1 if the cache directory serves, 0 if out of service (see the log for why).");
      for (const auto& d : disk->status())
        os << "granary_cache_dir_up{dir=\"" << escapeLabel(d.path) << "\"} " << (d.failed ? 0 : 1) << "\n";
    }
  }
  if (spool_) {
    metric(os, "granary_writeback_pending_objects", "gauge", "Write-back operations acknowledged, not yet at the backend.");
    os << "granary_writeback_pending_objects " << spool_->pendingObjects() << "\n";
    metric(os, "granary_writeback_pending_bytes", "gauge", "Bytes of acknowledged writes not yet at the backend.");
    os << "granary_writeback_pending_bytes " << spool_->pendingBytes() << "\n";
    metric(os, "granary_writeback_open_uploads", "gauge", "Multipart uploads into write-back buckets, not completed yet.");
    os << "granary_writeback_open_uploads " << spool_->openUploads() << "\n";
    metric(os, "granary_writeback_used_bytes", "gauge", "Spool bytes held: pending writes and parts of open uploads.");
    os << "granary_writeback_used_bytes " << spool_->usedBytes() << "\n";
    metric(os, "granary_writeback_capacity_bytes", "gauge", "Capacity of the write-back spool.");
    os << "granary_writeback_capacity_bytes " << spool_->capacity() << "\n";
  }
  return os.str();
}

http::Awaitable<void> AdminHandler::handle(const http::RequestHeader& req, const http::RequestContext&,
                                           http::BodyReader&, http::ResponseWriter& out) {
  const std::string_view target = req.target();
  std::string body;
  http::ResponseHeader h;
  const auto auth = req[bhttp::field::authorization];
  const bool authorized = token_.empty() || target == "/healthz" ||
                          (auth.starts_with("Bearer ") && constantTimeEquals(auth.substr(7), token_));
  if (!authorized) {
    h.result(bhttp::status::unauthorized);
    h.set(bhttp::field::www_authenticate, "Bearer realm=\"granary-admin\"");
    body = "unauthorized: send Authorization: Bearer <admin token>\n";
  } else if (req.method() != bhttp::verb::get && req.method() != bhttp::verb::head) {
    h.result(bhttp::status::method_not_allowed);
    body = "GET only\n";
  } else if (target == "/metrics") {
    h.result(bhttp::status::ok);
    h.set(bhttp::field::content_type, "text/plain; version=0.0.4");
    body = metrics();
  } else if (target == "/healthz") {
    h.result(bhttp::status::ok);
    body = "ok\n";
  } else {
    h.result(bhttp::status::not_found);
    body = "not found: try /metrics or /healthz\n";
  }
  if (!h.count(bhttp::field::content_type)) h.set(bhttp::field::content_type, "text/plain");
  h.set(bhttp::field::content_length, std::to_string(body.size()));
  out.closeAfterResponse();
  if (co_await out.writeHeader(std::move(h))) co_return;
  if (req.method() != bhttp::verb::head) {
    if (co_await out.writeBody(boost::asio::buffer(body))) co_return;
  }
  co_await out.finish();
}

std::string AdminHandler::protocolError(http::ResponseHeader& res, http::Status, std::string_view code,
                                        std::string_view message) {
  res.set(bhttp::field::content_type, "text/plain");
  return std::string(code) + ": " + std::string(message) + "\n";
}

}  // namespace granary

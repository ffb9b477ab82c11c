#include "admin/admin_handler.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/parse.hpp>

#include <cctype>
#include <charconv>

#include "cache/disk_tier.h"
#include "common/crypto.h"
#include "common/log_escape.h"
#include "common/uri.h"
#include "common/metrics.h"
#include "common/units.h"
#include "s3api/protocol_error.h"

namespace granary::admin {
namespace {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
namespace json = boost::json;
using metrics::TextWriter;

std::optional<std::uint64_t> parseCount(const std::string& s) {
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

bool truthy(const std::string& v) { return v == "1" || v == "true" || v == "yes" || v.empty(); }

/// Requests answered on the S3 port, and its open connections.
void requestMetrics(TextWriter& w, const AdminContext& c) {
  if (!c.requestStats.empty()) {
    s3api::RequestStats::Snapshot s;
    for (const auto& r : c.requestStats) r->addTo(s);
    w.family("granary_requests_total", "counter", "S3 requests answered, by operation and HTTP status.");
    for (const auto& [k, n] : s.byOpStatus) w.sample("granary_requests_total", {{"op", k.first}, {"status", std::to_string(k.second)}}, n);
    w.family("granary_cache_requests_total", "counter", "GET/HEAD object answers by cache outcome (hit, miss, partial, bypass).");
    for (const auto& result : {"hit", "miss", "partial", "bypass"}) {
      auto it = s.byCache.find(result);
      w.sample("granary_cache_requests_total", {{"result", result}}, it == s.byCache.end() ? std::uint64_t{0} : it->second);
    }
    w.family("granary_request_bytes_total", "counter", "Body bytes received from and sent to clients.");
    w.sample("granary_request_bytes_total", {{"direction", "in"}}, s.bytesIn);
    w.sample("granary_request_bytes_total", {{"direction", "out"}}, s.bytesOut);
    w.family("granary_access_denied_total", "counter",
             "Requests refused with AccessDenied by the client key's access policy, by access key.");
    for (const auto& [k, n] : s.deniedByKey) w.sample("granary_access_denied_total", {{"access_key", k}}, n);
  }
  if (c.openConnections) {
    w.family("granary_open_connections", "gauge", "Client connections open on the S3 port.");
    w.sample("granary_open_connections", std::uint64_t{c.openConnections()});
  }
}

/// The cache: lookups, fills, errors, evictions, capacity per tier and directory.
void cacheMetrics(TextWriter& w, const AdminContext& c) {
  if (c.cache && c.cache->enabled()) {
    const auto& s = c.cache->stats();
    w.family("granary_cache_hits_total", "counter", "Chunk lookups served from the cache, by tier.");
    w.sample("granary_cache_hits_total", {{"tier", "ram"}}, s.ramHits.load());
    w.sample("granary_cache_hits_total", {{"tier", "disk"}}, s.diskHits.load());
    w.family("granary_cache_misses_total", "counter", "Chunk lookups that found nothing.");
    w.sample("granary_cache_misses_total", s.misses.load());
    w.family("granary_cache_served_bytes_total", "counter", "Object bytes sent to clients, by where they came from.");
    w.sample("granary_cache_served_bytes_total", {{"tier", "ram"}}, s.bytesFromRam.load());
    w.sample("granary_cache_served_bytes_total", {{"tier", "disk"}}, s.bytesFromDisk.load());
    w.family("granary_cache_bytes_total", "counter",
             "Object bytes by where they came from (cache: RAM or disk; peer: another node's cache in the cluster).");
    w.sample("granary_cache_bytes_total", {{"source", "cache"}}, s.bytesFromCache.load());
    w.sample("granary_cache_bytes_total", {{"source", "backend"}}, s.bytesFromBackend.load());
    w.sample("granary_cache_bytes_total", {{"source", "peer"}}, s.bytesFromPeers.load());
    w.family("granary_cache_borrowed_skipped_total", "counter",
             "Chunks another cluster node owns, read here once and not written to this node's disk.");
    w.sample("granary_cache_borrowed_skipped_total", s.borrowedSkipped.load());
    w.family("granary_cache_fills_total", "counter", "Chunk downloads started from the backend.");
    w.sample("granary_cache_fills_total", s.fillsStarted.load());
    w.family("granary_cache_coalesced_waits_total", "counter", "Reads that joined a chunk download already in flight instead of starting one.");
    w.sample("granary_cache_coalesced_waits_total", s.fillWaits.load());
    w.family("granary_cache_revalidations_total", "counter", "Metadata requests sent to the backend.");
    w.sample("granary_cache_revalidations_total", s.revalidations.load());
    w.family("granary_cache_invalidations_total", "counter", "Objects dropped from the cache (writes, deletes, changes seen, admin).");
    w.sample("granary_cache_invalidations_total", s.invalidations.load());
    w.family("granary_cache_checksum_errors_total", "counter", "Entries read from disk that failed their checksum (dropped, served from the backend).");
    w.sample("granary_cache_checksum_errors_total", s.checksumErrors.load());
    w.family("granary_cache_length_errors_total", "counter",
             "Chunks whose length did not match what their object's size implies (the object changed under the "
             "same ETag): dropped, never served.");
    w.sample("granary_cache_length_errors_total", s.lengthErrors.load());
    w.family("granary_cache_bucket_invalidations_total", "counter",
             "Whole-bucket metadata invalidations (writes Granary could not attribute to keys).");
    w.sample("granary_cache_bucket_invalidations_total", s.bucketInvalidations.load());
    w.family("granary_cache_stale_served_total", "counter",
             "Answers served from cached objects the backend failed to revalidate (stale-if-error).");
    w.sample("granary_cache_stale_served_total", s.staleServed.load());
    w.family("granary_cache_io_errors_total", "counter", "Cache device reads and writes that failed.");
    w.sample("granary_cache_io_errors_total", {{"op", "read"}}, s.readErrors.load());
    w.sample("granary_cache_io_errors_total", {{"op", "write"}}, s.writeErrors.load());
    w.family("granary_cache_recycled_buffer_bytes", "gauge",
             "Freed chunk buffers the threads keep for reuse (outside the RAM tier's budget; at most 256 MiB).");
    w.sample("granary_cache_recycled_buffer_bytes", cache::recycledBufferBytesTotal());
    w.family("granary_cache_evictions_total", "counter", "Chunks dropped to make room, by tier.");
    w.family("granary_cache_capacity_bytes", "gauge", "Bytes the cache may hold, by tier and directory.");
    w.family("granary_cache_used_bytes", "gauge", "Bytes the cache holds, by tier and directory.");
    if (auto* ram = c.cache->ram()) {
      w.sample("granary_cache_evictions_total", {{"tier", "ram"}}, ram->evictions());
      w.sample("granary_cache_capacity_bytes", {{"tier", "ram"}, {"dir", ""}}, ram->capacity());
      w.sample("granary_cache_used_bytes", {{"tier", "ram"}, {"dir", ""}}, ram->bytes());
    }
    if (const auto* disk = c.cache->disk()) {
      const auto ds = disk->index().stats();
      w.sample("granary_cache_evictions_total", {{"tier", "disk"}}, ds.evicted);
      const auto status = disk->status();
      for (std::size_t i = 0; i < status.size(); ++i) {
        w.sample("granary_cache_capacity_bytes", {{"tier", "disk"}, {"dir", status[i].path}}, status[i].capacity);
        w.sample("granary_cache_used_bytes", {{"tier", "disk"}, {"dir", status[i].path}},
                 i < ds.dirBytes.size() ? ds.dirBytes[i] : std::uint64_t{0});
      }
      w.family("granary_cache_dir_failures_total", "counter", "Cache directories taken out of service.");
      w.sample("granary_cache_dir_failures_total", disk->dirFailures());
      w.family("granary_cache_dir_up", "gauge", "1 if the cache directory serves, 0 if out of service (see the log for why).");
      for (const auto& d : status) w.sample("granary_cache_dir_up", {{"dir", d.path}}, std::uint64_t{d.failed ? 0u : 1u});
    }
  }
}

/// Each backend: latency, errors by kind, retries.
void backendMetrics(TextWriter& w, const AdminContext& c) {
  if (!c.backends.empty()) {
    w.family("granary_backend_request_duration_seconds", "histogram", "Backend attempts: from taking a connection to the response header.");
    for (const auto& b : c.backends)
      if (b.stats) w.histogram("granary_backend_request_duration_seconds", {{"backend", b.name}}, b.stats->latency.snapshot());
    w.family("granary_backend_errors_total", "counter", "Failed backend attempts, by kind (connect, timeout, network, http_5xx).");
    w.family("granary_backend_retries_total", "counter", "Backend requests retried.");
    for (const auto& b : c.backends) {
      if (!b.stats) continue;
      const auto& s = *b.stats;
      w.sample("granary_backend_errors_total", {{"backend", b.name}, {"kind", "connect"}}, s.connectErrors.load());
      w.sample("granary_backend_errors_total", {{"backend", b.name}, {"kind", "timeout"}}, s.timeouts.load());
      w.sample("granary_backend_errors_total", {{"backend", b.name}, {"kind", "network"}}, s.networkErrors.load());
      w.sample("granary_backend_errors_total", {{"backend", b.name}, {"kind", "http_5xx"}}, s.serverErrors.load());
      w.sample("granary_backend_retries_total", {{"backend", b.name}}, s.retries.load());
    }
  }
}

/// The write-back spool.
void writeBackMetrics(TextWriter& w, const AdminContext& c) {
  if (c.spool) {
    w.family("granary_writeback_pending_objects", "gauge", "Write-back operations acknowledged, not yet at the backend.");
    w.sample("granary_writeback_pending_objects", c.spool->pendingObjects());
    w.family("granary_writeback_pending_bytes", "gauge", "Bytes of acknowledged writes not yet at the backend.");
    w.sample("granary_writeback_pending_bytes", c.spool->pendingBytes());
    w.family("granary_writeback_open_uploads", "gauge", "Multipart uploads into write-back buckets, not completed yet.");
    w.sample("granary_writeback_open_uploads", std::uint64_t{c.spool->openUploads()});
    w.family("granary_writeback_used_bytes", "gauge", "Spool bytes held: pending writes and parts of open uploads.");
    w.sample("granary_writeback_used_bytes", c.spool->usedBytes());
    w.family("granary_writeback_capacity_bytes", "gauge", "Capacity of the write-back spool.");
    w.sample("granary_writeback_capacity_bytes", c.spool->capacity());
  }
}

}  // namespace

/// The request target: its path and its parameters.
struct AdminHandler::Query {
  std::string path;
  std::vector<std::pair<std::string, std::string>> params;
  std::string get(std::string_view name, std::string dflt = {}) const {
    for (const auto& [k, v] : params)
      if (k == name) return v;
    return dflt;
  }
  bool has(std::string_view name) const {
    for (const auto& [k, v] : params)
      if (k == name) return true;
    return false;
  }
};

std::optional<AdminHandler::Query> AdminHandler::parseTarget(std::string_view target) {
  auto u = boost::urls::parse_origin_form(target);
  if (!u) return std::nullopt;
  Query q;
  q.path = std::string(u->encoded_path().decode());
  for (auto p : u->params()) q.params.emplace_back(p.key, p.has_value ? p.value : std::string());
  return q;
}

std::string AdminHandler::metrics() const {
  TextWriter w;
  requestMetrics(w, *ctx_);
  cacheMetrics(w, *ctx_);
  backendMetrics(w, *ctx_);
  writeBackMetrics(w, *ctx_);
  clusterMetrics(w, ctx_->cluster);
  if (ctx_->peerStats) ctx_->peerStats->writeTo(w);
  return w.str();
}

http::Awaitable<std::pair<bool, std::string>> AdminHandler::readiness() {
  bool ready = true;
  std::string report;
  auto ex = co_await asio::this_coro::executor;
  for (const auto& b : ctx_->backends) {
    boost::beast::tcp_stream s(ex);
    asio::ip::tcp::resolver resolver(ex);
    auto [rec, results] = co_await resolver.async_resolve(b.endpoint.host, std::to_string(b.endpoint.port),
                                                          asio::as_tuple(asio::use_awaitable));
    boost::system::error_code ec = rec;
    if (!ec) {
      s.expires_after(ctx_->readyTimeout);
      auto [cec, ep] = co_await s.async_connect(results, asio::as_tuple(asio::use_awaitable));
      ec = cec;
    }
    report += "backend " + b.name + " (" + b.endpoint.host + ":" + std::to_string(b.endpoint.port) + "): " +
              (ec ? "unreachable: " + ec.message() : std::string("ok")) + "\n";
    if (ec) ready = false;
  }
  if (ctx_->cache && ctx_->cache->disk()) {
    bool anyUp = false;
    for (const auto& d : ctx_->cache->disk()->status()) {
      report += "cache dir " + d.path + ": " + (d.failed ? "out of service: " + d.why : std::string("ok")) + "\n";
      anyUp |= !d.failed;
    }
    if (!anyUp) ready = false;
  }
  report += clusterReadiness(ctx_->cluster);  // informative: a lost etcd does not make a node unready
  co_return std::pair{ready, std::move(report)};
}

/// Who calls: the admin token, or a client key whose policy allows the admin API (then only within what
/// the key may read).
struct AdminHandler::Caller {
  bool tokenOk = false;
  bool authorized = false;  // the token or an admin key, or a probe (/healthz, /readyz) that needs neither
  std::shared_ptr<const s3api::KeyTable> keys;  // holds `policy` alive
  const s3api::AccessPolicy* policy = nullptr;
  std::string keyRefusal;
  std::string payloadHash;  // x-amz-content-sha256 of a key-signed request: the body must have it

  /// What a key-signed ls, load or invalidate names must be readable by the key, every key of it.
  bool mayRead(const std::string& bucket, const std::string& prefix) const {
    return !policy || policy->allowsAllUnder("s3:GetObject", bucket, prefix);
  }
  bool mayRead(const json::object& job) const {
    const auto* b = job.if_contains("bucket");
    const auto* p = job.if_contains("prefix");
    return b && p && b->is_string() && p->is_string() &&
           mayRead(std::string(b->as_string()), std::string(p->as_string()));
  }
  bool outsidePolicy(const Query& q) const {
    if (!policy) return false;
    // An invalidate of a key no object has acts on it as a prefix: judged as one, always.
    if (q.path == "/admin/invalidate") return !mayRead(q.get("bucket"), q.get("key"));
    if (q.path == "/admin/ls" || q.path == "/admin/load") return !mayRead(q.get("bucket"), q.get("prefix"));
    return false;
  }
};

/// The answer being built: status, headers and a small body.
struct AdminHandler::Reply {
  http::ResponseHeader h;
  std::string body;

  Reply() { h.result(bhttp::status::ok); }
  void setJson(const json::value& v) {
    h.set(bhttp::field::content_type, "application/json");
    body = json::serialize(v) + "\n";
  }
  void fail(bhttp::status s, std::string message) {
    h.result(s);
    setJson(json::object{{"error", std::move(message)}});
  }
};

AdminHandler::Caller AdminHandler::identify(const http::RequestHeader& req, const std::optional<Query>& q) const {
  Caller c;
  const auto auth = req[bhttp::field::authorization];
  c.tokenOk = ctx_->token.empty() || (auth.starts_with("Bearer ") && constantTimeEquals(auth.substr(7), ctx_->token));
  // A client key signing with SigV4: allowed if its policy says admin, then only within what it may read.
  if (!c.tokenOk && ctx_->keys &&
      (auth.starts_with("AWS4-") || req.target().find("X-Amz-Signature=") != std::string_view::npos)) {
    c.keys = ctx_->keys->get();
    c.keyRefusal = verifyKey(req, *c.keys, c.policy);
    c.tokenOk = c.keyRefusal.empty();
    if (c.tokenOk) c.payloadHash = std::string(req["x-amz-content-sha256"]);
  }
  // Probes carry no token: /healthz and /readyz answer anyway (/readyz names its checks only with it).
  c.authorized = c.tokenOk || (q && (q->path == "/healthz" || q->path == "/readyz"));
  return c;
}

bool AdminHandler::refuse(const Caller& c, const std::optional<Query>& q, Reply& r) const {
  // What a key may reach: ls, load, invalidate and jobs within its reads, health. Stats and metrics describe
  // every bucket, so they stay with the token.
  const bool keyPath = q && (q->path == "/admin/ls" || q->path == "/admin/load" || q->path == "/admin/invalidate" ||
                             q->path == "/admin/prefetch" ||
                             q->path == "/admin/jobs" || q->path.starts_with("/admin/jobs/") ||
                             q->path == "/healthz" || q->path == "/readyz");
  if (!q) {
    r.fail(bhttp::status::bad_request, "malformed request target");
  } else if (!c.keyRefusal.empty() && !c.authorized) {
    r.fail(bhttp::status::forbidden, c.keyRefusal);
  } else if (c.policy && !keyPath) {
    r.fail(bhttp::status::forbidden, "a client key may use ls, load, prefetch, invalidate and jobs; " + q->path +
                                         " needs the admin token");
  } else if (c.authorized && c.outsidePolicy(*q)) {
    r.fail(bhttp::status::forbidden, "the key's policy does not allow reading all of s3://" + q->get("bucket") + "/" +
                                         (q->path == "/admin/invalidate" ? q->get("key") : q->get("prefix")));
  } else if (!c.authorized) {
    r.h.result(bhttp::status::unauthorized);
    r.h.set(bhttp::field::www_authenticate, "Bearer realm=\"granary-admin\"");
    r.body = "unauthorized: send Authorization: Bearer <admin token>\n";
  } else {
    return false;
  }
  return true;
}

void AdminHandler::startLoad(CacheAdmin& admin, const Query& q, Reply& r) {
  LoadRequest lr;
  lr.bucket = q.get("bucket");
  lr.prefix = q.get("prefix");
  lr.verify = q.has("verify") && truthy(q.get("verify"));
  const auto conc = parseCount(q.get("concurrency", "8"));
  const auto rate = q.has("rate") ? parseSize(q.get("rate")) : std::optional<std::uint64_t>(0);
  if (lr.bucket.empty()) {
    r.fail(bhttp::status::bad_request, "bucket= is required");
  } else if (!conc || *conc == 0 || *conc > 256) {
    r.fail(bhttp::status::bad_request, "concurrency= must be a number from 1 to 256");
  } else if (!rate) {
    r.fail(bhttp::status::bad_request, "rate= must be bytes per second, e.g. 200MiB");
  } else {
    lr.concurrency = static_cast<unsigned>(*conc);
    lr.bytesPerSecond = *rate;
    r.h.result(bhttp::status::accepted);
    r.setJson(*admin.job(admin.startLoad(std::move(lr))));
  }
}

namespace {

/// The key list of a POST /admin/prefetch, at most kMaxPrefetchBody bytes. @return false (and `why`) when
/// the body is too large or the client stopped sending.
http::Awaitable<bool> readPrefetchBody(http::BodyReader& body, std::string& text, std::string& why) {
  if (body.contentLength() && *body.contentLength() > kMaxPrefetchBody) {
    why = "the key list is larger than " + std::to_string(kMaxPrefetchBody) + " bytes";
    co_return false;
  }
  std::vector<char> buf(64 * 1024);
  while (!body.done()) {
    auto n = co_await body.read(asio::buffer(buf));
    if (!n) {
      why = "reading the key list: " + n.error().message();
      co_return false;
    }
    if (*n == 0) break;
    if (text.size() + *n > kMaxPrefetchBody) {
      why = "the key list is larger than " + std::to_string(kMaxPrefetchBody) + " bytes";
      co_return false;
    }
    text.append(buf.data(), *n);
  }
  co_return true;
}

}  // namespace

http::Awaitable<void> AdminHandler::startPrefetch(CacheAdmin& admin, const Query& q, const Caller& c,
                                                  http::BodyReader& body, Reply& r) {
  PrefetchRequest pr;
  pr.bucket = q.get("bucket");
  pr.prefix = q.get("prefix");
  const auto window = parseSize(q.get("window", "256MiB"));
  const auto conc = parseCount(q.get("concurrency", "8"));
  const auto idle = parseDuration(q.get("idle", "30"));
  std::string text, why;
  if (pr.bucket.empty() || pr.bucket.size() > 255) {
    r.fail(bhttp::status::bad_request, "bucket= is required (at most 255 bytes)");
  } else if (pr.prefix.size() > kMaxPrefetchKeyBytes) {
    r.fail(bhttp::status::bad_request, "prefix= is longer than 1024 bytes");
  } else if (!window || *window == 0 || *window > (1ull << 40)) {
    r.fail(bhttp::status::bad_request, "window= must be a size from 1 byte to 1TiB, e.g. 256MiB");
  } else if (!conc || *conc == 0 || *conc > 256) {
    r.fail(bhttp::status::bad_request, "concurrency= must be a number from 1 to 256");
  } else if (!idle || idle->count() <= 0 || *idle > std::chrono::hours(24)) {
    r.fail(bhttp::status::bad_request, "idle= must be a duration from 1ms to 24h, e.g. 30 (seconds) or 500ms");
  } else if (!admin.prefetchSlotFree()) {  // before the body is read: a refused order costs no memory
    r.fail(bhttp::status::too_many_requests,
           "too many prefetch jobs running (at most " + std::to_string(kMaxPrefetchJobsRunning) + "); cancel one");
  } else if (!admin.beginPrefetchOrder()) {  // one order (up to 64 MiB) in memory at a time
    r.fail(bhttp::status::too_many_requests, "another prefetch order is being received; retry when it is in");
  } else {
    bool read = false;
    {
      struct Received {
        CacheAdmin& a;
        ~Received() { a.endPrefetchOrder(); }
      } received{admin};
      read = co_await readPrefetchBody(body, text, why);
    }
    if (!read) {
      std::string().swap(text);
      co_return r.fail(why.starts_with("reading") ? bhttp::status::bad_request : bhttp::status::payload_too_large, why);
    }
    // The signature covers the body's hash (unless the key said UNSIGNED-PAYLOAD): the body must match it.
    const std::string& signedHash = c.payloadHash;
    if (!signedHash.empty() && signedHash != "UNSIGNED-PAYLOAD" && sha256Hex(text) != signedHash)
      co_return r.fail(bhttp::status::bad_request, "XAmzContentSHA256Mismatch: the key list is not the body that was signed");
    auto [keys, bad] = parsePrefetchKeys(text, pr.prefix);
    text = {};
    if (!bad.empty()) co_return r.fail(bhttp::status::bad_request, bad);
    // A key signs within its policy: every key of the order, or all under the prefix it lists.
    if (c.policy && keys.empty() && !c.mayRead(pr.bucket, pr.prefix))
      co_return r.fail(bhttp::status::forbidden, "the key's policy does not allow reading all of s3://" + pr.bucket + "/" + pr.prefix);
    for (const auto& k : keys)
      if (c.policy && !c.policy->allowsObject("s3:GetObject", pr.bucket, k))
        co_return r.fail(bhttp::status::forbidden, "the key's policy does not allow reading s3://" + pr.bucket + "/" + k);
    pr.keys = std::move(keys);
    pr.windowBytes = *window;
    pr.concurrency = static_cast<unsigned>(*conc);
    pr.idle = *idle;
    const auto id = admin.startPrefetch(std::move(pr));
    if (!id) co_return r.fail(bhttp::status::too_many_requests, "too many prefetch jobs running (at most " +
                                                                     std::to_string(kMaxPrefetchJobsRunning) + "); cancel one");
    r.setJson(*admin.job(*id));
  }
}

/// /admin/jobs (those the caller may see) and /admin/jobs/ID (GET; DELETE cancels).
void AdminHandler::serveJobs(CacheAdmin& admin, const Query& q, bhttp::verb m, const Caller& c, Reply& r) {
  if (q.path == "/admin/jobs") {
    json::array all = admin.jobs(), shown;
    for (auto& j : all)
      if (j.is_object() && c.mayRead(j.as_object())) shown.push_back(std::move(j));
    r.setJson(json::object{{"jobs", std::move(shown)}});
    return;
  }
  const std::string id = q.path.substr(12);
  auto j = admin.job(id);
  if (j && !c.mayRead(*j)) j.reset();  // another key's job: as if there were none
  if (j && m == bhttp::verb::delete_) {
    admin.cancel(id);
    j = admin.job(id);
  }
  if (j) r.setJson(*j);
  else r.fail(bhttp::status::not_found, "no job " + id);
}

/// The cache admin API (/admin/*), for an authorized caller.
http::Awaitable<void> AdminHandler::serveApi(const Query& q, bhttp::verb m, const Caller& c, http::BodyReader& body,
                                             Reply& r) {
  CacheAdmin* admin = ctx_->cacheAdmin.get();
  if (!admin) {
    r.fail(bhttp::status::service_unavailable, "the cache admin API is not available (no cache, or shutting down)");
  } else if (q.path == "/admin/stats" && m == bhttp::verb::get) {
    r.setJson(admin->stats());
  } else if (q.path == "/admin/ls" && m == bhttp::verb::get) {
    const auto max = parseCount(q.get("max", "1000"));
    if (q.get("bucket").empty()) r.fail(bhttp::status::bad_request, "bucket= is required");
    else if (!max || *max == 0) r.fail(bhttp::status::bad_request, "max= must be a positive number");
    else r.setJson(co_await admin->ls(q.get("bucket"), q.get("prefix"), *max));
  } else if (q.path == "/admin/invalidate" && m == bhttp::verb::post) {
    if (q.get("bucket").empty()) r.fail(bhttp::status::bad_request, "bucket= is required");
    else r.setJson(co_await admin->invalidate(q.get("bucket"), q.get("key"), q.has("prefix") && truthy(q.get("prefix"))));
  } else if (q.path == "/admin/load" && m == bhttp::verb::post) {
    startLoad(*admin, q, r);
  } else if (q.path == "/admin/prefetch" && m == bhttp::verb::post) {
    co_await startPrefetch(*admin, q, c, body, r);
  } else if ((q.path == "/admin/jobs" && m == bhttp::verb::get) ||
             (q.path.starts_with("/admin/jobs/") && (m == bhttp::verb::get || m == bhttp::verb::delete_))) {
    serveJobs(*admin, q, m, c, r);
  } else {
    notFound(r);
  }
}

/// /admin/cluster (GET) and /admin/cluster/drain (POST).
void AdminHandler::serveCluster(const Query& q, bhttp::verb m, Reply& r) {
  const auto& v = ctx_->cluster;
  if (q.path == "/admin/cluster" && (m == bhttp::verb::get || m == bhttp::verb::head)) {
    r.setJson(clusterJson(v));
  } else if (q.path == "/admin/cluster/drain" && m == bhttp::verb::post) {
    if (!v.members) {
      r.fail(bhttp::status::conflict, "no [cluster] configured");
    } else if (!v.membership) {
      r.fail(bhttp::status::conflict, "a static membership (cluster.members) cannot drain: remove the node from the list");
    } else {
      v.membership->drain();
      json::object o;
      o["id"] = v.membership->options().nodeId;
      o["state"] = "draining";
      r.setJson(o);
    }
  } else {
    notFound(r);
  }
}

void AdminHandler::notFound(Reply& r) {
  r.fail(bhttp::status::not_found,
         "not found: GET /metrics, /healthz, /readyz, /admin/stats, /admin/ls, /admin/jobs[/ID]; "
         "GET /admin/cluster; POST /admin/load, /admin/prefetch, /admin/invalidate, /admin/cluster/drain; "
         "DELETE /admin/jobs/ID");
}

http::Awaitable<void> AdminHandler::handle(const http::RequestHeader& req, const http::RequestContext&,
                                           http::BodyReader& body, http::ResponseWriter& out) {
  Reply r;
  const auto q = parseTarget(req.target());
  const Caller c = identify(req, q);
  const auto m = req.method();
  const bool read = m == bhttp::verb::get || m == bhttp::verb::head;
  if (refuse(c, q, r)) {
  } else if (q->path == "/metrics" && read) {
    r.h.set(bhttp::field::content_type, "text/plain; version=0.0.4");
    r.body = metrics();
  } else if (q->path == "/healthz" && read) {
    r.body = "ok\n";
  } else if (q->path == "/readyz" && read) {
    auto [ready, report] = co_await readiness();
    r.h.result(ready ? bhttp::status::ok : bhttp::status::service_unavailable);
    r.body = (ready ? "ready\n" : "not ready\n") + (c.tokenOk ? report : std::string());
  } else if (q->path == "/admin/cluster" || q->path.starts_with("/admin/cluster/")) {
    serveCluster(*q, m, r);
  } else if (q->path.starts_with("/admin/")) {
    co_await serveApi(*q, m, c, body, r);
  } else {
    notFound(r);
  }
  if (!r.h.count(bhttp::field::content_type)) r.h.set(bhttp::field::content_type, "text/plain");
  r.h.set(bhttp::field::content_length, std::to_string(r.body.size()));
  out.closeAfterResponse();
  if (co_await out.writeHeader(std::move(r.h))) co_return;
  if (req.method() != bhttp::verb::head) {
    if (co_await out.writeBody(boost::asio::buffer(r.body))) co_return;
  }
  co_await out.finish();
}

std::string AdminHandler::verifyKey(const http::RequestHeader& req, const s3api::KeyTable& keys,
                                    const s3api::AccessPolicy*& policy) const {
  const auto [rawPath, rawQuery] = splitTarget(req.target());
  const auto decodedPath = uriDecode(rawPath);
  const auto query = parseQuery(rawQuery);
  if (!decodedPath || !query) return "malformed request target";
  sigv4::HeaderList headers;
  for (const auto& f : req) {
    std::string name(f.name_string());
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    headers.emplace_back(std::move(name), std::string(f.value()));
  }
  s3api::AuthInput in;
  in.method = req.method_string();
  in.rawPath = rawPath;
  in.decodedPath = *decodedPath;
  in.query = &*query;
  in.headers = &headers;
  in.now = std::chrono::system_clock::now();
  const s3api::AuthResult r = s3api::verifyRequest(in, keys, s3api::AuthOptions{});
  if (r.failure) {
    const auto& info = s3api::errorInfo(r.failure->error);
    return "the signature was refused: " + std::string(info.code);
  }
  const s3api::ClientKey* key = keys.find(r.auth.accessKey);
  if (!key || !key->policy || !key->policy->admin())
    return "key " + logSafe(r.auth.accessKey) + " may not use the admin API (its policy needs admin = true)";
  // The admin API lists and reads with the backend's credentials, which a tenant key's reads never use.
  if (key->backendCredentials)
    return "key " + logSafe(r.auth.accessKey) + " signs with its own backend credentials: no admin API";
  policy = key->policy.get();
  return {};
}

std::string AdminHandler::protocolError(http::ResponseHeader& res, http::ProtocolError error,
                                        std::string_view message) {
  res.set(bhttp::field::content_type, "text/plain");
  return std::string(s3api::s3Code(error)) + ": " + std::string(message) + "\n";
}

}  // namespace granary::admin

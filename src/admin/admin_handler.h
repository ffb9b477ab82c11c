#pragma once
// The admin endpoint (--admin-listen, never the S3 port), wired by main:
//   GET  /metrics                Prometheus text: requests, cache tiers, fills, evictions, backend latency...
//   GET  /healthz                the process is alive (always open, for probes)
//   GET  /readyz                 every backend accepts TCP connections and a cache directory serves
//   GET  /admin/stats            the cache in numbers (JSON)
//   GET  /admin/ls?bucket=B&prefix=P[&max=N]       what is cached under a prefix (JSON)
//   POST /admin/invalidate?bucket=B&key=K          drops K and everything listed under it as a prefix
//   POST /admin/load?bucket=B&prefix=P[&concurrency=N][&rate=BYTES/s][&verify=true]  starts a preload job
//   POST /admin/prefetch?bucket=B[&prefix=P][&window=BYTES][&concurrency=N][&idle=S]  body: keys, one a line
//                                (empty: the prefix's listing order); fetches ahead of the clients' reads
//   GET  /admin/jobs, /admin/jobs/ID; DELETE /admin/jobs/ID (cancel)
//   GET  /admin/cluster          the cluster's members as this node sees them (JSON; cluster_admin.h)
//   POST /admin/cluster/drain    this node becomes draining (it keeps serving, owns nothing)
// With a token configured, every path but /healthz requires "Authorization: Bearer TOKEN", else 401.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cache/chunk_cache.h"
#include "cache/writeback.h"
#include "admin/cache_admin.h"
#include "admin/cluster_admin.h"
#include "http/handler.h"
#include "s3api/peer_stats.h"
#include "s3api/proxy_handler.h"
#include "s3api/request_stats.h"
#include "upstream/endpoint.h"
#include "upstream/http_upstream.h"

namespace granary::admin {

struct AdminBackend {
  std::string name;
  upstream::Endpoint endpoint;
  std::shared_ptr<upstream::UpstreamStats> stats;
};

/// What the admin endpoint reads; every pointer may be null (that part is left out).
struct AdminContext {
  cache::ChunkCache* cache = nullptr;
  std::shared_ptr<cache::WriteBackSpool> spool;
  std::string token;
  std::vector<AdminBackend> backends;
  std::vector<std::shared_ptr<s3api::RequestStats>> requestStats;
  std::function<std::size_t()> openConnections;
  /// Set once the S3 server exists (main creates it after the admin server); read on the admin thread.
  std::shared_ptr<CacheAdmin> cacheAdmin;
  std::chrono::milliseconds readyTimeout{2'000};  // a backend connect for /readyz
  /// Client keys: one whose policy says `admin = true` may call the API with a SigV4 signature instead of
  /// the token, within what its policy lets it read (ls, load and invalidate name a bucket and prefix).
  std::shared_ptr<s3api::KeyStore> keys;
  /// The cluster ([cluster]); members null without one.
  ClusterView cluster;
  /// The peer read path's counters (granary_peer_*); null without a cluster. (Helper P's lines.)
  std::shared_ptr<s3api::PeerStats> peerStats;
};

class AdminHandler final : public http::RequestHandler {
 public:
  explicit AdminHandler(std::shared_ptr<AdminContext> ctx) : ctx_(std::move(ctx)) {}

  http::Awaitable<void> handle(const http::RequestHeader& req, const http::RequestContext& ctx,
                               http::BodyReader& body, http::ResponseWriter& out) override;
  std::string protocolError(http::ResponseHeader& res, http::ProtocolError error, std::string_view message) override;

  /// The metrics page (also used by tests).
  std::string metrics() const;

 private:
  struct Query;   // the request target: path and parameters
  struct Caller;  // who calls (token or admin key) and what it may read
  struct Reply;   // the answer being built

  static std::optional<Query> parseTarget(std::string_view target);
  Caller identify(const http::RequestHeader& req, const std::optional<Query>& q) const;
  /// Refuses a caller that may not make this request; @return true when `r` holds the refusal.
  bool refuse(const Caller& c, const std::optional<Query>& q, Reply& r) const;
  http::Awaitable<void> serveApi(const Query& q, boost::beast::http::verb m, const Caller& c, http::BodyReader& body,
                                 Reply& r);
  static void startLoad(CacheAdmin& admin, const Query& q, Reply& r);
  /// POST /admin/prefetch: the parameters, the key list of the body, the caller's policy.
  static http::Awaitable<void> startPrefetch(CacheAdmin& admin, const Query& q, const Caller& c, http::BodyReader& body,
                                             Reply& r);
  static void serveJobs(CacheAdmin& admin, const Query& q, boost::beast::http::verb m, const Caller& c, Reply& r);
  static void notFound(Reply& r);
  void serveCluster(const Query& q, boost::beast::http::verb m, Reply& r);
  /// Checks a SigV4-signed request against the client keys; "" when it comes from a key allowed the
  /// admin API (`policy` then names its policy), else why not.
  std::string verifyKey(const http::RequestHeader& req, const s3api::KeyTable& keys,
                        const s3api::AccessPolicy*& policy) const;
  /// /readyz: status 200 or 503, and a line per check.
  http::Awaitable<std::pair<bool, std::string>> readiness();

  std::shared_ptr<AdminContext> ctx_;
};

}  // namespace granary::admin

#pragma once
// The one place that knows every concrete type: App builds the modules from a Config, wires them, serves
// until a signal, reloads on SIGHUP and stops them in order. main() only reads the arguments into a Config.
//
//   Config -> backends (HttpUpstreamOptions + stats per [[backend]])
//          -> ProxyOptions (buckets, TTL store, access log) + KeyStore (client keys)
//          -> S3 server (listen) -> admin server (listen)          ports first: a clash fails fast
//          -> ChunkCache (opens and locks the cache directories)
//          -> services (write-back: spool and uploader)
//          -> S3 server bind: one ProxyHandler (+ HttpUpstream per backend, CacheThread) per I/O thread
//          -> admin server bind (AdminContext, CacheAdmin over the handlers) -> services start
// Shutdown (first SIGINT/SIGTERM): admin jobs stop dispatching, the S3 server drains (shutdown_timeout),
// the admin server stops; then admin state, services, handlers, and last the cache (journals flushed).

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "admin/admin_handler.h"
#include "cache/chunk_cache.h"
#include "cluster/membership.h"
#include "cluster/peer_auth.h"
#include "config.h"
#include "http/server.h"
#include "s3api/peer_handler.h"
#include "s3api/proxy_handler.h"
#include "upstream/http_upstream.h"

namespace granary {

/// "host:port", "[v6]:port" or "host" (port 9000) as an endpoint; throws ConfigError.
boost::asio::ip::tcp::endpoint parseListen(const std::string& s);

class App {
 public:
  /// Re-reads the configuration for SIGHUP (file, flags, environment); throws on a mistake.
  using Reloader = std::function<Config()>;

  /// @param configPath the --config file ("" = none: SIGHUP has nothing to reload).
  App(Config cfg, std::string configPath, Reloader reload);
  ~App();
  App(const App&) = delete;
  App& operator=(const App&) = delete;

  /// Opens the ports, the cache and the services and binds the servers (blocking: start-up only).
  /// @return false, with the reason on stderr, when Granary cannot start.
  bool start();
  /// Serves until SIGINT or SIGTERM, then stops everything in order. @return the exit status.
  int run();

 private:
  /// A handler with its thread, for work posted to it from elsewhere (SIGHUP, the admin API).
  struct Worker {
    boost::asio::io_context* ioc = nullptr;
    s3api::ProxyHandler* handler = nullptr;
  };

  void buildBackends();
  void buildAccessLog();
  std::unique_ptr<http::RequestHandler> makeHandler(boost::asio::io_context& ioc, unsigned index);
  std::unique_ptr<http::RequestHandler> makeAdminHandler(boost::asio::io_context& aioc);
  // The cluster's peer read path: ProxyOptions::cluster (node id, secret, timeouts, counters), and the peer
  // port (cluster.peer_listen) whose per-thread PeerHandler serves chunks from this node's cache.
  void buildCluster();
  std::unique_ptr<http::RequestHandler> makePeerHandler(boost::asio::io_context& ioc);
  void openServers();
  void openCache();
  void bindServers();
  void announce() const;

  // Services: long-lived work beside the request path (write-back), owned here. Built after the cache
  // (they may use its directories) and before the S3 server binds (handlers get them through
  // ProxyOptions); started once the servers are bound (the I/O threads' executors exist); stopped after
  // the servers have drained and before the handlers and the cache go (shutdown()).
  void buildServices();
  void startServices();
  void stopServices();
  // The cluster's member source: Membership (etcd) or StaticMembers (cluster.members), built before the
  // S3 server binds (handlers get it through ProxyOptions::cluster), started at once (registration runs
  // in the background: etcd may be down), stopped (lease revoked) first at shutdown. SIGHUP leaves it alone.
  void buildMembership();
  void stopMembership();

  void waitSignal(boost::asio::signal_set& signals);
  void onSignal(int sig);
  void reload();
  void beginShutdown(int sig);
  void shutdown();

  Config cfg_;
  std::string configPath_;
  Reloader reload_;
  http::ServerOptions serverOpts_;
  std::vector<upstream::HttpUpstreamOptions> backends_;
  s3api::ProxyOptions proxyOpts_;
  std::shared_ptr<s3api::KeyStore> keys_;
  std::shared_ptr<admin::AdminContext> adminCtx_;
  std::vector<Worker> workers_;
  std::unique_ptr<cache::ChunkCache> cache_;
  std::unique_ptr<http::Server> server_;
  std::unique_ptr<http::Server> admin_;  // admin_listen; none when empty
  std::shared_ptr<cluster::Membership> membership_;  // with cluster.etcd
  std::unique_ptr<http::Server> peer_;   // cluster.peer_listen; none without a cluster
  std::shared_ptr<cluster::PeerVerifier> peerVerifier_;
  std::vector<std::pair<boost::asio::io_context*, s3api::PeerHandler*>> peerWorkers_;  // for SIGHUP
  int stops_ = 0;
};

}  // namespace granary

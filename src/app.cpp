#include "app.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <thread>

#include "admin/cache_admin.h"
#include "cache/disk_tier.h"
#include "common/log_escape.h"
#include "common/sigv4.h"
#include "common/units.h"
#include "s3api/peer_handler.h"
#include "s3api/peer_stats.h"
#include "s3api/prefetch_tracker.h"
#include "s3api/request_stats.h"
#include "upstream/endpoint.h"

namespace granary {

namespace asio = boost::asio;

asio::ip::tcp::endpoint parseListen(const std::string& s) {
  std::string host = s, port = "9000";
  if (!s.empty() && s.front() == '[') {
    auto close = s.find(']');
    if (close == std::string::npos) throw ConfigError("--listen: bad address '" + s + "'");
    host = s.substr(1, close - 1);
    if (close + 1 < s.size() && s[close + 1] == ':') port = s.substr(close + 2);
  } else if (auto colon = s.rfind(':'); colon != std::string::npos) {
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
  }
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
  if (ec) throw ConfigError("--listen: '" + host + "' is not an IP address");
  // std::stoi's reading (leading blanks, a sign, digits, the rest ignored) without its exceptions.
  errno = 0;
  char* end = nullptr;
  const long p = std::strtol(port.c_str(), &end, 10);
  if (end == port.c_str() || errno == ERANGE || p < 0 || p > 65535)
    throw ConfigError("--listen: bad port '" + port + "'");
  return {addr, static_cast<unsigned short>(p)};
}

namespace {

std::shared_ptr<const s3api::KeyTable> keyTable(const Config& cfg) {
  auto t = std::make_shared<s3api::KeyTable>();
  for (const auto& k : cfg.clientKeys) {
    s3api::ClientKey key;
    key.secret = k.secretKey;
    if (k.allow || k.admin) {
      // admin = true without statements keeps the key's S3 access whole.
      std::vector<s3api::PolicyStatement> statements;
      if (k.allow)
        for (const auto& st : *k.allow) statements.push_back({st.actions, st.resources});
      else
        statements.push_back({{"*"}, {"*"}});
      key.policy = std::make_shared<const s3api::AccessPolicy>(statements, k.admin);
    }
    if (!k.backendAccessKey.empty())
      key.backendCredentials = std::make_shared<const sigv4::Credentials>(
          sigv4::Credentials{k.backendAccessKey, k.backendSecretKey, k.backendSessionToken});
    t->add(k.accessKey, std::move(key));
  }
  return t;
}

http::ServerOptions serverOptions(const Config& cfg, const asio::ip::tcp::endpoint& listen) {
  http::ServerOptions so;
  so.listen = listen;
  so.threads = cfg.threads ? cfg.threads : std::max(1u, std::thread::hardware_concurrency());
  so.idleTimeout = cfg.idleTimeout;
  so.readTimeout = cfg.readTimeout;
  so.writeTimeout = cfg.writeTimeout;
  so.shutdownTimeout = cfg.shutdownTimeout;
  return so;
}

upstream::HttpUpstreamOptions upstreamOptions(const BackendConfig& b, std::shared_ptr<upstream::UpstreamStats> stats) {
  upstream::HttpUpstreamOptions uo;
  uo.endpoint = *upstream::parseEndpoint(b.endpoint);  // validate() checked it
  uo.region = b.region;
  uo.credentials = {b.accessKey, b.secretKey, b.sessionToken};
  uo.caFile = b.caFile;
  uo.verifyTls = b.verifyTls;
  uo.virtualHosted = b.virtualHosted;
  uo.pool.maxConnections = b.maxConnections;
  uo.pool.connectTimeout = b.connectTimeout;
  uo.pool.idleTimeout = b.idleTimeout;
  uo.readTimeout = b.readTimeout;
  uo.retry.maxAttempts = static_cast<int>(b.maxRetries) + 1;
  uo.stats = std::move(stats);
  return uo;
}

/// Every backend in BucketMap order: the default first.
std::vector<const BackendConfig*> allBackends(const Config& cfg) {
  std::vector<const BackendConfig*> all{&cfg.backend};
  for (const auto& o : cfg.otherBackends) all.push_back(&o);
  return all;
}

std::shared_ptr<const s3api::BucketMap> bucketMap(const Config& cfg) {
  const auto backends = allBackends(cfg);
  std::vector<std::string> ids;
  for (const auto* b : backends) ids.push_back(b->endpoint);  // cache keys: one namespace per object store
  s3api::BucketPolicy fallback;
  auto map = std::make_shared<s3api::BucketMap>(std::move(ids), fallback);
  for (const auto& bk : cfg.buckets) {
    s3api::BucketPolicy p;
    for (std::size_t i = 0; i < backends.size(); ++i)
      if (backends[i]->name == bk.backend) p.backend = i;
    p.backendBucket = bk.backendBucket;
    p.metadataTtl = bk.metadataTtl;
    p.cache = bk.cache;
    p.writeMode = bk.writeMode == WriteMode::Around ? s3api::WriteMode::Around
                  : bk.writeMode == WriteMode::Back     ? s3api::WriteMode::Back
                                                        : s3api::WriteMode::Through;
    map->add(bk.name, std::move(p));
  }
  return map;
}

std::shared_ptr<const s3api::TtlTable> ttlTable(const Config& cfg) {
  auto t = std::make_shared<s3api::TtlTable>();
  t->fallback = cfg.cache.metadataTtl;
  t->staleFallback = cfg.cache.staleIfError;
  for (const auto& bk : cfg.buckets) {
    if (bk.metadataTtl) t->buckets[bk.name] = *bk.metadataTtl;
    if (bk.staleIfError) t->staleBuckets[bk.name] = *bk.staleIfError;
  }
  return t;
}

s3api::ProxyOptions proxyOptions(const Config& cfg) {
  s3api::ProxyOptions po;
  po.domain = cfg.domain;
  po.auth.allowAnonymous = cfg.anonymous;
  po.auth.maxSkew = std::chrono::duration_cast<std::chrono::seconds>(cfg.maxSkew);
  po.auth.regions = cfg.regions;
  if (po.auth.regions.empty()) {
    // The regions of the object stores behind this endpoint (the default's first, named in errors), and
    // us-east-1: what S3 clients sign for at a custom endpoint unless told otherwise (presigned URLs
    // cannot follow a region correction; the JavaScript and Go SDKs do not by default).
    for (const auto* b : allBackends(cfg))
      if (std::find(po.auth.regions.begin(), po.auth.regions.end(), b->region) == po.auth.regions.end())
        po.auth.regions.push_back(b->region);
    if (std::find(po.auth.regions.begin(), po.auth.regions.end(), "us-east-1") == po.auth.regions.end())
      po.auth.regions.push_back("us-east-1");
  }
  po.accessLog = cfg.accessLog;
  po.accessLogFormat = cfg.accessLogFormat == "json" ? s3api::AccessLogFormat::Json
                       : cfg.accessLogFormat == "clf" ? s3api::AccessLogFormat::Common
                                                      : s3api::AccessLogFormat::Text;
  po.ttls = std::make_shared<s3api::TtlStore>(ttlTable(cfg));
  po.buckets = bucketMap(cfg);
  po.metadataTtl = cfg.cache.metadataTtl;
  po.cacheStatusHeader = cfg.cache.statusHeader;
  po.parallelFills = cfg.cache.parallelFills;
  po.maxFills = cfg.cache.maxFills;
  po.readAhead = cfg.cache.readAhead;
  po.fillTimeout = cfg.backend.readTimeout;
  return po;
}

/// What SIGHUP can change without a restart; the rest is reported as needing one.
void warnUnreloadable(const Config& was, const Config& now) {
  auto warn = [](const char* what) { spdlog::warn("SIGHUP: '{}' changed; it takes effect at the next start", what); };
  if (was.listen != now.listen) warn("listen");
  if (was.adminListen != now.adminListen) warn("admin_listen");
  if (was.threads != now.threads) warn("threads");
  if (was.regions != now.regions) warn("regions");
  if (was.backend.endpoint != now.backend.endpoint || was.otherBackends.size() != now.otherBackends.size()) warn("backend endpoints");
  if (was.buckets.size() != now.buckets.size()) warn("[[bucket]] blocks");
  if (was.cache.ramBytes != now.cache.ramBytes || was.cache.chunkSize != now.cache.chunkSize ||
      was.cache.dirs.size() != now.cache.dirs.size())
    warn("cache sizes or directories");
  if (was.cache.directIo != now.cache.directIo) warn("cache.direct_io");
}

/// A config file that holds secrets should be readable by its owner alone (as ssh insists of its keys).
void warnIfReadableSecrets(const std::string& path, const Config& cfg) {
  if (path.empty()) return;
  bool secrets = !cfg.adminToken.empty() || !cfg.clientKeys.empty();
  for (const auto* b : allBackends(cfg)) secrets = secrets || !b->secretKey.empty();
  struct stat st {};
  if (!secrets || ::stat(path.c_str(), &st) != 0 || (st.st_mode & (S_IRWXG | S_IRWXO)) == 0) return;
  spdlog::warn("{} holds secrets and other users may read it (mode {:o}): chmod 600 {}", logSafe(path),
               st.st_mode & 0777, logSafe(path));
}

}  // namespace

App::App(Config cfg, std::string configPath, Reloader reload)
    : cfg_(std::move(cfg)), configPath_(std::move(configPath)), reload_(std::move(reload)) {}

App::~App() = default;

void App::buildBackends() {
  for (const auto* b : allBackends(cfg_)) {
    auto stats = std::make_shared<upstream::UpstreamStats>();
    backends_.push_back(upstreamOptions(*b, stats));
    adminCtx_->backends.push_back({b->name, backends_.back().endpoint, stats});
  }
}

void App::buildAccessLog() {
  if (cfg_.accessLogFormat == "text") return;
  // JSON and CLF lines carry nothing but themselves. spdlog's console sinks share one lock, so these
  // lines never interleave with the main log's.
  proxyOpts_.accessLogger = spdlog::stdout_logger_mt("access");
  proxyOpts_.accessLogger->set_pattern("%v");
  proxyOpts_.accessLogger->flush_on(spdlog::level::info);
}

/// One per I/O thread, called by the S3 server at bind(): the thread's backends, cache thread and handler.
std::unique_ptr<http::RequestHandler> App::makeHandler(asio::io_context& ioc, unsigned index) {
  std::vector<std::unique_ptr<upstream::Upstream>> ups;
  for (const auto& uo : backends_) ups.push_back(std::make_unique<upstream::HttpUpstream>(ioc.get_executor(), uo));
  std::unique_ptr<cache::CacheThread> ct;
  if (cache_->enabled()) ct = std::make_unique<cache::CacheThread>(*cache_, ioc.get_executor());
  s3api::ProxyOptions threadOpts = proxyOpts_;
  threadOpts.requestStats = std::make_shared<s3api::RequestStats>();
  adminCtx_->requestStats.push_back(threadOpts.requestStats);
  auto handler = std::make_unique<s3api::ProxyHandler>(std::move(threadOpts), keys_, std::move(ups), std::move(ct));
  workers_.at(index) = {&ioc, handler.get()};
  return handler;
}

/// The admin server's one handler, called at its bind() (after the S3 server's: the workers exist).
std::unique_ptr<http::RequestHandler> App::makeAdminHandler(asio::io_context& aioc) {
  std::vector<admin::AdminWorker> aw;
  for (const auto& w : workers_) aw.push_back({w.ioc->get_executor(), w.handler});
  adminCtx_->cacheAdmin =
      std::make_shared<admin::CacheAdmin>(aioc.get_executor(), std::move(aw), cache_.get(), adminCtx_->requestStats,
                                          proxyOpts_.prefetch);
  return std::make_unique<admin::AdminHandler>(adminCtx_);
}

void App::buildCluster() {
  if (!cfg_.cluster.enabled()) return;
  s3api::ClusterOptions& k = proxyOpts_.cluster;
  k.nodeId = cfg_.cluster.nodeId;
  k.secret = cfg_.cluster.secret;
  k.connectTimeout = cfg_.cluster.peerConnectTimeout;
  k.readTimeout = cfg_.cluster.peerReadTimeout;
  k.authWindow = cfg_.cluster.peerAuthWindow;
  k.stats = std::make_shared<s3api::PeerStats>();
  adminCtx_->peerStats = k.stats;
  peerVerifier_ = std::make_shared<cluster::PeerVerifier>(k.secret, k.authWindow);
  // (k.members: buildMembership, once the cache is open.)
}

/// One per peer I/O thread, called by the peer server at bind(): the thread's backends and cache thread.
std::unique_ptr<http::RequestHandler> App::makePeerHandler(asio::io_context& ioc) {
  std::vector<std::unique_ptr<upstream::Upstream>> ups;
  for (const auto& uo : backends_) ups.push_back(std::make_unique<upstream::HttpUpstream>(ioc.get_executor(), uo));
  std::unique_ptr<cache::CacheThread> ct;
  if (cache_->enabled()) ct = std::make_unique<cache::CacheThread>(*cache_, ioc.get_executor());
  s3api::PeerHandlerOptions po;
  po.verifier = peerVerifier_;
  po.stats = proxyOpts_.cluster.stats;
  po.buckets = proxyOpts_.buckets;
  po.fillTimeout = proxyOpts_.fillTimeout;
  po.metadataTtl = cfg_.cache.metadataTtl;
  auto handler = std::make_unique<s3api::PeerHandler>(std::move(po), std::move(ups), std::move(ct));
  peerWorkers_.emplace_back(&ioc, handler.get());
  return handler;
}

/// The ports first: a second Granary started on a port this one holds fails at once, with a message
/// naming the address, before it opens (and waits on the lock of) any cache directory.
void App::openServers() {
  proxyOpts_.prefetch = std::make_shared<s3api::PrefetchTracker>();  // the prefetch jobs' readers (every thread)
  server_ = std::make_unique<http::Server>(
      serverOpts_, [this](asio::io_context& ioc, unsigned index) { return makeHandler(ioc, index); });
  server_->listen();
  if (cfg_.cluster.enabled()) {
    http::ServerOptions po = serverOpts_;
    po.listen = parseListen(cfg_.cluster.peerListen);
    peer_ = std::make_unique<http::Server>(po, [this](asio::io_context& ioc, unsigned) { return makePeerHandler(ioc); });
    peer_->listen();
  }
  if (cfg_.adminListen.empty()) return;
  http::ServerOptions ao = serverOpts_;
  ao.listen = parseListen(cfg_.adminListen);
  ao.threads = 1;
  admin_ = std::make_unique<http::Server>(ao, [this](asio::io_context& aioc, unsigned) { return makeAdminHandler(aioc); });
  admin_->listen();
}

void App::openCache() {
  cache::CacheOptions co;
  for (const auto& d : cfg_.cache.dirs) co.dirs.push_back({d.path, d.size});
  co.ramBytes = cfg_.cache.ramBytes;
  co.directIo = cfg_.cache.directIo;
  co.chunkSize = cfg_.cache.chunkSize;
  cache_ = std::make_unique<cache::ChunkCache>(std::move(co));
  spdlog::info("cache: {}", cache_->enabled() ? cache_->describe() : "off (no --cache-dir, no --ram-cache)");
}

void App::buildServices() {
  // Write-back: the spool (replayed from its journal) and its uploader, one service shared by every handler.
  if (!cfg_.cache.writeBack) return;
  s3api::WriteBackServiceOptions wo;
  wo.uploadConcurrency = cfg_.cache.writeBackUploadConcurrency;
  wo.retryMax = cfg_.cache.writeBackRetryMax;
  wo.cache = cache_.get();
  wo.buckets = proxyOpts_.buckets;
  auto spool = std::make_shared<cache::WriteBackSpool>(
      cache::WriteBackOptions{cfg_.cache.writeBack->path, cfg_.cache.writeBack->size});
  proxyOpts_.writeBack = std::make_shared<s3api::WriteBackService>(std::move(spool), std::move(wo));
}

void App::startServices() {
  // Write-back: the uploader runs on the service's own thread with its own backend connections.
  if (!proxyOpts_.writeBack) return;
  proxyOpts_.writeBack->start([this](asio::any_io_executor ex) {
    s3api::WriteBackService::Upstreams ups;
    for (const auto& uo : backends_) ups.push_back(std::make_unique<upstream::HttpUpstream>(ex, uo));
    return ups;
  });
}

void App::stopServices() {
  // Write-back: the gate closes, uploads in flight end, its thread is joined (what is left stays in the
  // journal and goes up after the next start).
  if (proxyOpts_.writeBack) proxyOpts_.writeBack->stop();
}

void App::buildMembership() {
  const auto& k = cfg_.cluster;
  adminCtx_->cluster.name = k.name;
  if (!k.enabled()) return;
  const std::string address = k.peerAdvertise.empty() ? k.peerListen : k.peerAdvertise;
  if (k.etcd.empty()) {
    auto members = cluster::parseStaticMembers(k.members);
    for (auto& m : members)
      if (m.id == k.nodeId) m.weight = k.weight;
    auto set = std::make_shared<const cluster::MemberSet>(std::move(members), k.nodeId);
    proxyOpts_.cluster.members = std::make_shared<cluster::StaticMembers>(std::move(set));
    spdlog::info("cluster '{}': static membership of {} node(s), this node '{}'", k.name, k.members.size(), k.nodeId);
  } else {
    cluster::MembershipOptions mo;
    mo.etcd = k.etcd;
    mo.cluster = k.name;
    mo.nodeId = k.nodeId;
    mo.address = address;
    mo.weight = k.weight;
    mo.leaseTtl = k.leaseTtl;
    mo.numbersInterval = std::max<std::chrono::milliseconds>(k.leaseTtl, std::chrono::seconds(5));
    mo.numbers = [c = cache_.get(), stats = proxyOpts_.cluster.stats] {
      cluster::MemberNumbers n;
      if (c && c->disk()) {
        const auto ds = c->disk()->index().stats();
        n.chunks = ds.entries;
        for (auto b : ds.dirBytes) n.bytes += b;
      }
      if (stats) {
        n.peerBytesServed = stats->bytesServed();
        n.peerBytesFetched = stats->bytesFetched();
      }
      return n;
    };
    membership_ = std::make_shared<cluster::Membership>(std::move(mo));
    proxyOpts_.cluster.members = membership_;
    membership_->start();
  }
  adminCtx_->cluster.members = proxyOpts_.cluster.members;
  adminCtx_->cluster.membership = membership_;
}

/// Leaves the cluster: the lease is revoked (bounded by the etcd call timeout) so that the others drop
/// this node at once; the published view stays readable for whatever still holds it.
void App::stopMembership() {
  if (membership_) membership_->stop();
}

void App::bindServers() {
  server_->bind();
  if (peer_) peer_->bind();
  if (!admin_) return;
  adminCtx_->cache = cache_.get();
  adminCtx_->spool = proxyOpts_.writeBack ? proxyOpts_.writeBack->spoolPtr() : nullptr;
  adminCtx_->token = cfg_.adminToken;
  adminCtx_->keys = keys_;
  adminCtx_->openConnections = [s = server_.get()] { return s->openConnections(); };
  admin_->bind();
}

bool App::start() {
  spdlog::set_level(spdlog::level::from_str(cfg_.logLevel));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  spdlog::flush_on(spdlog::level::info);  // access lines appear as requests finish
  warnIfReadableSecrets(configPath_, cfg_);
  try {  // start-up only: a port taken, a cache directory locked or unusable
    serverOpts_ = serverOptions(cfg_, parseListen(cfg_.listen));
    adminCtx_ = std::make_shared<admin::AdminContext>();
    buildBackends();
    proxyOpts_ = proxyOptions(cfg_);
    buildCluster();
    buildAccessLog();
    keys_ = std::make_shared<s3api::KeyStore>(keyTable(cfg_));
    workers_.resize(serverOpts_.threads);
    openServers();
    openCache();
    buildServices();
    buildMembership();
    bindServers();
    startServices();
  } catch (const std::exception& e) {
    std::cerr << "granary: cannot start: " << e.what() << "\n";
    return false;
  }
  announce();
  return true;
}

/// The start-up lines, on stdout, each written whole by one stdio call: the membership thread (and any
/// other) may already be logging to stdout, and a line split by its output cannot be read by scripts.
void App::announce() const {
  auto line = [](const std::string& text) {
    const std::string l = text + "\n";
    std::fwrite(l.data(), 1, l.size(), stdout);
    std::fflush(stdout);
  };
  std::cout.flush();
  const auto ep = server_->localEndpoint();
  const std::string host = ep.address().is_v6() ? "[" + ep.address().to_string() + "]" : ep.address().to_string();
  std::ostringstream os;
  os << "granary listening on http://" << host << ":" << ep.port() << " (backend " << cfg_.backend.endpoint
     << (cfg_.otherBackends.empty() ? "" : " and " + std::to_string(cfg_.otherBackends.size()) + " more") << ", "
     << serverOpts_.threads << " threads)";
  line(os.str());
  if (admin_) {
    const auto aep = admin_->localEndpoint();
    line("granary admin on http://" + aep.address().to_string() + ":" + std::to_string(aep.port()) + "/metrics" +
         (cfg_.adminToken.empty() ? " (no admin token: keep it on loopback)" : ""));
  }
  if (peer_) {
    const auto pep = peer_->localEndpoint();
    line("granary peer port on " + pep.address().to_string() + ":" + std::to_string(pep.port()) + " (node " +
         cfg_.cluster.nodeId + ")");
  }
}

/// SIGHUP: client keys with their policies, backend credentials and metadata TTLs; the rest needs a restart.
void App::reload() {
  if (configPath_.empty()) {
    spdlog::warn("SIGHUP: no --config file to reload");
    return;
  }
  Config fresh;
  try {  // configuration parsing (the file and its values); nothing else throws here
    fresh = reload_();
  } catch (const std::exception& e) {
    spdlog::error("SIGHUP: keeping the old configuration: {}", e.what());
    return;
  }
  keys_->set(keyTable(fresh));
  proxyOpts_.ttls->set(ttlTable(fresh));
  // Backend credentials live in each thread's signer: each thread swaps its own. Connections stay.
  const auto backends = allBackends(fresh);
  for (const auto& w : workers_)
    for (std::size_t b = 0; b < backends.size() && b < backends_.size(); ++b)
      asio::post(*w.ioc, [h = w.handler, b,
                          creds = sigv4::Credentials{backends[b]->accessKey, backends[b]->secretKey,
                                                     backends[b]->sessionToken}] { h->setBackendCredentials(b, creds); });
  for (const auto& [ioc, handler] : peerWorkers_)  // the peer port's threads read the backends too
    for (std::size_t b = 0; b < backends.size() && b < backends_.size(); ++b)
      asio::post(*ioc, [h = handler, b,
                        creds = sigv4::Credentials{backends[b]->accessKey, backends[b]->secretKey,
                                                   backends[b]->sessionToken}] { h->setBackendCredentials(b, creds); });
  for (std::size_t b = 0; proxyOpts_.writeBack && b < backends.size() && b < backends_.size(); ++b)  // the uploader's
    proxyOpts_.writeBack->setBackendCredentials(b, {backends[b]->accessKey, backends[b]->secretKey, backends[b]->sessionToken});
  warnUnreloadable(cfg_, fresh);
  spdlog::info("SIGHUP: reloaded {} client keys with their policies, backend credentials and metadata TTLs from {}",
               fresh.clientKeys.size(), configPath_);
}

/// The first SIGINT/SIGTERM: no admin job dispatches to the I/O threads any more, the S3 server drains
/// its requests (shutdown_timeout) and the admin server stops; run() returns when they have.
void App::beginShutdown(int sig) {
  spdlog::info("signal {}: shutting down (in-flight requests get {})", sig, formatDuration(cfg_.shutdownTimeout));
  if (adminCtx_->cacheAdmin) adminCtx_->cacheAdmin->shutdown();
  server_->shutdown();
  stopMembership();  // while the S3 server drains: the others stop choosing this node at once
  if (peer_) peer_->shutdown();
  if (admin_) admin_->shutdown();
}

void App::onSignal(int sig) {
  if (sig == SIGHUP) {
    reload();
  } else if (++stops_ == 1) {
    beginShutdown(sig);
  } else {
    spdlog::warn("second signal: exiting now");
    std::_Exit(130);
  }
}

void App::waitSignal(asio::signal_set& signals) {
  signals.async_wait([this, &signals](boost::system::error_code ec, int sig) {
    if (ec) return;
    onSignal(sig);
    waitSignal(signals);
  });
}

/// After the servers' threads have returned: the admin side, the services, the handlers (and their cache
/// threads), and last the cache, whose journals are flushed and compacted so that the next start is warm.
void App::shutdown() {
  stopMembership();
  admin_.reset();
  adminCtx_.reset();
  stopServices();
  server_.reset();
  peer_.reset();
  cache_->close();
  spdlog::info("stopped");
}

int App::run() {
  // Signals are taken on the main thread; the I/O threads run the servers.
  asio::io_context sigctx(1);
  asio::signal_set signals(sigctx, SIGINT, SIGTERM, SIGHUP);
  waitSignal(signals);
  std::thread adminThread;
  if (admin_) adminThread = std::thread([this] { admin_->run(); });
  std::thread peerThread;
  if (peer_) peerThread = std::thread([this] { peer_->run(); });
  std::thread io([&] {
    server_->run();
    asio::post(sigctx, [&] {
      signals.cancel();
      sigctx.stop();
    });
  });
  sigctx.run();
  io.join();
  if (adminThread.joinable()) adminThread.join();
  if (peerThread.joinable()) peerThread.join();
  shutdown();
  return 0;
}

}  // namespace granary

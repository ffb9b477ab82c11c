// granary: wires the concrete pieces (HTTP server, S3 proxy handler, backend client) together.

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <csignal>
#include <sys/stat.h>
#include <iostream>
#include <thread>

#include "cache/chunk_cache.h"
#include "common/log_escape.h"
#include "common/units.h"
#include "admin_handler.h"
#include "config.h"
#include "http/server.h"
#include "s3api/cache_admin.h"
#include "s3api/proxy_handler.h"
#include "s3api/request_stats.h"
#include "upstream/endpoint.h"
#include "upstream/http_upstream.h"

namespace {

using namespace granary;
namespace asio = boost::asio;

struct Flags {
  std::string config, checkConfig;
  std::string listen, adminListen, adminToken, domain, logLevel, accessLogFormat;
  std::uint32_t threads = 0;
  bool anonymous = false, accessLog = true;
  std::vector<std::string> clientKeys, regions;
  std::string endpoint, region, accessKey, secretKey, sessionToken, caFile;
  bool insecure = false;
  std::uint32_t maxConnections = 0, maxRetries = 0;
  std::string connectTimeout, backendReadTimeout, backendIdleTimeout;
  std::string idleTimeout, readTimeout, writeTimeout, shutdownTimeout, maxSkew;
  std::vector<std::string> cacheDirs;
  std::string ramCache, chunkSize, metadataTtl, staleIfError, writeBackDir;
  bool cacheStatusHeader = true;
};

std::uint64_t sizeFlag(const std::string& name, const std::string& v) {
  auto s = parseSize(v);
  if (!s) throw ConfigError("--" + name + ": '" + v + "' is not a size (use e.g. \"4MiB\", \"1GiB\")");
  return *s;
}

std::chrono::milliseconds durationFlag(const std::string& name, const std::string& v) {
  auto d = parseDuration(v);
  if (!d) throw ConfigError("--" + name + ": '" + v + "' is not a duration (use e.g. \"250ms\", \"30s\")");
  return *d;
}

/// Flags given on the command line override the file.
void applyFlags(const CLI::App& app, const Flags& f, Config& cfg) {
  auto given = [&](const char* name) { return app.count(name) > 0; };
  if (given("--listen")) cfg.listen = f.listen;
  if (given("--admin-listen")) cfg.adminListen = f.adminListen;
  if (given("--admin-token")) cfg.adminToken = f.adminToken;
  if (given("--threads")) cfg.threads = f.threads;
  if (given("--domain")) cfg.domain = f.domain;
  if (given("--region")) cfg.regions = f.regions;
  if (given("--anonymous")) cfg.anonymous = f.anonymous;
  if (given("--log-level")) cfg.logLevel = f.logLevel;
  if (given("--access-log")) cfg.accessLog = f.accessLog;
  if (given("--access-log-format")) cfg.accessLogFormat = f.accessLogFormat;
  for (const auto& k : f.clientKeys) cfg.clientKeys.push_back(parseClientKey(k));
  auto& b = cfg.backend;
  if (given("--backend-endpoint")) b.endpoint = f.endpoint;
  if (given("--backend-region")) b.region = f.region;
  if (given("--backend-access-key")) b.accessKey = f.accessKey;
  if (given("--backend-secret-key")) b.secretKey = f.secretKey;
  if (given("--backend-session-token")) b.sessionToken = f.sessionToken;
  if (given("--backend-ca-file")) b.caFile = f.caFile;
  if (given("--backend-insecure-skip-verify")) b.verifyTls = !f.insecure;
  if (given("--backend-max-connections")) b.maxConnections = f.maxConnections;
  if (given("--backend-max-retries")) b.maxRetries = f.maxRetries;
  if (given("--backend-connect-timeout")) b.connectTimeout = durationFlag("backend-connect-timeout", f.connectTimeout);
  if (given("--backend-read-timeout")) b.readTimeout = durationFlag("backend-read-timeout", f.backendReadTimeout);
  if (given("--backend-idle-timeout")) b.idleTimeout = durationFlag("backend-idle-timeout", f.backendIdleTimeout);
  if (given("--idle-timeout")) cfg.idleTimeout = durationFlag("idle-timeout", f.idleTimeout);
  if (given("--read-timeout")) cfg.readTimeout = durationFlag("read-timeout", f.readTimeout);
  if (given("--write-timeout")) cfg.writeTimeout = durationFlag("write-timeout", f.writeTimeout);
  if (given("--shutdown-timeout")) cfg.shutdownTimeout = durationFlag("shutdown-timeout", f.shutdownTimeout);
  if (given("--max-clock-skew")) cfg.maxSkew = durationFlag("max-clock-skew", f.maxSkew);
  auto& c = cfg.cache;
  if (given("--cache-dir")) {
    c.dirs.clear();
    for (const auto& d : f.cacheDirs) c.dirs.push_back(parseCacheDir(d));
  }
  if (given("--ram-cache")) c.ramBytes = sizeFlag("ram-cache", f.ramCache);
  if (given("--chunk-size")) c.chunkSize = sizeFlag("chunk-size", f.chunkSize);
  if (given("--metadata-ttl")) c.metadataTtl = durationFlag("metadata-ttl", f.metadataTtl);
  if (given("--stale-if-error")) c.staleIfError = durationFlag("stale-if-error", f.staleIfError);
  if (given("--cache-status-header")) c.statusHeader = f.cacheStatusHeader;
  if (given("--writeback-dir")) c.writeBack = parseCacheDir(f.writeBackDir);
}

void defineFlags(CLI::App& app, Flags& f) {
  app.add_option("--config", f.config, "TOML configuration file");
  app.add_option("--check-config", f.checkConfig, "Validate FILE, print the effective configuration, exit");
  app.add_option("--listen", f.listen, "Address to serve S3 on (default 127.0.0.1:9000)");
  app.add_option("--admin-listen", f.adminListen, "Address of the admin endpoint: /metrics, /healthz, /readyz, /admin/* (default 127.0.0.1:9001; \"\" = none)");
  app.add_option("--admin-token", f.adminToken, "Token the admin endpoint requires (Authorization: Bearer TOKEN; /healthz is open)");
  app.add_option("--threads", f.threads, "I/O threads (default: one per core)");
  app.add_option("--domain", f.domain, "Base domain of virtual-hosted-style addressing (bucket.DOMAIN)");
  app.add_option("--region", f.regions, "A region client signatures may name (repeatable; default: the backends' regions and us-east-1)");
  app.add_option("--anonymous", f.anonymous, "Allow unsigned requests (true/false)");
  app.add_option("--log-level", f.logLevel, "trace, debug, info, warn, error, off");
  app.add_option("--access-log", f.accessLog, "One log line per request (true/false)");
  app.add_option("--access-log-format", f.accessLogFormat, "Access lines as text (key=value), json or clf");
  app.add_option("--client-key", f.clientKeys, "Client credentials AK:SK (repeatable)");
  app.add_option("--backend-endpoint", f.endpoint, "Backend URL, http(s)://host[:port]");
  app.add_option("--backend-region", f.region, "Backend region (signing scope)");
  app.add_option("--backend-access-key", f.accessKey, "Backend access key");
  app.add_option("--backend-secret-key", f.secretKey, "Backend secret key");
  app.add_option("--backend-session-token", f.sessionToken, "Backend session token");
  app.add_option("--backend-ca-file", f.caFile, "PEM CA bundle for an https backend");
  app.add_option("--backend-insecure-skip-verify", f.insecure, "Do not verify the backend's certificate");
  app.add_option("--backend-max-connections", f.maxConnections, "Backend connections per I/O thread");
  app.add_option("--backend-max-retries", f.maxRetries, "Retries of failed idempotent backend requests");
  app.add_option("--backend-connect-timeout", f.connectTimeout, "e.g. 5s");
  app.add_option("--backend-read-timeout", f.backendReadTimeout, "e.g. 60s");
  app.add_option("--backend-idle-timeout", f.backendIdleTimeout, "Reuse idle backend connections younger than this");
  app.add_option("--idle-timeout", f.idleTimeout, "Client keep-alive idle timeout, e.g. 60s");
  app.add_option("--read-timeout", f.readTimeout, "Client header/body read timeout, e.g. 30s");
  app.add_option("--write-timeout", f.writeTimeout, "Client write timeout, e.g. 60s");
  app.add_option("--shutdown-timeout", f.shutdownTimeout, "Grace period for in-flight requests at shutdown");
  app.add_option("--max-clock-skew", f.maxSkew, "Largest accepted request-time skew (default 15m)");
  app.add_option("--cache-dir", f.cacheDirs, "Disk cache PATH:SIZE, e.g. /nvme0/granary:500GiB (repeatable)");
  app.add_option("--ram-cache", f.ramCache, "RAM tier size, e.g. 1GiB (default 0: none)");
  app.add_option("--chunk-size", f.chunkSize, "Cache chunk size (default 4MiB)");
  app.add_option("--metadata-ttl", f.metadataTtl, "Trust cached metadata this long: 60s (default), 0, forever");
  app.add_option("--stale-if-error", f.staleIfError,
                 "Serve cached objects this long past their TTL when the backend fails (default 1h; 0 = never)");
  app.add_option("--cache-status-header", f.cacheStatusHeader, "Send x-granary-cache on GET/HEAD (true/false)");
  app.add_option("--writeback-dir", f.writeBackDir, "Write-back spool PATH:SIZE (for write_mode = \"write-back\" buckets)");
}

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
  int p = -1;
  try {
    p = std::stoi(port);
  } catch (...) {
  }
  if (p < 0 || p > 65535) throw ConfigError("--listen: bad port '" + port + "'");
  return {addr, static_cast<unsigned short>(p)};
}

Config buildConfig(const CLI::App& app, const Flags& f, const std::string& file) {
  Config cfg;
  if (!file.empty()) loadConfigFile(file, cfg);
  applyFlags(app, f, cfg);
  applyEnvironment(cfg);
  validate(cfg);
  parseListen(cfg.listen);
  if (!cfg.adminListen.empty()) parseListen(cfg.adminListen);
  return cfg;
}

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

/// Write-back: the spool and its uploader, one service running on its own thread with its own backend
/// connections; main stops it once the server has drained (WriteBackService::stop).
std::shared_ptr<s3api::WriteBackService> startWriteBack(const Config& cfg,
                                                        const std::vector<upstream::HttpUpstreamOptions>& uos,
                                                        cache::ChunkCache* chunkCache,
                                                        std::shared_ptr<const s3api::BucketMap> buckets) {
  s3api::WriteBackServiceOptions wo;
  wo.uploadConcurrency = cfg.cache.writeBackUploadConcurrency;
  wo.retryMax = cfg.cache.writeBackRetryMax;
  wo.cache = chunkCache;
  wo.buckets = std::move(buckets);
  auto spool = std::make_shared<cache::WriteBackSpool>(
      cache::WriteBackOptions{cfg.cache.writeBack->path, cfg.cache.writeBack->size});
  auto service = std::make_shared<s3api::WriteBackService>(std::move(spool), std::move(wo));
  service->start([&uos](asio::any_io_executor ex) {
    s3api::WriteBackService::Upstreams ups;
    for (const auto& uo : uos) ups.push_back(std::make_unique<upstream::HttpUpstream>(ex, uo));
    return ups;
  });
  return service;
}

/// A handler with its thread, for work posted to it from elsewhere (SIGHUP, the admin API).
struct Worker {
  asio::io_context* ioc = nullptr;
  s3api::ProxyHandler* handler = nullptr;
};

}  // namespace

int adminMain(int argc, char** argv);  // admin_cli.cpp

int main(int argc, char** argv) {
  if (argc > 1 && std::string_view(argv[1]) == "admin") return adminMain(argc - 1, argv + 1);
  CLI::App app{"Granary: an S3-compatible caching reverse proxy"};
  app.footer("Operate a running Granary with: granary admin --help");
  Flags f;
  defineFlags(app, f);
  CLI11_PARSE(app, argc, argv);
  std::signal(SIGPIPE, SIG_IGN);

  if (!f.checkConfig.empty()) {
    try {
      auto cfg = buildConfig(app, f, f.checkConfig);
      std::cout << "# " << f.checkConfig << ": OK\n" << describe(cfg);
      return 0;
    } catch (const std::exception& e) {
      std::cerr << "granary: " << f.checkConfig << ": " << e.what() << "\n";
      return 2;
    }
  }

  Config cfg;
  asio::ip::tcp::endpoint listen;
  try {
    cfg = buildConfig(app, f, f.config);
    listen = parseListen(cfg.listen);
  } catch (const std::exception& e) {
    std::cerr << "granary: configuration error: " << e.what() << "\n";
    return 2;
  }
  spdlog::set_level(spdlog::level::from_str(cfg.logLevel));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  spdlog::flush_on(spdlog::level::info);  // access lines appear as requests finish
  warnIfReadableSecrets(f.config, cfg);

  const http::ServerOptions so = serverOptions(cfg, listen);
  auto adminCtx = std::make_shared<AdminContext>();
  std::vector<upstream::HttpUpstreamOptions> uos;
  for (const auto* b : allBackends(cfg)) {
    auto stats = std::make_shared<upstream::UpstreamStats>();
    uos.push_back(upstreamOptions(*b, stats));
    adminCtx->backends.push_back({b->name, uos.back().endpoint, stats});
  }
  s3api::ProxyOptions po = proxyOptions(cfg);
  if (cfg.accessLogFormat != "text") {
    // JSON and CLF lines carry nothing but themselves. spdlog's console sinks share one lock, so these
    // lines never interleave with the main log's.
    po.accessLogger = spdlog::stdout_logger_mt("access");
    po.accessLogger->set_pattern("%v");
    po.accessLogger->flush_on(spdlog::level::info);
  }
  auto keys = std::make_shared<s3api::KeyStore>(keyTable(cfg));
  std::vector<Worker> workers(so.threads);

  std::unique_ptr<cache::ChunkCache> chunkCache;
  std::unique_ptr<http::Server> server;
  std::unique_ptr<http::Server> admin;  // --admin-listen
  try {
    // The ports first: a second Granary started on a port this one holds fails at once, with a message
    // naming the address, before it opens (and waits on the lock of) any cache directory.
    server = std::make_unique<http::Server>(so, [&](asio::io_context& ioc, unsigned index) {
      std::vector<std::unique_ptr<upstream::Upstream>> ups;
      for (const auto& uo : uos) ups.push_back(std::make_unique<upstream::HttpUpstream>(ioc.get_executor(), uo));
      std::unique_ptr<cache::CacheThread> ct;
      if (chunkCache->enabled()) ct = std::make_unique<cache::CacheThread>(*chunkCache, ioc.get_executor());
      s3api::ProxyOptions threadOpts = po;
      threadOpts.requestStats = std::make_shared<s3api::RequestStats>();
      adminCtx->requestStats.push_back(threadOpts.requestStats);
      auto handler = std::make_unique<s3api::ProxyHandler>(std::move(threadOpts), keys, std::move(ups), std::move(ct));
      workers.at(index) = {&ioc, handler.get()};
      return handler;
    });
    server->listen();
    if (!cfg.adminListen.empty()) {
      http::ServerOptions ao = so;
      ao.listen = parseListen(cfg.adminListen);
      ao.threads = 1;
      admin = std::make_unique<http::Server>(ao, [&](asio::io_context& aioc, unsigned) {
        std::vector<s3api::AdminWorker> aw;
        for (const auto& w : workers) aw.push_back({w.ioc->get_executor(), w.handler});
        adminCtx->cacheAdmin = std::make_shared<s3api::CacheAdmin>(aioc.get_executor(), std::move(aw),
                                                                   chunkCache.get(), adminCtx->requestStats);
        return std::make_unique<AdminHandler>(adminCtx);
      });
      admin->listen();
    }

    cache::CacheOptions co;
    for (const auto& d : cfg.cache.dirs) co.dirs.push_back({d.path, d.size});
    co.ramBytes = cfg.cache.ramBytes;
    co.chunkSize = cfg.cache.chunkSize;
    chunkCache = std::make_unique<cache::ChunkCache>(std::move(co));
    if (cfg.cache.writeBack) po.writeBack = startWriteBack(cfg, uos, chunkCache.get(), po.buckets);  // stopped below
    spdlog::info("cache: {}", chunkCache->enabled() ? chunkCache->describe() : "off (no --cache-dir, no --ram-cache)");
    server->bind();
    if (admin) {
      adminCtx->cache = chunkCache.get();
      adminCtx->spool = po.writeBack ? po.writeBack->spoolPtr() : nullptr;
      adminCtx->token = cfg.adminToken;
      adminCtx->keys = keys;
      adminCtx->openConnections = [s = server.get()] { return s->openConnections(); };
      admin->bind();
    }
  } catch (const std::exception& e) {
    std::cerr << "granary: cannot start: " << e.what() << "\n";
    return 1;
  }
  const auto ep = server->localEndpoint();
  const std::string host = ep.address().is_v6() ? "[" + ep.address().to_string() + "]" : ep.address().to_string();
  std::cout << "granary listening on http://" << host << ":" << ep.port() << " (backend " << cfg.backend.endpoint
            << (cfg.otherBackends.empty() ? "" : " and " + std::to_string(cfg.otherBackends.size()) + " more") << ", "
            << so.threads << " threads)" << std::endl;
  if (admin) {
    const auto aep = admin->localEndpoint();
    std::cout << "granary admin on http://" << aep.address().to_string() << ":" << aep.port() << "/metrics"
              << (cfg.adminToken.empty() ? " (no admin token: keep it on loopback)" : "") << std::endl;
  }

  // Signals are taken on the main thread; the I/O threads run the server.
  asio::io_context sigctx(1);
  asio::signal_set signals(sigctx, SIGINT, SIGTERM, SIGHUP);
  int stops = 0;
  std::function<void(boost::system::error_code, int)> onSignal = [&](boost::system::error_code ec, int sig) {
    if (ec) return;
    if (sig == SIGHUP) {
      if (f.config.empty()) {
        spdlog::warn("SIGHUP: no --config file to reload");
      } else {
        try {
          Config fresh = buildConfig(app, f, f.config);
          keys->set(keyTable(fresh));
          po.ttls->set(ttlTable(fresh));
          // Backend credentials live in each thread's signer: each thread swaps its own. Connections stay.
          const auto backends = allBackends(fresh);
          for (const auto& w : workers)
            for (std::size_t b = 0; b < backends.size() && b < uos.size(); ++b)
              asio::post(*w.ioc, [h = w.handler, b, creds = sigv4::Credentials{backends[b]->accessKey, backends[b]->secretKey,
                                                                              backends[b]->sessionToken}] {
                h->setBackendCredentials(b, creds);
              });
          for (std::size_t b = 0; po.writeBack && b < backends.size() && b < uos.size(); ++b)  // the uploader's own
            po.writeBack->setBackendCredentials(b, {backends[b]->accessKey, backends[b]->secretKey, backends[b]->sessionToken});
          warnUnreloadable(cfg, fresh);
          spdlog::info("SIGHUP: reloaded {} client keys with their policies, backend credentials and metadata TTLs from {}",
                       fresh.clientKeys.size(), f.config);
        } catch (const std::exception& e) {
          spdlog::error("SIGHUP: keeping the old configuration: {}", e.what());
        }
      }
    } else if (++stops == 1) {
      spdlog::info("signal {}: shutting down (in-flight requests get {})", sig, formatDuration(cfg.shutdownTimeout));
      if (adminCtx->cacheAdmin) adminCtx->cacheAdmin->shutdown();  // no preload work reaches the I/O threads now
      server->shutdown();
      if (admin) admin->shutdown();
    } else {
      spdlog::warn("second signal: exiting now");
      std::_Exit(130);
    }
    signals.async_wait(onSignal);
  };
  signals.async_wait(onSignal);
  std::thread adminThread;
  if (admin) adminThread = std::thread([&] { admin->run(); });
  std::thread io([&] {
    server->run();
    asio::post(sigctx, [&] { signals.cancel(); sigctx.stop(); });
  });
  sigctx.run();
  io.join();
  if (adminThread.joinable()) adminThread.join();
  admin.reset();
  adminCtx.reset();
  if (po.writeBack) po.writeBack->stop();  // write-back: gate closed, in-flight uploads end, thread joined
  server.reset();       // handlers (and their cache threads) go before the cache
  chunkCache->close();  // journals flushed and compacted: the next start is warm
  spdlog::info("stopped");
  return 0;
}

// granary: reads the command line and the configuration into a Config, then runs the App that builds and
// wires the modules (app.h). `granary admin ...` is the admin API's command line (admin/admin_cli.h).

#include <CLI/CLI.hpp>

#include <csignal>
#include <iostream>

#include "admin/admin_cli.h"
#include "app.h"
#include "common/units.h"
#include "config.h"

namespace {

using namespace granary;

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
  bool cacheStatusHeader = true, directIo = true;
  std::vector<std::string> clusterEtcd, clusterMembers;
  std::string clusterName, nodeId, peerListen, peerAdvertise, clusterSecret, clusterSecretFile;
  double nodeWeight = 1.0;
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
  if (given("--direct-io")) c.directIo = f.directIo;
  if (given("--chunk-size")) c.chunkSize = sizeFlag("chunk-size", f.chunkSize);
  if (given("--metadata-ttl")) c.metadataTtl = durationFlag("metadata-ttl", f.metadataTtl);
  if (given("--stale-if-error")) c.staleIfError = durationFlag("stale-if-error", f.staleIfError);
  if (given("--cache-status-header")) c.statusHeader = f.cacheStatusHeader;
  if (given("--writeback-dir")) c.writeBack = parseCacheDir(f.writeBackDir);
  auto& k = cfg.cluster;
  if (given("--cluster-etcd")) k.etcd = f.clusterEtcd;
  if (given("--cluster-member")) k.members = f.clusterMembers;
  if (given("--cluster-name")) k.name = f.clusterName;
  if (given("--node-id")) k.nodeId = f.nodeId;
  if (given("--peer-listen")) k.peerListen = f.peerListen;
  if (given("--peer-advertise")) k.peerAdvertise = f.peerAdvertise;
  if (given("--cluster-secret")) k.secret = f.clusterSecret;
  if (given("--cluster-secret-file")) {
    k.secretFile = f.clusterSecretFile;
    if (!given("--cluster-secret")) k.secret.clear();  // the file given here wins over a secret in the config file
  }
  if (given("--node-weight")) k.weight = f.nodeWeight;
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
  app.add_option("--direct-io", f.directIo,
                 "Disk tier files O_DIRECT (true, default) or through the page cache (false)");
  app.add_option("--chunk-size", f.chunkSize, "Cache chunk size (default 4MiB)");
  app.add_option("--metadata-ttl", f.metadataTtl, "Trust cached metadata this long: 60s (default), 0, forever");
  app.add_option("--stale-if-error", f.staleIfError,
                 "Serve cached objects this long past their TTL when the backend fails (default 1h; 0 = never)");
  app.add_option("--cache-status-header", f.cacheStatusHeader, "Send x-granary-cache on GET/HEAD (true/false)");
  app.add_option("--writeback-dir", f.writeBackDir, "Write-back spool PATH:SIZE (for write_mode = \"write-back\" buckets)");
  app.add_option("--cluster-etcd", f.clusterEtcd, "etcd v3 gateway URL of the cluster, e.g. http://127.0.0.1:2379 (repeatable)");
  app.add_option("--cluster-member", f.clusterMembers, "A fixed member ID=ADDR:PORT instead of etcd (repeatable; this node's too)");
  app.add_option("--cluster-name", f.clusterName, "The cluster's name (its prefix in etcd; default granary)");
  app.add_option("--node-id", f.nodeId, "This node's id in the cluster (default: the host name)");
  app.add_option("--peer-listen", f.peerListen, "Address of the peer port other nodes fetch chunks from, ADDR:PORT");
  app.add_option("--peer-advertise", f.peerAdvertise, "Address other nodes dial for the peer port (default: --peer-listen)");
  app.add_option("--cluster-secret", f.clusterSecret, "Shared secret peer requests are signed with (HMAC-SHA256)");
  app.add_option("--cluster-secret-file", f.clusterSecretFile, "File holding the cluster secret (its first line)");
  app.add_option("--node-weight", f.nodeWeight, "This node's share of chunk ownership (default 1)");
}

Config buildConfig(const CLI::App& app, const Flags& f, const std::string& file) {
  Config cfg;
  if (!file.empty()) loadConfigFile(file, cfg);
  applyFlags(app, f, cfg);
  applyEnvironment(cfg);
  validate(cfg);
  parseListen(cfg.listen);
  if (!cfg.adminListen.empty()) parseListen(cfg.adminListen);
  if (cfg.cluster.enabled()) {
    parseListen(cfg.cluster.peerListen);
    parseListen(cfg.cluster.peerAdvertise);
  }
  return cfg;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string_view(argv[1]) == "admin") return admin::adminMain(argc - 1, argv + 1);
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
  try {
    cfg = buildConfig(app, f, f.config);
  } catch (const std::exception& e) {
    std::cerr << "granary: configuration error: " << e.what() << "\n";
    return 2;
  }
  granary::App proxy(std::move(cfg), f.config, [&] { return buildConfig(app, f, f.config); });
  if (!proxy.start()) return 1;
  return proxy.run();
}

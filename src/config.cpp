#include "config.h"

#include "cluster/membership_record.h"
#include "s3api/policy.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <set>
#include <cstdio>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "common/units.h"
#include "upstream/endpoint.h"

namespace granary {
namespace {

void checkKeys(const toml::table& t, const std::set<std::string>& known, const std::string& where) {
  for (const auto& [k, v] : t) {
    std::string key(k.str());
    if (!known.count(key))
      throw ConfigError("unknown key '" + where + key + "'");
  }
}

std::string getString(const toml::table& t, const char* key, const std::string& where, const std::string& def) {
  auto node = t.get(key);
  if (!node) return def;
  if (!node->is_string()) throw ConfigError("'" + where + key + "' must be a string");
  return node->value<std::string>().value();
}

bool getBool(const toml::table& t, const char* key, const std::string& where, bool def) {
  auto node = t.get(key);
  if (!node) return def;
  if (!node->is_boolean()) throw ConfigError("'" + where + key + "' must be true or false");
  return node->value<bool>().value();
}

std::uint32_t getUint(const toml::table& t, const char* key, const std::string& where, std::uint32_t def) {
  auto node = t.get(key);
  if (!node) return def;
  if (!node->is_integer()) throw ConfigError("'" + where + key + "' must be an integer");
  auto v = node->value<std::int64_t>().value();
  if (v < 0 || v > 1'000'000) throw ConfigError("'" + where + key + "' is out of range");
  return static_cast<std::uint32_t>(v);
}

std::chrono::milliseconds getDuration(const toml::table& t, const char* key, const std::string& where,
                                      std::chrono::milliseconds def) {
  auto node = t.get(key);
  if (!node) return def;
  if (node->is_integer()) return std::chrono::seconds(node->value<std::int64_t>().value());
  if (!node->is_string()) throw ConfigError("'" + where + key + "' must be a duration such as \"30s\"");
  auto d = parseDuration(node->value<std::string>().value());
  if (!d) throw ConfigError("'" + where + key + "' is not a duration (use e.g. \"250ms\", \"30s\", \"5m\")");
  return *d;
}

std::string mask(const std::string& s) { return s.empty() ? "" : "********"; }

}  // namespace

/// A TOML basic string: quotes, backslashes and control characters escaped.
std::string quoted(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04X", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

namespace {

std::uint64_t getSize(const toml::table& t, const char* key, const std::string& where, std::uint64_t def) {
  auto node = t.get(key);
  if (!node) return def;
  if (node->is_integer() && node->value<std::int64_t>().value() >= 0)
    return static_cast<std::uint64_t>(node->value<std::int64_t>().value());
  if (!node->is_string()) throw ConfigError("'" + where + key + "' must be a size such as \"4MiB\"");
  auto v = parseSize(node->value<std::string>().value());
  if (!v) throw ConfigError("'" + where + key + "' is not a size (use e.g. \"64KiB\", \"4MiB\", \"500GiB\")");
  return *v;
}

void loadBackend(const toml::table& t, const std::string& where, BackendConfig& b) {
  checkKeys(t, {"name", "default", "endpoint", "region", "access_key", "secret_key", "session_token", "ca_file",
                "verify_tls", "max_connections", "connect_timeout", "read_timeout", "idle_timeout", "max_retries",
                "addressing"},
            where);
  b.name = getString(t, "name", where, b.name);
  b.endpoint = getString(t, "endpoint", where, b.endpoint);
  b.region = getString(t, "region", where, b.region);
  b.accessKey = getString(t, "access_key", where, b.accessKey);
  b.secretKey = getString(t, "secret_key", where, b.secretKey);
  b.sessionToken = getString(t, "session_token", where, b.sessionToken);
  b.caFile = getString(t, "ca_file", where, b.caFile);
  b.verifyTls = getBool(t, "verify_tls", where, b.verifyTls);
  b.maxConnections = getUint(t, "max_connections", where, b.maxConnections);
  b.connectTimeout = getDuration(t, "connect_timeout", where, b.connectTimeout);
  b.readTimeout = getDuration(t, "read_timeout", where, b.readTimeout);
  b.idleTimeout = getDuration(t, "idle_timeout", where, b.idleTimeout);
  b.maxRetries = getUint(t, "max_retries", where, b.maxRetries);
  const std::string addressing = getString(t, "addressing", where, b.virtualHosted ? "virtual" : "path");
  if (addressing != "path" && addressing != "virtual")
    throw ConfigError("'" + where + "addressing' must be \"path\" or \"virtual\"");
  b.virtualHosted = addressing == "virtual";
}

WriteMode parseWriteMode(const std::string& v, const std::string& where) {
  if (v == "write-through") return WriteMode::Through;
  if (v == "write-around") return WriteMode::Around;
  if (v == "write-back") return WriteMode::Back;
  throw ConfigError("'" + where + "write_mode' must be \"write-through\", \"write-around\" or \"write-back\"");
}

BucketConfig loadBucket(const toml::table& t, const std::string& where) {
  checkKeys(t, {"name", "backend", "backend_bucket", "write_mode", "metadata_ttl", "stale_if_error", "cache"}, where);
  BucketConfig b;
  b.name = getString(t, "name", where, "");
  if (b.name.empty()) throw ConfigError("'" + where + "name' is required in [[bucket]] blocks");
  b.backend = getString(t, "backend", where, "");
  b.backendBucket = getString(t, "backend_bucket", where, "");
  b.writeMode = parseWriteMode(getString(t, "write_mode", where, "write-through"), where);
  if (t.get("metadata_ttl")) b.metadataTtl = getDuration(t, "metadata_ttl", where, {});
  if (t.get("stale_if_error")) b.staleIfError = getDuration(t, "stale_if_error", where, {});
  b.cache = getBool(t, "cache", where, true);
  return b;
}

void loadCache(const toml::table& t, CacheConfig& c) {
  const std::string where = "cache.";
  checkKeys(t, {"cache_dir", "ram_cache", "direct_io", "chunk_size", "metadata_ttl", "stale_if_error", "status_header",
                "parallel_fills", "max_fills", "read_ahead", "writeback_dir", "writeback_retry_max",
                "writeback_upload_concurrency"},
            where);
  if (auto* dirs = t.get("cache_dir")) {
    auto* arr = dirs->as_array();
    if (!arr) throw ConfigError("'cache.cache_dir' must be an array of \"PATH:SIZE\" strings");
    c.dirs.clear();
    for (auto& el : *arr) {
      if (!el.is_string()) throw ConfigError("'cache.cache_dir' must be an array of \"PATH:SIZE\" strings");
      c.dirs.push_back(parseCacheDir(el.value<std::string>().value()));
    }
  }
  c.ramBytes = getSize(t, "ram_cache", where, c.ramBytes);
  c.directIo = getBool(t, "direct_io", where, c.directIo);
  c.chunkSize = getSize(t, "chunk_size", where, c.chunkSize);
  c.metadataTtl = getDuration(t, "metadata_ttl", where, c.metadataTtl);
  c.staleIfError = getDuration(t, "stale_if_error", where, c.staleIfError);
  c.statusHeader = getBool(t, "status_header", where, c.statusHeader);
  c.parallelFills = getUint(t, "parallel_fills", where, c.parallelFills);
  c.maxFills = getUint(t, "max_fills", where, c.maxFills);
  c.readAhead = getUint(t, "read_ahead", where, c.readAhead);
  if (t.get("writeback_dir")) c.writeBack = parseCacheDir(getString(t, "writeback_dir", where, ""));
  c.writeBackRetryMax = getDuration(t, "writeback_retry_max", where, c.writeBackRetryMax);
  c.writeBackUploadConcurrency = getUint(t, "writeback_upload_concurrency", where, c.writeBackUploadConcurrency);
}

}  // namespace

CacheDirConfig parseCacheDir(const std::string& s) {
  const auto colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size())
    throw ConfigError("cache directory '" + s + "' must be PATH:SIZE, e.g. /nvme0/granary:500GiB");
  auto size = parseSize(s.substr(colon + 1));
  if (!size || *size == 0) throw ConfigError("cache directory '" + s + "': '" + s.substr(colon + 1) + "' is not a size");
  return {s.substr(0, colon), *size};
}

ClientKeyConfig parseClientKey(const std::string& s) {
  auto colon = s.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size())
    throw ConfigError("client key '" + s.substr(0, colon) + "' must be ACCESS_KEY:SECRET_KEY");
  ClientKeyConfig k;
  k.accessKey = s.substr(0, colon);
  k.secretKey = s.substr(colon + 1);
  return k;
}

namespace {
std::vector<std::string> getStringList(const toml::table& t, const char* key, const std::string& where) {
  std::vector<std::string> out;
  const auto* node = t.get(key);
  if (!node) return out;
  const std::string what = "'" + where + key + "' must be a string or an array of strings";
  if (node->is_string()) {
    out.push_back(node->value<std::string>().value());
    return out;
  }
  const auto* arr = node->as_array();
  if (!arr) throw ConfigError(what);
  for (const auto& el : *arr) {
    if (!el.is_string()) throw ConfigError(what);
    out.push_back(el.value<std::string>().value());
  }
  return out;
}

void loadCluster(const toml::table& t, ClusterConfig& c) {
  const std::string where = "cluster.";
  checkKeys(t, {"etcd", "name", "node_id", "peer_listen", "peer_advertise", "secret", "secret_file", "weight",
                "members", "lease_ttl", "peer_connect_timeout", "peer_read_timeout", "peer_auth_window"},
            where);
  if (t.get("etcd")) c.etcd = getStringList(t, "etcd", where);
  c.name = getString(t, "name", where, c.name);
  c.nodeId = getString(t, "node_id", where, c.nodeId);
  c.peerListen = getString(t, "peer_listen", where, c.peerListen);
  c.peerAdvertise = getString(t, "peer_advertise", where, c.peerAdvertise);
  c.secret = getString(t, "secret", where, c.secret);
  c.secretFile = getString(t, "secret_file", where, c.secretFile);
  if (const auto* w = t.get("weight")) {
    if (auto d = w->value<double>()) c.weight = *d;
    else throw ConfigError("'cluster.weight' must be a number");
  }
  if (t.get("members")) c.members = getStringList(t, "members", where);
  c.leaseTtl = getDuration(t, "lease_ttl", where, c.leaseTtl);
  c.peerConnectTimeout = getDuration(t, "peer_connect_timeout", where, c.peerConnectTimeout);
  c.peerReadTimeout = getDuration(t, "peer_read_timeout", where, c.peerReadTimeout);
  c.peerAuthWindow = getDuration(t, "peer_auth_window", where, c.peerAuthWindow);
}

ClientKeyConfig loadClientKey(const toml::table& t, const std::string& where) {
  checkKeys(t, {"access_key", "secret_key", "admin", "allow", "backend_access_key", "backend_secret_key",
                "backend_session_token"}, where);
  ClientKeyConfig k;
  k.accessKey = getString(t, "access_key", where, "");
  k.secretKey = getString(t, "secret_key", where, "");
  if (k.accessKey.empty() || k.secretKey.empty())
    throw ConfigError("'" + where + "access_key' and 'secret_key' are both required");
  k.admin = getBool(t, "admin", where, false);
  k.backendAccessKey = getString(t, "backend_access_key", where, "");
  k.backendSecretKey = getString(t, "backend_secret_key", where, "");
  k.backendSessionToken = getString(t, "backend_session_token", where, "");
  if (k.backendAccessKey.empty() != k.backendSecretKey.empty())
    throw ConfigError("'" + where + "backend_access_key' and 'backend_secret_key' go together");
  if (const auto* allow = t.get("allow")) {
    const auto* arr = allow->as_array();
    if (!arr) throw ConfigError("'" + where + "allow' must be an array of tables: [[client_keys.allow]]");
    k.allow.emplace();
    std::size_t i = 0;
    for (const auto& el : *arr) {
      const std::string at = where + "allow[" + std::to_string(i++) + "].";
      const auto* st = el.as_table();
      if (!st) throw ConfigError("'" + at.substr(0, at.size() - 1) + "' must be a table");
      checkKeys(*st, {"actions", "resources"}, at);
      PolicyStatementConfig s;
      s.actions = getStringList(*st, "actions", at);
      s.resources = getStringList(*st, "resources", at);
      try {  // the same reading the proxy does, so a mistake is refused here with its place named
        s3api::AccessPolicy({{s.actions, s.resources}}, false);
      } catch (const s3api::PolicyError& e) {
        throw ConfigError("'" + at.substr(0, at.size() - 1) + "': " + e.what());
      }
      k.allow->push_back(std::move(s));
    }
  }
  return k;
}
/// `backend`: one [backend] table, or [[backend]] blocks of which one (default = true, else the first) covers
/// the buckets no [[bucket]] block names.
void loadBackends(const toml::node& backend, Config& cfg) {
  if (const auto* t = backend.as_table()) {
    loadBackend(*t, "backend.", cfg.backend);
  } else if (const auto* arr = backend.as_array()) {
    // [[backend]] blocks: the one marked default = true (else the first) covers unlisted buckets.
    std::vector<BackendConfig> all;
    std::size_t defaultAt = 0, defaults = 0;
    for (std::size_t i = 0; i < arr->size(); ++i) {
      const std::string where = "backend[" + std::to_string(i) + "].";
      const auto* bt = arr->get(i)->as_table();
      if (!bt) throw ConfigError("'" + where.substr(0, where.size() - 1) + "' must be a table");
      BackendConfig b;
      b.name.clear();
      if (getBool(*bt, "default", where, false)) {
        defaultAt = i;
        ++defaults;
      }
      loadBackend(*bt, where, b);
      if (b.name.empty()) throw ConfigError("'" + where + "name' is required in [[backend]] blocks");
      all.push_back(std::move(b));
    }
    if (all.empty()) throw ConfigError("'backend' must hold at least one [[backend]] block");
    if (defaults > 1) throw ConfigError("only one [[backend]] block may say default = true");
    cfg.backend = std::move(all[defaultAt]);
    cfg.otherBackends.clear();
    for (std::size_t i = 0; i < all.size(); ++i)
      if (i != defaultAt) cfg.otherBackends.push_back(std::move(all[i]));
  } else {
    throw ConfigError("'backend' must be a table ([backend]) or an array of tables ([[backend]])");
  }
}

}  // namespace

void loadConfigFile(const std::string& path, Config& cfg) {
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    std::ostringstream os;
    os << path << ":" << e.source().begin.line << ":" << e.source().begin.column << ": " << e.description();
    throw ConfigError(os.str());
  }
  checkKeys(root, {"listen", "admin_listen", "admin_token", "threads", "domain", "regions", "anonymous", "log_level",
                   "access_log", "access_log_format", "server", "backend", "bucket", "client_keys", "cache", "cluster"},
            "");
  cfg.listen = getString(root, "listen", "", cfg.listen);
  cfg.adminListen = getString(root, "admin_listen", "", cfg.adminListen);
  cfg.adminToken = getString(root, "admin_token", "", cfg.adminToken);
  cfg.threads = getUint(root, "threads", "", cfg.threads);
  cfg.domain = getString(root, "domain", "", cfg.domain);
  if (auto* regions = root.get("regions")) {
    const auto* arr = regions->as_array();
    if (!arr) throw ConfigError("'regions' must be an array of region names, e.g. [\"us-east-1\"]");
    cfg.regions.clear();
    for (auto& el : *arr) {
      if (!el.is_string()) throw ConfigError("'regions' must be an array of region names, e.g. [\"us-east-1\"]");
      cfg.regions.push_back(el.value<std::string>().value());
    }
  }
  cfg.anonymous = getBool(root, "anonymous", "", cfg.anonymous);
  cfg.logLevel = getString(root, "log_level", "", cfg.logLevel);
  cfg.accessLog = getBool(root, "access_log", "", cfg.accessLog);
  cfg.accessLogFormat = getString(root, "access_log_format", "", cfg.accessLogFormat);

  if (auto* server = root.get("server")) {
    if (!server->is_table()) throw ConfigError("'server' must be a table");
    const auto& t = *server->as_table();
    checkKeys(t, {"idle_timeout", "read_timeout", "write_timeout", "shutdown_timeout", "max_clock_skew"}, "server.");
    cfg.idleTimeout = getDuration(t, "idle_timeout", "server.", cfg.idleTimeout);
    cfg.readTimeout = getDuration(t, "read_timeout", "server.", cfg.readTimeout);
    cfg.writeTimeout = getDuration(t, "write_timeout", "server.", cfg.writeTimeout);
    cfg.shutdownTimeout = getDuration(t, "shutdown_timeout", "server.", cfg.shutdownTimeout);
    cfg.maxSkew = getDuration(t, "max_clock_skew", "server.", cfg.maxSkew);
  }
  if (auto* backend = root.get("backend")) loadBackends(*backend, cfg);
  if (auto* buckets = root.get("bucket")) {
    const auto* arr = buckets->as_array();
    if (!arr) throw ConfigError("'bucket' must be an array of tables: [[bucket]]");
    cfg.buckets.clear();
    for (std::size_t i = 0; i < arr->size(); ++i) {
      const std::string where = "bucket[" + std::to_string(i) + "].";
      const auto* bt = arr->get(i)->as_table();
      if (!bt) throw ConfigError("'" + where.substr(0, where.size() - 1) + "' must be a table");
      cfg.buckets.push_back(loadBucket(*bt, where));
    }
  }
  if (auto* c = root.get("cache")) {
    if (!c->is_table()) throw ConfigError("'cache' must be a table");
    loadCache(*c->as_table(), cfg.cache);
  }
  if (auto* c = root.get("cluster")) {
    if (!c->is_table()) throw ConfigError("'cluster' must be a table");
    loadCluster(*c->as_table(), cfg.cluster);
  }
  if (auto* keys = root.get("client_keys")) {
    auto* arr = keys->as_array();
    if (!arr) throw ConfigError("'client_keys' must be an array of tables: [[client_keys]]");
    std::size_t i = 0;
    for (auto& el : *arr) {
      std::string where = "client_keys[" + std::to_string(i++) + "].";
      auto* t = el.as_table();
      if (!t) throw ConfigError("'" + where.substr(0, where.size() - 1) + "' must be a table");
      cfg.clientKeys.push_back(loadClientKey(*t, where));
    }
  }
}

void applyEnvironment(Config& cfg) {
  auto env = [](const char* n) -> std::string {
    const char* v = std::getenv(n);
    return v ? v : "";
  };
  auto& b = cfg.backend;
  if (b.accessKey.empty() && b.secretKey.empty()) {
    b.accessKey = env("AWS_ACCESS_KEY_ID");
    b.secretKey = env("AWS_SECRET_ACCESS_KEY");
    if (b.sessionToken.empty()) b.sessionToken = env("AWS_SESSION_TOKEN");
  }
  std::string region = env("AWS_REGION");
  if (region.empty()) region = env("AWS_DEFAULT_REGION");
  if (region.empty()) region = "us-east-1";
  if (b.region.empty()) b.region = region;
  for (auto& o : cfg.otherBackends)
    if (o.region.empty()) o.region = region;
  auto& k = cfg.cluster;
  if (k.nodeId.empty()) {
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) == 0) k.nodeId = host;
  }
  if (k.peerAdvertise.empty()) k.peerAdvertise = k.peerListen;
  if (k.secret.empty() && !k.secretFile.empty()) {
    std::ifstream f(k.secretFile);
    if (!f) throw ConfigError("'cluster.secret_file': cannot read " + k.secretFile);
    std::getline(f, k.secret);
    while (!k.secret.empty() && (k.secret.back() == '\r' || k.secret.back() == ' ')) k.secret.pop_back();
  }
}

void validateBackend(const BackendConfig& b, const std::string& where) {
  if (!upstream::parseEndpoint(b.endpoint))
    throw ConfigError("'" + where + "endpoint' must be http(s)://host[:port] (got '" + b.endpoint + "')");
  if (b.accessKey.empty() != b.secretKey.empty())
    throw ConfigError("'" + where + "access_key' and '" + where + "secret_key' must be set together");
  if (b.maxConnections == 0) throw ConfigError("'" + where + "max_connections' must be at least 1");
}

namespace {
void validateCluster(const ClusterConfig& k) {
  if (!k.enabled()) return;
  if (!k.etcd.empty() && !k.members.empty())
    throw ConfigError("'cluster.etcd' and 'cluster.members' exclude each other: etcd finds the members itself");
  for (const auto& u : k.etcd)
    if (u.rfind("http://", 0) != 0 || u.size() <= 7)
      throw ConfigError("'cluster.etcd': '" + u + "' must be an http:// URL of etcd's v3 gateway");
  if (k.peerListen.empty()) throw ConfigError("[cluster] needs 'peer_listen' (or --peer-listen ADDR:PORT)");
  if (k.secret.empty()) throw ConfigError("[cluster] needs 'secret' or 'secret_file' (or --cluster-secret)");
  if (k.secret.size() < 16) throw ConfigError("'cluster.secret' must be at least 16 characters");
  // A node id is what etcd records and peer requests carry (cluster::validNodeId); a cluster name is spelt
  // the same way.
  if (!cluster::validNodeId(k.nodeId))
    throw ConfigError("'cluster.node_id' must be 1-128 letters, digits, '-', '_' or '.'");
  if (!cluster::validNodeId(k.name))
    throw ConfigError("'cluster.name' must be 1-128 letters, digits, '-', '_' or '.'");
  if (!(k.weight >= 0.01 && k.weight <= 100)) throw ConfigError("'cluster.weight' must be between 0.01 and 100");
  if (k.leaseTtl < std::chrono::seconds(2) || k.leaseTtl > std::chrono::minutes(5))
    throw ConfigError("'cluster.lease_ttl' must be between 2s and 5m");
  bool self = k.members.empty();
  for (const auto& m : k.members) {
    const auto eq = m.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == m.size())
      throw ConfigError("'cluster.members': '" + m + "' must be ID=ADDR:PORT");
    if (m.substr(0, eq) == k.nodeId) self = true;
  }
  if (!self) throw ConfigError("'cluster.members' must list this node ('" + k.nodeId + "') too");
}
}  // namespace

void validate(const Config& cfg) {
  if (cfg.accessLogFormat != "text" && cfg.accessLogFormat != "json" && cfg.accessLogFormat != "clf")
    throw ConfigError("'access_log_format' must be \"text\", \"json\" or \"clf\" (got '" + cfg.accessLogFormat + "')");
  validateBackend(cfg.backend, "backend.");
  if (cfg.backend.accessKey.empty())
    throw ConfigError("no backend credentials: set backend.access_key/secret_key, --backend-access-key/"
                      "--backend-secret-key, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY");
  std::set<std::string> names{cfg.backend.name};
  for (const auto& o : cfg.otherBackends) {
    const std::string where = "backend '" + o.name + "' ";
    validateBackend(o, "backend(" + o.name + ").");
    if (o.accessKey.empty()) throw ConfigError("backend '" + o.name + "' has no access_key/secret_key");
    if (!names.insert(o.name).second) throw ConfigError("two [[backend]] blocks are named '" + o.name + "'");
  }
  std::set<std::string> bucketNames;
  for (const auto& b : cfg.buckets) {
    if (!bucketNames.insert(b.name).second) throw ConfigError("two [[bucket]] blocks are named '" + b.name + "'");
    if (!b.backend.empty() && !names.count(b.backend))
      throw ConfigError("bucket '" + b.name + "': no [[backend]] is named '" + b.backend + "'");
    if (b.writeMode == WriteMode::Back && !cfg.cache.writeBack)
      throw ConfigError("bucket '" + b.name + "': write_mode = \"write-back\" needs a spool: cache.writeback_dir = "
                        "\"PATH:SIZE\" (or --writeback-dir)");
  }
  for (const auto& r : cfg.regions)
    if (r.empty() || r.size() > 64 ||
        !std::all_of(r.begin(), r.end(), [](char ch) { return std::isalnum(static_cast<unsigned char>(ch)) || ch == '-'; }))
      throw ConfigError("'regions': '" + r + "' is not a region name (letters, digits and '-')");
  if (cfg.clientKeys.empty() && !cfg.anonymous)
    throw ConfigError("no client keys: add [[client_keys]] or --client-key AK:SK (or set anonymous = true)");
  const auto& c = cfg.cache;
  if (c.chunkSize < 64 * 1024 || c.chunkSize > (64u << 20) || c.chunkSize % 4096 != 0)
    throw ConfigError("'cache.chunk_size' must be a multiple of 4KiB between 64KiB and 64MiB");
  if (c.parallelFills == 0) throw ConfigError("'cache.parallel_fills' must be at least 1");
  if (c.writeBackUploadConcurrency == 0 || c.writeBackUploadConcurrency > 256)
    throw ConfigError("'cache.writeback_upload_concurrency' must be between 1 and 256");
  if (c.maxFills < c.parallelFills) throw ConfigError("'cache.max_fills' must be at least 'cache.parallel_fills'");
  validateCluster(cfg.cluster);
  if (cfg.logLevel != "trace" && cfg.logLevel != "debug" && cfg.logLevel != "info" && cfg.logLevel != "warn" &&
      cfg.logLevel != "error" && cfg.logLevel != "off")
    throw ConfigError("'log_level' must be one of trace, debug, info, warn, error, off");
}

std::string_view writeModeName(WriteMode m) {
  switch (m) {
    case WriteMode::Through: return "write-through";
    case WriteMode::Around: return "write-around";
    case WriteMode::Back: return "write-back";
  }
  return "?";
}

namespace {
void describeBackend(std::ostringstream& os, const BackendConfig& b) {
  os << "name = " << quoted(b.name) << "\n"
     << "endpoint = " << quoted(b.endpoint) << "\n"
     << "addressing = \"" << (b.virtualHosted ? "virtual" : "path") << "\"\n"
     << "region = " << quoted(b.region) << "\n"
     << "access_key = " << quoted(b.accessKey) << "\n"
     << "secret_key = \"" << mask(b.secretKey) << "\"\n"
     << "session_token = \"" << mask(b.sessionToken) << "\"\n"
     << "ca_file = " << quoted(b.caFile) << "\n"
     << "verify_tls = " << (b.verifyTls ? "true" : "false") << "\n"
     << "max_connections = " << b.maxConnections << "\n"
     << "connect_timeout = \"" << formatDuration(b.connectTimeout) << "\"\n"
     << "read_timeout = \"" << formatDuration(b.readTimeout) << "\"\n"
     << "idle_timeout = \"" << formatDuration(b.idleTimeout) << "\"\n"
     << "max_retries = " << b.maxRetries << "\n";
}
void describeCluster(std::ostream& os, const ClusterConfig& k) {
  auto list = [&](const std::vector<std::string>& v) {
    std::string r;
    for (const auto& x : v) r += (r.empty() ? "" : ", ") + quoted(x);
    return "[" + r + "]";
  };
  os << "\n[cluster]\netcd = " << list(k.etcd) << "\n"
     << "name = " << quoted(k.name) << "\nnode_id = " << quoted(k.nodeId) << "\n"
     << "peer_listen = " << quoted(k.peerListen) << "\npeer_advertise = " << quoted(k.peerAdvertise) << "\n"
     << "secret = \"" << mask(k.secret) << "\"\n"
     << "weight = " << k.weight << "\n"
     << "members = " << list(k.members) << "\n"
     << "lease_ttl = \"" << formatDuration(k.leaseTtl) << "\"\n"
     << "peer_connect_timeout = \"" << formatDuration(k.peerConnectTimeout) << "\"\n"
     << "peer_read_timeout = \"" << formatDuration(k.peerReadTimeout) << "\"\n"
     << "peer_auth_window = \"" << formatDuration(k.peerAuthWindow) << "\"\n";
}

}  // namespace

std::string describe(const Config& cfg) {
  std::ostringstream os;
  os << "listen = " << quoted(cfg.listen) << "\n"
     << "admin_listen = " << quoted(cfg.adminListen) << "\n"
     << "admin_token = \"" << mask(cfg.adminToken) << "\"\n"
     << "threads = " << cfg.threads << "\n"
     << "domain = " << quoted(cfg.domain) << "\n"
     << "regions = [" << [&] {
          std::string r;
          for (const auto& x : cfg.regions) r += (r.empty() ? "" : ", ") + quoted(x);
          return r;
        }() << "]\n"
     << "anonymous = " << (cfg.anonymous ? "true" : "false") << "\n"
     << "log_level = " << quoted(cfg.logLevel) << "\n"
     << "access_log = " << (cfg.accessLog ? "true" : "false") << "\n"
     << "access_log_format = \"" << cfg.accessLogFormat << "\"\n\n"
     << "[server]\n"
     << "idle_timeout = \"" << formatDuration(cfg.idleTimeout) << "\"\n"
     << "read_timeout = \"" << formatDuration(cfg.readTimeout) << "\"\n"
     << "write_timeout = \"" << formatDuration(cfg.writeTimeout) << "\"\n"
     << "shutdown_timeout = \"" << formatDuration(cfg.shutdownTimeout) << "\"\n"
     << "max_clock_skew = \"" << formatDuration(cfg.maxSkew) << "\"\n\n"
     << "[[backend]]  # the default\n"
     << "default = true\n";
  describeBackend(os, cfg.backend);
  for (const auto& o : cfg.otherBackends) {
    os << "\n[[backend]]\n";
    describeBackend(os, o);
  }
  for (const auto& bk : cfg.buckets) {
    os << "\n[[bucket]]\nname = " << quoted(bk.name) << "\n"
       << "backend = " << quoted(bk.backend.empty() ? cfg.backend.name : bk.backend) << "\n"
       << "backend_bucket = " << quoted(bk.backendBucket.empty() ? bk.name : bk.backendBucket) << "\n"
       << "write_mode = \"" << writeModeName(bk.writeMode) << "\"\n"
       << "metadata_ttl = \"" << formatDuration(bk.metadataTtl.value_or(cfg.cache.metadataTtl)) << "\"\n"
       << "stale_if_error = \"" << formatDuration(bk.staleIfError.value_or(cfg.cache.staleIfError)) << "\"\n"
       << "cache = " << (bk.cache ? "true" : "false") << "\n";
  }
  const auto& c = cfg.cache;
  os << "\n[cache]\ncache_dir = [";
  for (std::size_t i = 0; i < c.dirs.size(); ++i)
    os << (i ? ", " : "") << quoted(c.dirs[i].path + ":" + formatSize(c.dirs[i].size));
  os << "]\n"
     << "ram_cache = \"" << formatSize(c.ramBytes) << "\"\n"
     << "direct_io = " << (c.directIo ? "true" : "false") << "\n"
     << "chunk_size = \"" << formatSize(c.chunkSize) << "\"\n"
     << "metadata_ttl = \"" << formatDuration(c.metadataTtl) << "\"\n"
     << "stale_if_error = \"" << formatDuration(c.staleIfError) << "\"\n"
     << "status_header = " << (c.statusHeader ? "true" : "false") << "\n"
     << "parallel_fills = " << c.parallelFills << "\n"
     << "max_fills = " << c.maxFills << "\n"
     << "read_ahead = " << c.readAhead << "\n";
  if (c.writeBack) os << "writeback_dir = " << quoted(c.writeBack->path + ":" + formatSize(c.writeBack->size)) << "\n";
  os << "writeback_retry_max = \"" << formatDuration(c.writeBackRetryMax) << "\"\n"
     << "writeback_upload_concurrency = " << c.writeBackUploadConcurrency << "\n";
  if (cfg.cluster.enabled()) describeCluster(os, cfg.cluster);
  for (const auto& k : cfg.clientKeys) {
    os << "\n[[client_keys]]\naccess_key = " << quoted(k.accessKey) << "\nsecret_key = \"" << mask(k.secretKey) << "\"\n";
    if (k.admin) os << "admin = true\n";
    if (!k.backendAccessKey.empty())
      os << "backend_access_key = " << quoted(k.backendAccessKey) << "\nbackend_secret_key = \""
         << mask(k.backendSecretKey) << "\"\n";
    if (!k.allow) continue;
    if (k.allow->empty()) os << "allow = []  # nothing\n";
    for (const auto& st : *k.allow) {
      auto list = [&](const std::vector<std::string>& v) {
        os << "[";
        for (std::size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << quoted(v[i]);
        os << "]\n";
      };
      os << "[[client_keys.allow]]\nactions = ";
      list(st.actions);
      os << "resources = ";
      list(st.resources);
    }
  }
  return os.str();
}

}  // namespace granary

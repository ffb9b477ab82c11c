#pragma once
// Granary's configuration: a TOML file, then flags over it, then the standard AWS environment variables
// for backend credentials left unset. Validated once at start-up (throwing is fine here).

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <optional>
#include <string_view>
#include <vector>

namespace granary {

struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct BackendConfig {
  std::string name = "default";  // what [[bucket]] blocks refer to
  std::string endpoint = "http://127.0.0.1:4568";
  std::string region;  // default: $AWS_REGION, $AWS_DEFAULT_REGION, then us-east-1
  std::string accessKey;
  std::string secretKey;
  std::string sessionToken;
  std::string caFile;
  bool verifyTls = true;
  std::uint32_t maxConnections = 64;  // per I/O thread
  std::chrono::milliseconds connectTimeout{5'000};
  std::chrono::milliseconds readTimeout{60'000};
  std::chrono::milliseconds idleTimeout{4'000};
  std::uint32_t maxRetries = 3;
  bool virtualHosted = false;  // addressing = "virtual": bucket.host/key instead of host/bucket/key
};

/// How writes through Granary treat the cache.
enum class WriteMode {
  Through,  // to the backend; once it succeeded, the bytes written also fill the cache
  Around,   // to the backend; the cache only invalidates
  Back,     // acknowledged once durable in the write-back spool, uploaded in the background
};
std::string_view writeModeName(WriteMode m);

/// A client-visible bucket mapped onto a backend.
struct BucketConfig {
  std::string name;           // what clients call it
  std::string backend;        // a BackendConfig::name; "" = the default backend
  std::string backendBucket;  // its name at the backend; "" = the same as `name`
  WriteMode writeMode = WriteMode::Through;
  std::optional<std::chrono::milliseconds> metadataTtl;  // nullopt = cache.metadata_ttl
  std::optional<std::chrono::milliseconds> staleIfError;  // nullopt = cache.stale_if_error
  bool cache = true;
};

struct CacheDirConfig {
  std::string path;
  std::uint64_t size = 0;
};

struct CacheConfig {
  std::vector<CacheDirConfig> dirs;  // none: no disk tier
  std::uint64_t ramBytes = 0;        // 0: no RAM tier
  std::uint64_t chunkSize = 4ull << 20;
  std::chrono::milliseconds metadataTtl{60'000};  // milliseconds::max() = forever
  /// How long past its TTL cached metadata may still be served when revalidating it meets a 5xx, a
  /// timeout or a refused connection (RFC 5861's stale-if-error); 0 = never.
  std::chrono::milliseconds staleIfError{3'600'000};
  bool statusHeader = true;
  /// Disk tier files opened O_DIRECT (true: the RAM tier is the only memory cache) or through the kernel's
  /// page cache (false: free memory caches disk-tier chunks too, as nginx's files are).
  bool directIo = true;
  std::uint32_t parallelFills = 4;
  std::uint32_t maxFills = 64;
  std::uint32_t readAhead = 2;
  /// The write-back spool (directory and byte budget of pending uploads); required by write-back buckets.
  std::optional<CacheDirConfig> writeBack;
  std::chrono::milliseconds writeBackRetryMax{30'000};  // longest wait between retries of a failed upload
  std::uint32_t writeBackUploadConcurrency = 4;         // operations uploaded at once (never two of one key)
};

/// One Allow statement of a client key's policy (s3api/policy.h says what the strings may be).
struct PolicyStatementConfig {
  std::vector<std::string> actions;    // "s3:GetObject", "s3:List*", "s3:*", "*"
  std::vector<std::string> resources;  // "arn:aws:s3:::bucket/prefix*", "arn:aws:s3:::bucket", "*"
};

/// A [[client_keys]] block (or --client-key AK:SK).
struct ClientKeyConfig {
  std::string accessKey;
  std::string secretKey;
  /// [[client_keys.allow]] statements; nullopt = no policy: every bucket and key, as before policies.
  std::optional<std::vector<PolicyStatementConfig>> allow;
  bool admin = false;  // may call the admin API with a SigV4 signature of this key
  /// Tenant mode: the backend credentials requests of this key are signed with (empty = the backend's).
  std::string backendAccessKey;
  std::string backendSecretKey;
  std::string backendSessionToken;
};

/// [cluster]: sidecars that form one cache (issue 16). Off unless `etcd` or `members` is set.
struct ClusterConfig {
  std::vector<std::string> etcd;     // etcd v3 HTTP/JSON gateway URLs ("http://127.0.0.1:2379"); repeatable
  std::string name = "granary";      // the cluster's prefix in etcd: /granary/clusters/NAME/members/ID
  std::string nodeId;                // default: the host name
  std::string peerListen;            // ADDR:PORT of the peer port (loopback or a private network)
  std::string peerAdvertise;         // ADDR:PORT other nodes dial; default: peer_listen
  std::string secret;                // the shared HMAC secret of peer requests (or secret_file)
  std::string secretFile;
  double weight = 1.0;               // the node's share of ownership (weighted rendezvous), 0.01-100
  /// A fixed membership without etcd: "ID=ADDR:PORT" entries, this node's own among them (tests, tiny
  /// fleets); with `etcd` set it must be empty.
  std::vector<std::string> members;
  std::chrono::milliseconds leaseTtl{10'000};        // the etcd lease of this node's record
  std::chrono::milliseconds peerConnectTimeout{100};  // a peer slower to accept is skipped
  std::chrono::milliseconds peerReadTimeout{10'000};  // a peer that stops sending mid-chunk is skipped
  std::chrono::milliseconds peerAuthWindow{30'000};   // accepted clock difference of a peer request

  bool enabled() const { return !etcd.empty() || !members.empty(); }
};

struct Config {
  std::string listen = "127.0.0.1:9000";
  std::string adminListen = "127.0.0.1:9001";  // metrics, health, admin API; "" = no admin endpoint
  std::string adminToken;   // required as "Authorization: Bearer TOKEN" by the admin endpoint (/healthz aside)
  std::uint32_t threads = 0;  // 0 = one per core
  std::string domain;
  /// The regions client signatures may name in their credential scope (the first is the one named as
  /// expected in errors); empty = the backends' regions.
  std::vector<std::string> regions;
  bool anonymous = false;
  std::string logLevel = "info";
  bool accessLog = true;
  std::string accessLogFormat = "text";  // text (key=value), json, clf
  std::vector<ClientKeyConfig> clientKeys;
  BackendConfig backend;                     // the default backend: buckets no [[bucket]] names go here
  std::vector<BackendConfig> otherBackends;  // further [[backend]] blocks, by name
  std::vector<BucketConfig> buckets;         // [[bucket]] blocks
  CacheConfig cache;
  ClusterConfig cluster;
  std::chrono::milliseconds idleTimeout{60'000};
  std::chrono::milliseconds readTimeout{30'000};
  std::chrono::milliseconds writeTimeout{60'000};
  std::chrono::milliseconds shutdownTimeout{30'000};
  std::chrono::milliseconds maxSkew{15 * 60'000};
};

/// Parses a TOML file into `cfg`. Unknown keys and ill-typed or malformed values are errors that name
/// the key (ConfigError).
void loadConfigFile(const std::string& path, Config& cfg);

/// Fills what is still unset from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
/// AWS_SESSION_TOKEN, AWS_REGION, AWS_DEFAULT_REGION) and defaults.
void applyEnvironment(Config& cfg);

/// Cross-field checks (endpoint URL, listen address, keys). Throws ConfigError.
void validate(const Config& cfg);

/// "AK:SK" -> a key without a policy; throws ConfigError.
ClientKeyConfig parseClientKey(const std::string& s);

/// "PATH:SIZE" (e.g. "/nvme0/granary:500GiB") -> directory; throws ConfigError.
CacheDirConfig parseCacheDir(const std::string& s);

/// `s` as a TOML basic string, quotes included (quotes, backslashes and control characters escaped).
std::string quoted(std::string_view s);

/// The effective configuration as TOML, secrets masked.
std::string describe(const Config& cfg);

}  // namespace granary

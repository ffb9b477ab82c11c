#pragma once
// ProxyHandler's options (set by main from the configuration), and the results of its admin operations.

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cache/writeback.h"
#include "cluster/member_set.h"
#include "s3api/access_log.h"
#include "s3api/auth.h"
#include "s3api/bucket_map.h"
#include "s3api/multipart_tracker.h"
#include "s3api/reloadable_tables.h"
#include "s3api/writeback_service.h"

namespace spdlog {
class logger;
}

namespace granary::s3api {

class RequestStats;
class PeerStats;
class PrefetchTracker;

/// The cluster's peer read path (ProxyOptions::cluster). Off (members null) without a [cluster] section.
struct ClusterOptions {
  /// The current membership (etcd-backed cluster::Membership or StaticMembers); null = no cluster.
  std::shared_ptr<cluster::MemberSource> members;
  std::string nodeId;  // this node's id (x-granary-node of its peer requests)
  std::string secret;  // the shared HMAC secret of peer requests
  std::chrono::milliseconds connectTimeout{100};  // a peer slower to accept is skipped
  std::chrono::milliseconds readTimeout{10'000};  // a peer that stops sending mid-chunk is skipped
  std::chrono::milliseconds authWindow{30'000};   // accepted clock difference of a peer request
  /// The peer counters, shared by every thread of the process (S3 and peer port); null = not counted.
  std::shared_ptr<PeerStats> stats;

  bool enabled() const { return members != nullptr; }
};

struct ProxyOptions {
  std::string domain;  // virtual-hosted base domain; empty = path style only
  AuthOptions auth;
  std::size_t bufferSize = 256 * 1024;               // relay buffer per request
  std::uint64_t maxObjectSize = 5ull * 1024 * 1024 * 1024;  // S3's single-PUT limit
  bool accessLog = true;
  AccessLogFormat accessLogFormat = AccessLogFormat::Text;
  /// Where access lines go (JSON and CLF lines need a logger printing the message alone); null = the
  /// default logger.
  std::shared_ptr<spdlog::logger> accessLogger;
  /// This handler's request counters (one instance per thread); null = not counted.
  std::shared_ptr<RequestStats> requestStats;
  /// Where client GETs are reported for the prefetch jobs (shared by every thread); null = none.
  std::shared_ptr<PrefetchTracker> prefetch;
  /// Bodies up to this size are read and verified whole before anything goes upstream (and can then
  /// be retried); larger ones stream, their last byte held back until every check has passed.
  std::size_t verifyBeforeSend = 1 << 20;

  /// Client buckets -> backends (index into the handler's upstreams) and their cache policy.
  std::shared_ptr<const BucketMap> buckets = std::make_shared<BucketMap>(std::vector<std::string>{""});

  // The cache (used when the handler has a CacheThread).
  /// How long cached metadata is trusted before a conditional request revalidates it; 0 = always,
  /// milliseconds::max() = forever (immutable data sets).
  std::chrono::milliseconds metadataTtl{60'000};
  /// When set, TTLs come from here (reloadable) instead of metadataTtl and the bucket map.
  std::shared_ptr<TtlStore> ttls;
  bool cacheStatusHeader = true;        // x-granary-cache on GET/HEAD responses
  std::size_t parallelFills = 4;        // chunks one request fetches at once
  std::size_t maxFills = 64;            // chunks in flight across the process (each holds a chunk of RAM)
  std::size_t readAhead = 2;            // chunks fetched past the end of a ranged read
  std::chrono::milliseconds fillTimeout{60'000};  // longest wait for a fill without progress
  /// write-through: PUTs up to this size keep their bytes until the backend took them, then fill the
  /// cache (larger ones, and multipart uploads, fill on their first read).
  std::uint64_t writeFillMax = 64ull << 20;
  /// Parts of the multipart uploads created through Granary (shared by every thread).
  std::shared_ptr<MultipartTracker> multipart = std::make_shared<MultipartTracker>();
  /// The write-back service: spool and uploader (shared by every thread, owned by main); null = no
  /// bucket writes back.
  std::shared_ptr<WriteBackService> writeBack;
  /// The peer read path; disabled unless members is set.
  ClusterOptions cluster;
};

}  // namespace granary::s3api

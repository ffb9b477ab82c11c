#pragma once
// The S3 front end as an http::RequestHandler: route, verify the client's signature, then forward to the
// backend (re-signed) and stream the answer back. One instance per I/O thread.

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <random>
#include <unordered_map>

#include <boost/asio/steady_timer.hpp>
#include <pugixml.hpp>

#include "cache/chunk_cache.h"
#include "cache/writeback.h"
#include "common/buffer_pool.h"
#include "common/crypto.h"
#include "http/handler.h"
#include "s3api/admin_ops.h"
#include "s3api/auth.h"
#include "s3api/bucket_map.h"
#include "s3api/multipart_tracker.h"
#include "s3api/errors.h"
#include "s3api/range.h"
#include "s3api/verified_body.h"
#include "upstream/upstream.h"

namespace spdlog {
class logger;
}

namespace granary::s3api {

class RequestStats;

enum class AccessLogFormat {
  Text,    // "access id=... op=... status=..." (key=value), after the log's time and level
  Json,    // one JSON object per line, nothing else on it
  Common,  // NCSA common log format, then id=, op=, cache=, us= fields
};

/// Metadata TTLs by client bucket, replaceable at run time (SIGHUP) like the key table.
struct TtlTable {
  std::chrono::milliseconds fallback{60'000};  // cache.metadata_ttl
  std::unordered_map<std::string, std::chrono::milliseconds> buckets;  // [[bucket]] metadata_ttl
  /// cache.stale_if_error / [[bucket]] stale_if_error: how long past the TTL cached metadata may be
  /// served when revalidation meets a backend failure; 0 = never.
  std::chrono::milliseconds staleFallback{3'600'000};
  std::unordered_map<std::string, std::chrono::milliseconds> staleBuckets;
  std::chrono::milliseconds forBucket(const std::string& bucket) const {
    auto it = buckets.find(bucket);
    return it == buckets.end() ? fallback : it->second;
  }
  std::chrono::milliseconds staleIfError(const std::string& bucket) const {
    auto it = staleBuckets.find(bucket);
    return it == staleBuckets.end() ? staleFallback : it->second;
  }
};

/// A shared, replaceable table (SIGHUP reloads swap the pointer; a request keeps the one it started with).
template <class Table>
class ReloadableTable {
 public:
  explicit ReloadableTable(std::shared_ptr<const Table> t) : table_(std::move(t)) {}
  std::shared_ptr<const Table> get() const { return std::atomic_load(&table_); }
  void set(std::shared_ptr<const Table> t) { std::atomic_store(&table_, std::move(t)); }

 private:
  std::shared_ptr<const Table> table_;
};
using TtlStore = ReloadableTable<TtlTable>;
using KeyStore = ReloadableTable<KeyTable>;

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
  /// The write-back spool (shared by every thread); null = no bucket writes back.
  std::shared_ptr<cache::WriteBackSpool> writeBack;
  std::chrono::milliseconds uploadRetryMax{30'000};  // longest wait between retries of a failed upload
};

class ProxyHandler final : public http::RequestHandler, public AdminOps {
 public:
  /// @param upstreams one per backend of opts.buckets, in its order (index 0: the default backend).
  /// @param cache this thread's access to the cache; null = pass-through.
  ProxyHandler(ProxyOptions opts, std::shared_ptr<KeyStore> keys,
               std::vector<std::unique_ptr<upstream::Upstream>> upstreams,
               std::unique_ptr<cache::CacheThread> cache = nullptr);

  http::Awaitable<void> handle(const http::RequestHeader& req, const http::RequestContext& ctx,
                               http::BodyReader& body, http::ResponseWriter& out) override;
  std::string protocolError(http::ResponseHeader& res, http::ProtocolError error, std::string_view message) override;
  /// Starts the write-back uploader on this handler's thread (main calls it on one handler).
  void startUploader(boost::asio::any_io_executor ex);
  // AdminOps (admin_ops.h; admin_ops.cpp), run on this handler's thread for src/admin.
  http::Awaitable<ListPage> adminList(std::string bucket, std::string prefix, std::string token) override;
  http::Awaitable<CachedExtent> adminCached(std::string bucket, std::string key) override;
  http::Awaitable<CachedExtent> adminInvalidate(std::string bucket, std::string key) override;
  http::Awaitable<ReadResult> adminRead(std::string bucket, std::string key, bool md5,
                                        std::shared_ptr<RateLimiter> limit) override;

  /// A backend as one tenant key sees it: the same connections, every request signed with the key's own
  /// credentials (unless one already names others).
  class TenantUpstream final : public upstream::Upstream {
   public:
    TenantUpstream(upstream::Upstream& real, std::shared_ptr<const sigv4::Credentials> creds)
        : real_(real), creds_(std::move(creds)) {}
    upstream::Awaitable<boost::system::result<upstream::UpstreamResponsePtr>> send(upstream::UpstreamRequest& req) override {
      if (!req.credentials) req.credentials = creds_;
      return real_.send(req);
    }
    void shutdown() override {}
    void setTenantCredentials(std::shared_ptr<const sigv4::Credentials> c) { creds_ = std::move(c); }
    const sigv4::Credentials* tenantCredentials() const { return creds_.get(); }

   private:
    upstream::Upstream& real_;
    std::shared_ptr<const sigv4::Credentials> creds_;
  };

  /// New credentials for backend `backend` (SIGHUP). Call on this handler's thread.
  void setBackendCredentials(std::size_t backend, sigv4::Credentials creds) {
    if (backend < upstreams_.size()) upstreams_[backend]->setCredentials(std::move(creds));
  }

  void shutdown() override {
    stopping_ = true;
    if (uploaderTimer_) uploaderTimer_->cancel();
    for (auto& u : upstreams_) u->shutdown();
  }

 private:
  struct Exchange;
  http::Awaitable<void> forward(Exchange& x);
  // Copies (proxy_copy.cpp).
  struct CopySource {
    std::string bucket, key, versionId;  // decoded
  };
  /// x-amz-copy-source: "[/]bucket/key[?versionId=V]", URL-encoded. nullopt when malformed.
  static std::optional<CopySource> parseCopySource(std::string_view v);
  /// The header value naming `src` at its backend under `backendBucket`.
  static std::string copySourceHeader(const CopySource& src, std::string_view backendBucket);
  /// GETs a copy source (x-amz-copy-source-range and -if-* applied). @return its answer (200/206, with a
  /// Content-Length), or null when the client has been answered already (an error).
  http::Awaitable<upstream::UpstreamResponsePtr> readCopySource(Exchange& x, const CopySource& src);
  /// CopyObject / UploadPartCopy from a bucket on another backend: GET there, PUT here, streaming.
  http::Awaitable<void> copyAcrossBackends(Exchange& x, const CopySource& src);
  /// An XML answer Granary reads before passing it on: a renamed bucket's ([[bucket]] backend_bucket)
  /// <Name>/<Bucket> say the client's name; a new multipart upload's id is noted.
  http::Awaitable<void> relayRenamed(Exchange& x, upstream::UpstreamResponse& resp);
  /// Whether the verified key's policy lets this request through (sets x.filterListing for listings it
  /// allows only in part). No policy: yes.
  bool authorize(Exchange& x) const;
  /// AccessDenied, counted per key and logged. @param what what was refused and by whom, for the log.
  http::Awaitable<void> deny(Exchange& x, std::string_view what);
  /// Opens the sealed listing positions (marker, continuation-token, key-marker) a filtered listing gave
  /// out, for the backend; an error for a token that does not open (keys with a policy).
  std::optional<S3Failure> openListingMarkers(Exchange& x) const;
  /// Drops from a listing (objects, versions, uploads, buckets) what the key's policy does not show, and
  /// seals where its next page starts.
  void filterListing(const Exchange& x, pugi::xml_node root) const;
  /// A backend's error about a renamed bucket: its <BucketName> says the client's name.
  http::Awaitable<void> relayErrorRenamed(Exchange& x, upstream::UpstreamResponse& resp);
  /// ListBuckets over several backends (or renamed buckets): each asked, the answers merged.
  http::Awaitable<void> listBucketsMerged(Exchange& x);
  std::optional<S3Failure> planBody(const Exchange& x, const VerifiedAuth& auth,
                                    std::optional<std::uint64_t>& payloadLength, bool& hasBody,
                                    BodyChecks& checks) const;
  http::Awaitable<void> sendError(Exchange& x, const S3Failure& f, std::string contentRange = {});
  /// A 200 answer whose body is the XML document `doc`, with `extra` headers. (Arguments by reference
  /// to the caller's named objects: GCC 12 mis-handled a by-value header argument here.)
  http::Awaitable<void> sendXml(Exchange& x, pugi::xml_document& doc, const sigv4::HeaderList& extra);
  RangeFix rangeFixFor(const Exchange& x, const upstream::UpstreamResponse& resp) const;
  upstream::UpstreamRequest upstreamRequestFor(const Exchange& x, const VerifiedAuth& auth) const;
  http::ResponseHeader responseHeaderFor(Exchange& x, const upstream::UpstreamResponse& resp, const RangeFix& fix) const;
  http::Awaitable<void> relay(Exchange& x, upstream::UpstreamResponse& resp);
  enum class ReadWhole { Ok, TooLong, Failed };
  /// Reads a body whole into `out`: `expected` bytes when declared, at most `limit` bytes in any case.
  /// @return TooLong past `limit`; Failed when the body failed its checks (see the source's failure()),
  ///         ended early or ran past `expected`.
  http::Awaitable<ReadWhole> readWhole(upstream::BodySource& body, std::optional<std::uint64_t> expected,
                                       std::size_t limit, std::string& out);
  std::string newRequestId();
  void logAccess(const Exchange& x);
  /// Cache key pieces of a client-visible bucket's object (backend id, bucket at the backend, metadata key).
  std::string adminMetaKey(const std::string& bucket, const std::string& key, std::string& backendId,
                           std::string& backendBucket) const;

  // The cached read path and write invalidation (proxy_cache.cpp).
 public:
  struct CachedObject;  // (public: helpers of proxy_cache.cpp take it)

 private:
  /// What revalidating an object's metadata learnt: the metadata, or nothing; `backendDown` when the
  /// backend failed (no answer, or a 5xx), which stale-if-error may answer from the cache.
  struct MetaAnswer {
    std::shared_ptr<const cache::ObjectMeta> meta;
    bool backendDown = false;
  };
  bool cacheEligible(const Exchange& x) const;
  /// Serves a GET/HEAD from the cache, fetching what is missing. @return false when the request must
  /// go to the backend as it is instead (nothing was sent to the client).
  http::Awaitable<bool> serveCached(Exchange& x);
  /// @param fillFirst when given, metadata the cache lacks is learnt from a GET of that object's first
  ///        chunk (one round trip to the backend instead of a HEAD and then a GET), whose answer becomes
  ///        the chunk's fill, registered before any request waiting on the metadata goes on.
  /// @param stale set when the metadata returned could not be revalidated because the backend failed, and
  ///        the bucket's stale_if_error allows serving it (stale-if-error).
  http::Awaitable<std::shared_ptr<const cache::ObjectMeta>> freshMeta(Exchange& x, const std::string& metaKey,
                                                                      bool& fromCache, bool& stale,
                                                                      std::shared_ptr<CachedObject> fillFirst = nullptr);
  http::Awaitable<MetaAnswer> fetchMeta(const Exchange& x, const std::string& metaKey,
                                        std::shared_ptr<const cache::ObjectMeta> stale,
                                        upstream::UpstreamResponsePtr* firstChunk = nullptr);
  /// Streams [offset, offset+length) chunk by chunk; `header` goes out with the first byte.
  /// @return false if nothing could be sent (the caller forwards instead).
  http::Awaitable<bool> streamChunks(Exchange& x, const std::shared_ptr<const CachedObject>& obj, std::uint64_t offset,
                                     std::uint64_t length, http::ResponseHeader header);
  /// The chunk from the cache, or the fill that is (or now starts) fetching it.
  /// @param tier where a cached chunk was found, when given.
  http::Awaitable<std::pair<cache::ConstChunkPtr, cache::FillPtr>> obtainChunk(
      const std::shared_ptr<const CachedObject>& obj, std::uint32_t index, cache::CacheThread::Tier* tier = nullptr);
  /// Starts fetching a chunk in the background unless it is cached, in flight, or the budget is spent.
  void startFill(const std::shared_ptr<const CachedObject>& obj, std::uint32_t index);
  /// Fetches chunk `index` into `fill`; `opened`: the backend's answer for it, when already asked.
  http::Awaitable<void> downloadChunk(std::shared_ptr<const CachedObject> obj, std::uint32_t index,
                                      cache::FillPtr fill, std::string key, upstream::UpstreamResponsePtr opened);
  void invalidateForWrite(const Exchange& x, const upstream::UpstreamRequest& ur);
  /// Whether this request is a PUT whose bytes fill the cache once the backend has them (write-through).
  bool fillsOnWrite(const Exchange& x, std::optional<std::uint64_t> payloadLength) const;
  struct WrittenObject;
  /// After a write-through PUT: the backend's metadata (HEAD, which must show the ETag the PUT got), then
  /// the written bytes as chunks, then the metadata; dropped if another write invalidated meanwhile.
  http::Awaitable<void> fillAfterWrite(std::shared_ptr<WrittenObject> w);
  void startFillAfterWrite(const Exchange& x, std::string etag, std::string data);

  // Write-back (proxy_writeback.cpp).
  bool writesBack(const Exchange& x) const;
  /// A write-back PUT: spooled, made durable, acknowledged. @return false when the spool is full (the
  /// caller forwards it: write-through).
  http::Awaitable<bool> putWriteBack(Exchange& x, const VerifiedAuth& auth, std::optional<std::uint64_t> payloadLength,
                                     BodyChecks checks);
  http::Awaitable<void> deleteWriteBack(Exchange& x);
  /// A spool operation on `key` of the exchange's bucket, numbered `seq`.
  static cache::PendingWrite pendingOn(const Exchange& x, const std::string& key, std::uint64_t seq);
  /// Before a write that goes to the backend directly (copy, multipart, past capacity): what is pending for
  /// the key must never land after it.
  http::Awaitable<void> supersedePending(const Exchange& x, const std::string& key);
  /// GET/HEAD of a key with a pending operation, from the spool. @return false when nothing is pending.
  http::Awaitable<bool> serveWriteBack(Exchange& x);
  /// A listing of a write-back bucket: the backend's, with pending writes and deletes applied.
  http::Awaitable<void> relayListingWithPending(Exchange& x, upstream::UpstreamResponse& resp);
  enum class SpoolResult { Ok, ReadFailed, WriteFailed };
  /// Writes `src` to the spool data file `fd` (closed after), hashing it. `written`: bytes written.
  http::Awaitable<SpoolResult> spoolData(upstream::BodySource& src, int fd, Digest& md5, std::uint64_t& written);
  /// Before a copy reads its source at the backend: waits until a write of the source pending in the
  /// spool has been uploaded. @return false if it was not within a minute.
  http::Awaitable<bool> sourceUploaded(const CopySource& src);
  http::Awaitable<void> uploader();

  // Multipart uploads into write-back buckets (proxy_writeback_multipart.cpp): created, stored and
  // completed in the spool; the uploader sends the object as a multipart upload of the same parts.
  static bool isSpoolUploadId(std::string_view id);
  /// CreateMultipartUpload in a write-back bucket. @return false when it goes to the backend instead.
  http::Awaitable<bool> createSpoolUpload(Exchange& x);
  /// UploadPart, UploadPartCopy, CompleteMultipartUpload, AbortMultipartUpload, ListParts of a spool upload.
  http::Awaitable<void> spoolMultipart(Exchange& x, const VerifiedAuth& auth, std::optional<std::uint64_t> payloadLength,
                                       BodyChecks checks, const std::optional<CopySource>& copySource);
  http::Awaitable<void> spoolPart(Exchange& x, const cache::UploadPtr& u, const VerifiedAuth& auth,
                                  std::optional<std::uint64_t> payloadLength, BodyChecks checks,
                                  const std::optional<CopySource>& copySource);
  http::Awaitable<void> completeSpoolUpload(Exchange& x, const cache::UploadPtr& u, const VerifiedAuth& auth,
                                            std::optional<std::uint64_t> payloadLength, BodyChecks checks);
  http::Awaitable<void> listSpoolParts(Exchange& x, const cache::UploadPtr& u);
  /// ListMultipartUploads of a write-back bucket: the backend's uploads (none when `resp` is null: the
  /// backend could not be reached) and the spool's.
  http::Awaitable<void> relayUploadsWithSpool(Exchange& x, upstream::UpstreamResponse* resp);
  http::Awaitable<bool> uploadMultipart(const cache::PendingWrite& w);
  /// Sends request `r` with spool data file `seq` as its body. @return the ETag of a 200, else nullopt.
  http::Awaitable<std::optional<std::string>> sendSpoolFile(upstream::Upstream& up, upstream::UpstreamRequest& r,
                                                            std::uint64_t seq, std::uint64_t size);
  http::Awaitable<bool> upload(const cache::PendingWrite& w);

  ProxyOptions opts_;
  std::unique_ptr<boost::asio::steady_timer> uploaderTimer_;
  std::shared_ptr<KeyStore> keys_;
  std::vector<std::unique_ptr<upstream::Upstream>> upstreams_;
  /// Tenant keys' views of the backends, by backend index and access key; they live as long as the
  /// handler (fills started for a tenant hold on to theirs), one per key ever configured.
  std::unordered_map<std::string, std::unique_ptr<TenantUpstream>> tenantUpstreams_;
  /// The backend `backend` as the exchange's key reaches it: its own credentials (tenant mode) or the
  /// backend's.
  upstream::Upstream* upstreamFor(const Exchange& x, std::size_t backend);

  /// Tenant mode: whether the backend lets the exchange's credentials read the object, before anything
  /// cached of it is served (HEAD under those credentials; the answer kept per key and object for the
  /// bucket's metadata TTL, at most kMaxAccessDecision).
  enum class BackendAccess { Allowed, Refused, Unknown };
  http::Awaitable<BackendAccess> backendAllows(Exchange& x);
  struct AccessDecision {
    bool allowed = false;
    std::chrono::steady_clock::time_point until;
  };
  static constexpr std::size_t kMaxAccessDecisions = 100'000;  // per thread; all dropped when full
  static constexpr std::chrono::minutes kMaxAccessDecision{15};
  std::unordered_map<std::string, AccessDecision> accessDecisions_;
  std::unique_ptr<cache::CacheThread> cache_;
  bool stopping_ = false;
  std::mt19937_64 rng_;
  BufferPool buffers_;  // relay buffers: each request relaying a body holds its own
};

}  // namespace granary::s3api

#pragma once
// The S3 front end as an http::RequestHandler: route, verify the client's signature, then forward to the
// backend (re-signed) and stream the answer back. One instance per I/O thread.

#include <chrono>
#include <memory>
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
#include "s3api/object_plan.h"
#include "s3api/errors.h"
#include "s3api/operation.h"
#include "s3api/proxy_options.h"
#include "s3api/range.h"
#include "s3api/result.h"
#include "s3api/tenant_upstream.h"
#include "s3api/verified_body.h"
#include "s3api/writeback_service.h"
#include "upstream/upstream.h"

namespace granary::s3api {

struct BodyPlan;
class PeerClient;
class PeerChunkFetcher;

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
  // AdminOps (admin_ops.h; admin_ops.cpp), run on this handler's thread for src/admin.
  http::Awaitable<ListPage> adminList(std::string bucket, std::string prefix, std::string token) override;
  http::Awaitable<CachedExtent> adminCached(std::string bucket, std::string key) override;
  http::Awaitable<CachedExtent> adminInvalidate(std::string bucket, std::string key) override;
  http::Awaitable<ReadResult> adminRead(std::string bucket, std::string key, bool md5,
                                        std::shared_ptr<RateLimiter> limit) override;

  /// New credentials for backend `backend` (SIGHUP). Call on this handler's thread.
  void setBackendCredentials(std::size_t backend, sigv4::Credentials creds) {
    if (backend < upstreams_.size()) upstreams_[backend]->setCredentials(std::move(creds));
  }

  void shutdown() override {
    stopping_ = true;
    for (auto& u : upstreams_) u->shutdown();
    shutdownPeers();
  }

 private:
  struct Exchange;
  struct Call;      // a request past the front's checks (exchange.h)
  struct Outbound;  // the request as it goes to the backend, with its body (exchange.h)

  // The front (proxy_handler.cpp): authenticate, check, authorize, plan the body, then one table of
  // operation handlers, one per OpFamily, each in its own file (op_*.cpp).
  http::Awaitable<void> forward(Exchange& x);
  using OpHandler = http::Awaitable<void> (ProxyHandler::*)(Exchange&, Call&);
  static const OpHandler kDispatch[kOpFamilyCount];  // by OpFamily
  OpHandler handlerFor(const Exchange& x) const;
  /// The client's signature (or the internal caller): the verified credentials, or why not.
  S3Result<VerifiedAuth> authenticate(const Exchange& x, const KeyTable& keys) const;
  /// x-amz-copy-source of a copy, parsed and checked. @return false when the client has been answered.
  http::Awaitable<bool> prepareCopySource(Exchange& x, Call& c);
  http::Awaitable<void> opObjectRead(Exchange& x, Call& c);   // op_object_read.cpp
  http::Awaitable<void> opObjectWrite(Exchange& x, Call& c);  // op_object_write.cpp
  http::Awaitable<void> opMultipart(Exchange& x, Call& c);    // op_multipart.cpp
  http::Awaitable<void> opSpoolUpload(Exchange& x, Call& c);  // op_multipart.cpp: a spool upload's request
  http::Awaitable<void> opListing(Exchange& x, Call& c);      // op_listing.cpp
  http::Awaitable<void> opRelay(Exchange& x, Call& c);        // op_relay.cpp: bucket-level and the others

  // The relay path the handlers share (relay.cpp).
  /// What a handler does with the backend's answer before it is relayed (null: the backend was not
  /// reached). @return true when it answered the client itself.
  using AnswerHook = http::Awaitable<bool> (ProxyHandler::*)(Exchange&, Call&, Outbound&, upstream::UpstreamResponse*);
  /// The request for the backend, its body not attached yet (copy source renamed for the backend).
  upstream::UpstreamRequest requestFor(const Exchange& x, const Call& c) const;
  /// Attaches the client's body to `o` (small and XML bodies read whole and checked first).
  /// @return false when the client has been answered (a body that failed its checks).
  http::Awaitable<bool> attachBody(Exchange& x, Call& c, Outbound& o);
  /// Sends `o` (the cache invalidated around a write), then relays the answer: an absolute refetch of a
  /// range the backend answered otherwise, 416 sizing, partNumber past the part count, `hook`, renamed
  /// buckets' XML, else the answer as it is.
  http::Awaitable<void> relayUpstream(Exchange& x, Call& c, Outbound& o, AnswerHook hook = nullptr);
  /// requestFor, attachBody, relayUpstream: an operation relayed as it is.
  http::Awaitable<void> relayAsIs(Exchange& x, Call& c, AnswerHook hook = nullptr);
  /// A 416 from a backend that did not say the object's size (s3rver): asked for it, then answered.
  http::Awaitable<void> sendUnsatisfiable(Exchange& x);
  /// The answer relayed: renamed buckets' XML rewritten, XML answers checked, or as it is.
  http::Awaitable<void> relayAnswer(Exchange& x, upstream::UpstreamResponse& resp);
  http::Awaitable<bool> afterObjectWrite(Exchange& x, Call& c, Outbound& o, upstream::UpstreamResponse* resp);
  http::Awaitable<bool> afterMultipart(Exchange& x, Call& c, Outbound& o, upstream::UpstreamResponse* resp);
  http::Awaitable<bool> afterListing(Exchange& x, Call& c, Outbound& o, upstream::UpstreamResponse* resp);
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
  S3Result<void> openListingMarkers(Exchange& x) const;
  /// Drops from a listing (objects, versions, uploads, buckets) what the key's policy does not show, and
  /// seals where its next page starts.
  void filterListing(const Exchange& x, pugi::xml_node root) const;
  /// A backend's error about a renamed bucket: its <BucketName> says the client's name.
  http::Awaitable<void> relayErrorRenamed(Exchange& x, upstream::UpstreamResponse& resp);
  /// ListBuckets over several backends (or renamed buckets): each asked, the answers merged.
  http::Awaitable<void> listBucketsMerged(Exchange& x);
  /// What the body is and how long it will be once decoded, or the error S3 answers.
  S3Result<BodyPlan> planBody(const Exchange& x, const VerifiedAuth& auth) const;
  http::Awaitable<void> sendError(Exchange& x, const S3Failure& f, std::string contentRange = {});
  /// A 200 answer whose body is the XML document `doc`, with `extra` headers. (Arguments by reference
  /// to the caller's named objects: GCC 12 mis-handled a by-value header argument here.)
  http::Awaitable<void> sendXml(Exchange& x, pugi::xml_document& doc, const sigv4::HeaderList& extra);
  RangeFix rangeFixFor(const Exchange& x, const upstream::UpstreamResponse& resp) const;
  http::ResponseHeader responseHeaderFor(Exchange& x, const upstream::UpstreamResponse& resp, const RangeFix& fix) const;
  http::Awaitable<void> relay(Exchange& x, upstream::UpstreamResponse& resp);
  enum class ReadWhole { Ok, TooLong, Failed };
  /// Reads a body whole into `out`: `expected` bytes when declared, at most `limit` bytes in any case.
  /// @return TooLong past `limit`; Failed when the body failed its checks (see the source's failure()),
  ///         ended early or ran past `expected`.
  http::Awaitable<ReadWhole> readWhole(upstream::BodySource& body, std::optional<std::uint64_t> expected,
                                       std::size_t limit, std::string& out);
  std::string newRequestId();
  void logAccess(const Exchange& x) const;
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
  /// Where the part a cached GET ?partNumber= asks for lies (a HEAD to the backend). nullopt: the backend
  /// did not say, or the object changed there: the request goes to the backend.
  http::Awaitable<std::optional<PartLocation>> locateCachedPart(Exchange& x, const CachedObject& obj,
                                                                const std::string& part);
  /// x-granary-cache of a read of `bytes` of `obj`: hit (every chunk cached), partial or miss.
  std::string_view cachedBytesStatus(const CachedObject& obj, const ResolvedRange& bytes) const;
  /// Whether every chunk the GET would send, its preconditions aside, is on hand (stale-if-error).
  bool staleBytesOnHand(const Exchange& x, const CachedObject& obj) const;
  /// Streams [offset, offset+length) chunk by chunk; `header` goes out with the first byte.
  /// @return false if nothing could be sent (the caller forwards instead).
  http::Awaitable<bool> streamChunks(Exchange& x, const std::shared_ptr<const CachedObject>& obj, std::uint64_t offset,
                                     std::uint64_t length, http::ResponseHeader header);
  /// Starts fetching a chunk in the background unless it is cached, in flight, or the budget is spent.
  void startFill(const std::shared_ptr<const CachedObject>& obj, std::uint32_t index);
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
  /// A write-back PUT: spooled, made durable, acknowledged. @return false when the spool is full or
  /// shutting down (the caller forwards it: write-through).
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

  // One object server (object_serve.cpp, object_plan.h): a GET/HEAD of an object held locally.
  class LocalBytes;    // a local copy of an object's bytes (local_bytes.h)
  class CachedChunks;  // ... in the cache's chunks (proxy_cache.cpp)
  class SpoolFiles;    // ... in the write-back spool's data files (object_serve.cpp)
  /// Answers with `plan`: its status and headers (added to `header`, which holds the caller's own), then
  /// its bytes from `bytes`. @return false if nothing was sent (the caller forwards the request instead).
  http::Awaitable<bool> servePlan(Exchange& x, const ObjectPlan& plan, http::ResponseHeader header,
                                  LocalBytes& bytes);
  /// Answers a failed plan: the S3 error (with Content-Range for a 416). @return true.
  http::Awaitable<bool> sendPlanError(Exchange& x, const S3Failure& failure);
  /// What is pending under a write-back listing's prefix (taken before the backend is asked).
  std::vector<cache::PendingPtr> pendingListed(const Exchange& x) const;
  /// A listing of a write-back bucket: the backend's, with the `pending` writes and deletes applied.
  http::Awaitable<void> relayListingWithPending(Exchange& x, upstream::UpstreamResponse& resp,
                                                std::vector<cache::PendingPtr> pending);
  /// Before a copy reads its source at the backend: waits until a write of the source pending in the
  /// spool has been uploaded. @return false if it was not within a minute.
  http::Awaitable<bool> sourceUploaded(const CopySource& src);

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

  ProxyOptions opts_;
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
  // The cluster (peer_chunk_source.h): this thread's peer connections; null without a cluster.
  std::shared_ptr<PeerClient> peers_;
  std::shared_ptr<PeerChunkFetcher> peerFetcher_;
  void shutdownPeers();
  /// After a write: drops the written keys' metadata on their owners (best effort, short timeouts).
  http::Awaitable<void> invalidateOnOwners(const Exchange& x, const upstream::UpstreamRequest& ur);
  /// The object's metadata from its cluster owner, validated within `ttl`; null if self-owned or no 200.
  http::Awaitable<std::shared_ptr<const cache::ObjectMeta>> metaFromOwner(const Exchange& x, std::chrono::milliseconds ttl);
  bool stopping_ = false;
  std::mt19937_64 rng_;
  BufferPool buffers_;  // relay buffers: each request relaying a body holds its own
};

}  // namespace granary::s3api

// The cached read path of ProxyHandler: GET/HEAD of an object served from the cache, what is missing
// fetched from the backend as chunk-aligned ranged GETs (one downloader per chunk, streamed to every
// reader as it arrives), metadata revalidated after its TTL, and writes invalidating what they change.

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/beast/core/string.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "common/timeutil.h"
#include "s3api/backend_chunk_source.h"
#include "s3api/exchange.h"
#include "s3api/fill_wait.h"
#include "s3api/local_bytes.h"
#include "s3api/peer_chunk_source.h"
#include "s3api/peer_client.h"
#include "s3api/operation.h"
#include "s3api/request_xml.h"
#include "upstream/errors.h"

namespace granary::s3api {
namespace {

namespace bhttp = boost::beast::http;
using cache::Fill;
using cache::ObjectMeta;
using MetaPtr = std::shared_ptr<const ObjectMeta>;

/// Response headers that describe the object (replayed on hits); the rest describe one response.
bool isObjectHeader(std::string_view n) {
  static constexpr std::string_view kExact[] = {
      "content-type",   "content-encoding", "content-disposition", "content-language", "cache-control",
      "expires",        "etag",             "last-modified",       "x-amz-version-id", "x-amz-storage-class",
      "x-amz-website-redirect-location",    "x-amz-tagging-count", "x-amz-restore",    "x-amz-replication-status",
      "x-amz-expiration"};
  if (std::find(std::begin(kExact), std::end(kExact), n) != std::end(kExact)) return true;
  return n.starts_with("x-amz-meta-") || n.starts_with("x-amz-server-side-encryption") ||
         n.starts_with("x-amz-object-lock-");
}

}  // namespace

/// The metadata a HEAD (200) answer describes; null if it lacks a length or an ETag.
/// An object's metadata from the backend's answer to a HEAD, or to a GET (200, or 206 for a range).
MetaPtr metaFromHead(const upstream::ResponseHeader& h) {
  std::optional<std::uint64_t> size;
  if (h.result_int() == 206) {
    if (const auto cr = parseContentRange(h[bhttp::field::content_range])) size = cr->total;
  } else {
    size = parseLength(h[bhttp::field::content_length]);
  }
  auto etag = h[bhttp::field::etag];
  if (!size || etag.empty()) return nullptr;
  // Past 64 TiB (S3's limit is 5 TiB) a chunk index would not fit 32 bits at the smallest chunk size:
  // such an answer is relayed, never cached.
  if (*size > (std::uint64_t{64} << 40)) return nullptr;
  auto m = std::make_shared<ObjectMeta>();
  m->size = *size;
  m->etag = std::string(etag);
  for (const auto& f : h) {
    std::string name = lower(f.name_string());
    if (isObjectHeader(name)) m->headers.emplace_back(std::move(name), std::string(f.value()));
  }
  m->validatedAtMs = nowMillis();
  return m;
}

namespace {

/// Fills in flight (a chunk of RAM each) past which a new uncached read is relayed instead of cached:
/// this many times ProxyOptions::maxFills.
constexpr std::size_t kFillsHardLimitFactor = 4;

/// Whether the request's If-* headers let a read of the object go on (else the metadata alone answers
/// it: 304 or 412, before anything is asked of the backend).
bool preconditionsProceed(const sigv4::HeaderList& headers, const ObjectMeta& meta) {
  std::optional<std::chrono::system_clock::time_point> lastModified;
  if (const auto* lm = findHeader(meta.headers, "last-modified")) lastModified = parseHttpDate(*lm);
  return evaluatePreconditions(headers, meta.etag, lastModified) == Precondition::Proceed;
}

}  // namespace

std::string metaKeyOf(const std::string& backendId, const std::string& bucket, const std::string& key,
                      const std::string& versionId) {
  cache::ObjectId id;
  id.backend = backendId;
  id.bucket = bucket;
  id.key = key;
  id.versionId = versionId;
  return id.metaKey();
}

struct ProxyHandler::CachedObject {
  /// Backend id, bucket at the backend, key, version id (a versioned read: every request names it, every
  /// key includes it); ETag and size once the metadata is known (setMeta).
  cache::ObjectId id;
  cache::ChunkSourcePtr source;  // the backend (the handler's upstream, which outlives every fill)
  std::string metaKey;
  MetaPtr meta;
  bool firstChunkFetched = false;  // this request's metadata GET brought chunk 0: not a hit for it

  void setMeta(MetaPtr m) {
    id.etag = m->etag;
    id.size = m->size;
    meta = std::move(m);
  }
  std::uint32_t chunkCount() const { return id.chunkCount(); }
  std::uint64_t chunkLength(std::uint32_t i) const { return id.chunkLength(i); }
};

bool ProxyHandler::cacheEligible(const Exchange& x) const {
  const auto m = x.req.method();
  if (m != bhttp::verb::get && m != bhttp::verb::head) return false;
  if (x.routed.bucket.empty() || x.routed.key.empty() || !x.policy->cache) return false;
  // partNumber, ?acl, ?tagging...: answered by the backend. response-* overrides are applied
  // to cached answers (signed requests only, as S3 allows them).
  for (const auto& kv : x.routed.query) {
    if (kv.first == "versionId" && !kv.second.empty()) continue;  // versions are cached under their id
    if (kv.first == "partNumber" && parseLength(kv.second)) continue;  // a part is a range of the object
    if (kv.first == "x-id") continue;  // the operation's name, added by the AWS SDK for JavaScript v3
    if (!isPresignParam(kv.first) && (responseOverrideHeader(kv.first).empty() || x.accessKey.empty())) return false;
  }
  for (const auto& [name, value] : x.headers) {
    if (name.starts_with("x-amz-server-side-encryption-customer-")) return false;
    if (name == "range") {
      ByteRange r;
      if (parseRange(value, r) == RangeParse::MultiRange) return false;
    }
  }
  return true;
}

http::Awaitable<ProxyHandler::MetaAnswer> ProxyHandler::fetchMeta(const Exchange& x, const std::string& metaKey,
                                                                   MetaPtr stale, upstream::UpstreamResponsePtr* firstChunk) {
  // What a backend failure is, for stale-if-error: no answer at all (refused, reset, timed out) or a 5xx.
  // A 403 or 404 is an answer about the object, never a reason to serve what was cached.
  auto failedBackend = [](unsigned status) { return status >= 500; };
  if (firstChunk && !stale) {
    // A GET of the first chunk answers what a HEAD would, and starts that chunk's fill: the client's first
    // byte is one backend round trip away instead of two.
    upstream::UpstreamRequest g;
    g.method = bhttp::verb::get;
    g.bucket = x.backendBucket;
    g.key = x.routed.key;
    if (const auto* v = findParam(x.routed.query, "versionId")) g.query.emplace_back("versionId", *v);
    g.headers.emplace_back("range", "bytes=0-" + std::to_string(cache_->cache().chunkSize() - 1));
    cache_->countRevalidation();
    auto resp = co_await x.upstream->send(g);
    if (!resp) co_return MetaAnswer{nullptr, true};
    const unsigned status = (*resp)->header().result_int();
    if (status == 200 || status == 206) {
      MetaPtr m = metaFromHead((*resp)->header());
      if (m) *firstChunk = std::move(*resp);
      co_return MetaAnswer{m, false};
    }
    if (status != 416) co_return MetaAnswer{nullptr, failedBackend(status)};  // the client's own request gets the answer
    // 416: an empty object has no first byte: a HEAD describes it.
  }
  upstream::UpstreamRequest r;
  r.method = bhttp::verb::head;
  r.bucket = x.backendBucket;
  r.key = x.routed.key;
  if (const auto* v = findParam(x.routed.query, "versionId")) r.query.emplace_back("versionId", *v);
  if (stale) r.headers.emplace_back("if-none-match", stale->etag);
  cache_->countRevalidation();
  auto resp = co_await x.upstream->send(r);
  if (!resp) {
    spdlog::warn("{} revalidating /{}/{} failed: {}", x.requestId, logSafe(r.bucket), logSafe(r.key),
                 resp.error().message());
    co_return MetaAnswer{nullptr, true};
  }
  const auto& h = (*resp)->header();
  const unsigned status = h.result_int();
  if (status == 304 && stale) {
    auto m = std::make_shared<ObjectMeta>(*stale);
    m->validatedAtMs = nowMillis();
    m->fromDisk = false;
    co_return MetaAnswer{m, false};
  }
  if (status == 200) co_return MetaAnswer{metaFromHead(h), false};
  if (status == 404 && stale) cache_->cache().invalidateMeta(metaKey);
  if (failedBackend(status))
    spdlog::warn("{} revalidating /{}/{}: the backend answered {}", x.requestId, logSafe(r.bucket), logSafe(r.key), status);
  co_return MetaAnswer{nullptr, failedBackend(status)};  // 403, 404...: the client's own request gets the answer
}

http::Awaitable<ProxyHandler::BackendAccess> ProxyHandler::backendAllows(Exchange& x) {
  std::string versionId;
  if (const auto* v = findParam(x.routed.query, "versionId")) versionId = *v;
  // Decisions are per client key and per the credentials they were made with (a reload that gives the
  // key other backend credentials starts afresh).
  std::string id = x.accessKey;
  std::string signer;
  if (x.client && x.client->backendCredentials) signer = x.client->backendCredentials->accessKey;
  const std::array<const std::string*, 5> parts{&signer, x.backendId, &x.backendBucket, &x.routed.key, &versionId};
  for (const std::string* part : parts) {  // (a named array: GCC 12 coroutines and temporaries)
    id.push_back('\0');
    id += *part;
  }
  const auto now = std::chrono::steady_clock::now();
  if (auto it = accessDecisions_.find(id); it != accessDecisions_.end()) {
    if (now < it->second.until) co_return it->second.allowed ? BackendAccess::Allowed : BackendAccess::Refused;
    accessDecisions_.erase(it);
  }
  upstream::UpstreamRequest head;
  head.method = bhttp::verb::head;
  head.bucket = x.backendBucket;
  head.key = x.routed.key;
  if (!versionId.empty()) head.query.emplace_back("versionId", versionId);
  auto resp = co_await x.upstream->send(head);  // signed with the key's own credentials
  if (!resp) co_return BackendAccess::Unknown;  // the request goes to the backend as it is, and fails there
  const unsigned status = (*resp)->header().result_int();
  if (status != 200 && status != 403) co_return BackendAccess::Unknown;  // 404...: the backend answers it
  std::shared_ptr<const TtlTable> tables;
  if (opts_.ttls) tables = opts_.ttls->get();
  auto ttl = x.policy->metadataTtl.value_or(opts_.metadataTtl);
  if (tables) ttl = tables->forBucket(x.routed.bucket);
  const auto keep = std::min<std::chrono::milliseconds>(ttl, kMaxAccessDecision);
  if (keep.count() > 0) {
    if (accessDecisions_.size() >= kMaxAccessDecisions) accessDecisions_.clear();
    accessDecisions_[id] = AccessDecision{status == 200, now + keep};
  }
  co_return status == 200 ? BackendAccess::Allowed : BackendAccess::Refused;
}

http::Awaitable<MetaPtr> ProxyHandler::freshMeta(Exchange& x, const std::string& metaKey, bool& fromCache,
                                                 bool& stale, std::shared_ptr<CachedObject> fillFirst) {
  std::shared_ptr<const TtlTable> tables;  // (no ?: of class temporaries: GCC 12 coroutines)
  if (opts_.ttls) tables = opts_.ttls->get();
  auto ttl = x.policy->metadataTtl.value_or(opts_.metadataTtl);
  std::chrono::milliseconds staleIfError{0};
  if (tables) {
    ttl = tables->forBucket(x.routed.bucket);
    staleIfError = tables->staleIfError(x.routed.bucket);
  }
  cache::ChunkCache& c = cache_->cache();
  const std::uint64_t bucketEpoch = c.bucketEpoch(*x.backendId, x.backendBucket);
  auto isFresh = [&](const ObjectMeta& m) {
    return !m.fromDisk && m.bucketEpoch == bucketEpoch &&
           (ttl == std::chrono::milliseconds::max() || nowMillis() - m.validatedAtMs < ttl.count());
  };
  // stale-if-error (RFC 5861): metadata the backend vouched for at most TTL + staleIfError ago may answer
  // while the backend fails; its bytes were the backend's when last validated. Never metadata a whole-bucket
  // invalidation has made suspect since (an unattributed write may have replaced the object). Metadata read
  // back after a restart is used: the case stale-if-error exists for (kill -9 can lose ~100 ms of journal).
  auto staleUsable = [&](const ObjectMeta& m) {
    if (staleIfError.count() <= 0 || m.bucketEpoch != bucketEpoch) return false;
    if (ttl == std::chrono::milliseconds::max() || staleIfError == std::chrono::milliseconds::max()) return true;
    return nowMillis() - m.validatedAtMs <= ttl.count() + staleIfError.count();
  };
  constexpr int kBackendDown = 1;  // the leader's note: the backend failed (stale copies may answer)
  MetaPtr m = co_await cache_->lookupMeta(metaKey);
  if (m && isFresh(*m)) {
    fromCache = true;
    co_return m;
  }
  const std::int64_t asked = nowMillis();
  auto [fill, leader] = c.metaFills().acquire(metaKey, [] { return cache::ChunkPtr{}; });
  if (leader) {
    cache::FillGuard guard{c.metaFills(), metaKey, fill};
    const std::uint64_t epoch = c.metaEpoch(metaKey);
    upstream::UpstreamResponsePtr first;
    MetaAnswer answer;
    if (!fillFirst) answer.meta = co_await metaFromOwner(x, ttl);  // a cluster's owner asks for the fleet
    if (!answer.meta) answer = co_await fetchMeta(x, metaKey, m, fillFirst ? &first : nullptr);
    if (answer.meta) {
      auto stamped = std::make_shared<ObjectMeta>(*answer.meta);
      stamped->bucketEpoch = bucketEpoch;
      answer.meta = std::move(stamped);
    }
    MetaPtr fresh = answer.meta;
    if (fresh && first) {
      // The first chunk's fill exists before the metadata does: requests that waited for the metadata
      // join this fill instead of asking the backend for the chunk again.
      fillFirst->setMeta(fresh);
      fillFirst->firstChunkFetched = true;
      cache_->prefetch(fillFirst->id, 0, std::make_shared<BackendChunkSource>(x.upstream, std::move(first)));
    }
    if (fresh) co_await cache_->storeMeta(metaKey, fresh, epoch);
    guard.ok = fresh != nullptr;
    if (!fresh && answer.backendDown) {
      fill->setNote(kBackendDown);
      if (m && staleUsable(*m)) {
        stale = true;
        co_return m;
      }
    }
    co_return fresh;
  }
  // Another request is asking the backend already: use its answer.
  while (fill->state() == Fill::State::Downloading) {
    co_await fill->waitPast(0, opts_.fillTimeout);
    if (fill->state() == Fill::State::Downloading && nowMillis() - asked > opts_.fillTimeout.count()) co_return nullptr;
  }
  MetaPtr now = c.metaInRam(metaKey);
  if (fill->state() == Fill::State::Done && now &&
      (isFresh(*now) || (now->validatedAtMs >= asked && now->bucketEpoch == bucketEpoch)))
    co_return now;
  if (fill->state() == Fill::State::Failed && fill->note() == kBackendDown && m && staleUsable(*m) &&
      c.metaInRam(metaKey) == m) {  // (not invalidated meanwhile)
    stale = true;
    co_return m;
  }
  co_return nullptr;
}

http::Awaitable<bool> ProxyHandler::serveCached(Exchange& x) {
  cache::ChunkCache& c = cache_->cache();
  auto obj = std::make_shared<CachedObject>();
  obj->id.backend = *x.backendId;
  obj->id.bucket = x.backendBucket;
  obj->id.key = x.routed.key;
  if (const auto* v = findParam(x.routed.query, "versionId")) obj->id.versionId = *v;
  obj->id.chunkSize = c.chunkSize();
  obj->source = std::make_shared<BackendChunkSource>(x.upstream);
  // In a cluster a missing chunk comes through its owner; never for a tenant key (its bytes must come
  // with its own credentials).
  const bool tenant = x.client && x.client->backendCredentials;
  if (peerFetcher_ && !tenant)
    obj->source = std::make_shared<PeerChunkSource>(opts_.cluster.members, *peerFetcher_, obj->source, opts_.cluster.stats);
  obj->metaKey = obj->id.metaKey();
  bool metaFromCache = false, stale = false;
  const bool head = x.req.method() == bhttp::verb::head;
  const std::string* partNumber = findParam(x.routed.query, "partNumber");
  // A whole-object GET that finds no metadata learns it from a GET of the first chunk (alone: in a cluster
  // it learns it by HEAD, so that chunk 0 also comes through its owner).
  std::shared_ptr<CachedObject> fillFirst;
  if (!head && !findHeader(x.headers, "range") && !partNumber && !peerFetcher_) fillFirst = obj;
  MetaPtr fresh = co_await freshMeta(x, obj->metaKey, metaFromCache, stale, fillFirst);
  if (fresh && obj->meta != fresh) obj->setMeta(fresh);  // (already set when the first chunk's fill started with it)
  if (!obj->meta || (stale && partNumber)) {  // a part's place is the backend's to say: not while it fails
    x.cacheStatus = "miss";
    co_return false;
  }
  if (stale && !head && !staleBytesOnHand(x, *obj)) {
    // Serving stale is only for bytes on hand: with chunks missing, the backend's error is the answer
    // (never a 304 or 412 decided on metadata the backend could not vouch for).
    x.cacheStatus = "miss";
    co_return false;
  }
  PartLocation part;
  if (partNumber && preconditionsProceed(x.headers, *obj->meta)) {  // (a 304 or 412 needs no part)
    auto located = co_await locateCachedPart(x, *obj, *partNumber);
    if (!located) co_return false;
    part = std::move(*located);
  }
  const ObjectRequest req{head, x.accessKey.empty(), x.headers, x.routed.query};
  const ObjectFacts facts{obj->meta->size, obj->meta->etag, obj->meta->headers};
  const S3Result<ObjectPlan> plan = planObject(req, facts, part);
  if (!plan) co_return co_await sendPlanError(x, plan.error());
  std::string_view status = metaFromCache ? "hit" : "miss";
  if (plan->body) status = cachedBytesStatus(*obj, *plan->body);
  if (stale && plan->body && status != "hit") {
    // Serving stale is only for bytes on hand: with chunks missing, the backend's error is the answer.
    x.cacheStatus = "miss";
    co_return false;
  }
  if (stale) status = "stale";
  if (plan->status != 304) x.cacheStatus = status;
  if (plan->body && status != "hit" && !stale && cache_->fillsInFlight() >= kFillsHardLimitFactor * opts_.maxFills) {
    // Every fill holds a chunk of RAM: past this many, a new request for uncached bytes is relayed from
    // the backend instead of filling the cache, so concurrent cold readers cannot take unbounded memory.
    x.cacheStatus = "bypass";
    co_return false;
  }
  http::ResponseHeader h;
  if (stale) {
    cache_->countStaleServed();
    h.set(bhttp::field::warning, "110 granary \"Response is Stale\"");
    spdlog::warn("{} /{}/{}: the backend could not revalidate it: serving the cached copy (stale-if-error)",
                 x.requestId, logSafe(x.routed.bucket), logSafe(x.routed.key));
  }
  if (opts_.cacheStatusHeader) h.set("x-granary-cache", status);
  CachedChunks bytes(*this, obj);
  const bool served = co_await servePlan(x, *plan, std::move(h), bytes);
  if (served && plan->status == 206 && plan->body) {
    // A ranged reader (s3transfer, PyTorch loaders) usually asks for what follows next: fetch it now.
    const auto last = static_cast<std::uint32_t>((plan->body->offset + plan->body->length - 1) / obj->id.chunkSize);
    for (std::uint32_t j = last + 1; j <= last + opts_.readAhead && j < obj->chunkCount(); ++j) startFill(obj, j);
  }
  co_return served;
}

bool ProxyHandler::staleBytesOnHand(const Exchange& x, const CachedObject& obj) const {
  sigv4::HeaderList unconditional;  // the request as it would be without its If-* headers
  for (const auto& h : x.headers)
    if (!h.first.starts_with("if-")) unconditional.push_back(h);
  const ObjectRequest req{false, x.accessKey.empty(), unconditional, x.routed.query};
  const ObjectFacts facts{obj.meta->size, obj.meta->etag, obj.meta->headers};
  const S3Result<ObjectPlan> plan = planObject(req, facts);
  // No bytes to send (an empty object, an unsatisfiable Range): the metadata alone answers.
  if (!plan || !plan->body) return true;
  return cachedBytesStatus(obj, *plan->body) == "hit";
}

http::Awaitable<std::optional<PartLocation>> ProxyHandler::locateCachedPart(Exchange& x, const CachedObject& obj,
                                                                            const std::string& part) {
  // Where the part lies is the backend's to say (a HEAD); its bytes are the cache's.
  upstream::UpstreamRequest r;
  r.method = bhttp::verb::head;
  r.bucket = obj.id.bucket;
  r.key = obj.id.key;
  r.query.emplace_back("partNumber", part);
  if (!obj.id.versionId.empty()) r.query.emplace_back("versionId", obj.id.versionId);
  auto resp = co_await x.upstream->send(r);
  if (!resp) co_return std::nullopt;
  const auto& ph = (*resp)->header();
  if (ph[bhttp::field::etag] != obj.meta->etag) co_return std::nullopt;  // changed since: the backend answers
  PartLocation where;
  if (const auto count = parseLength(ph["x-amz-mp-parts-count"]); count && *count <= kMaxPartNumber)
    where.partsCount = static_cast<std::uint32_t>(*count);
  if (ph.result_int() == 206) {
    const auto cr = parseContentRange(ph[bhttp::field::content_range]);
    if (!cr || cr->total != obj.meta->size || cr->last < cr->first) co_return std::nullopt;
    where.range = ResolvedRange{cr->first, cr->last - cr->first + 1};
  } else if (ph.result_int() != 200) {
    co_return std::nullopt;  // InvalidPartNumber and the like: the backend's answer
  }
  // 200: the backend located no part (it ignores partNumber, or the object is one part): the planner
  // answers the whole object, or InvalidPartNumber past the count the object shows.
  co_return where;
}

std::string_view ProxyHandler::cachedBytesStatus(const CachedObject& obj, const ResolvedRange& bytes) const {
  const auto first = static_cast<std::uint32_t>(bytes.offset / obj.id.chunkSize);
  const auto last = static_cast<std::uint32_t>((bytes.offset + bytes.length - 1) / obj.id.chunkSize);
  // Chunk 0 fetched by this very request's metadata GET is a miss for it; a chunk whose fill finished
  // counts as held (it is served from the fill's bytes while its insert completes).
  const std::uint32_t from = first == 0 && obj.firstChunkFetched ? 1 : first;
  const std::uint32_t cached = cache_->chunksOnHand(obj.id, from, last);
  return cached == last - first + 1 ? "hit" : cached == 0 ? "miss" : "partial";
}

http::Awaitable<bool> ProxyHandler::CachedChunks::stream(Exchange& x, std::uint64_t offset, std::uint64_t length,
                                                         http::ResponseHeader header) {
  co_return co_await handler_.streamChunks(x, obj_, offset, length, std::move(header));
}

http::Awaitable<bool> ProxyHandler::streamChunks(Exchange& x, const std::shared_ptr<const CachedObject>& obj,
                                                 std::uint64_t offset, std::uint64_t length,
                                                 http::ResponseHeader header) {
  const std::uint64_t C = obj->id.chunkSize;
  const auto first = static_cast<std::uint32_t>(offset / C);
  const auto last = static_cast<std::uint32_t>((offset + length - 1) / C);
  const std::uint64_t end = offset + length;
  bool headerSent = false;
  // The header goes out with the first byte, so a fetch that fails before it can still be retried
  // as a plain forward.
  auto send = [&](const char* p, std::size_t n) -> http::Awaitable<bool> {
    if (!headerSent) {
      headerSent = true;
      if (co_await x.out.writeHeader(std::move(header))) co_return false;
    }
    if (co_await x.out.writeBody(boost::asio::buffer(p, n))) co_return false;
    x.bytesOut += n;
    co_return true;
  };
  using Status = cache::CacheThread::ChunkRead::Status;
  std::uint64_t pos = offset;
  for (std::uint32_t i = first; i <= last; ++i) {
    for (std::uint32_t j = i + 1; j < i + opts_.parallelFills && j <= last; ++j) startFill(obj, j);
    const cache::CacheThread::ChunkRead read = co_await cache_->getOrFill(obj->id, i, obj->source);
    if (read.status == Status::Changed) {  // a fill of another length: the object changed under this request
      if (!headerSent) co_return false;
      x.errorCode = "ObjectChanged";
      co_return true;  // bytes already went out: cutting the connection is the only honest signal left
    }
    const std::uint64_t base = obj->id.chunkOffset(i);
    std::uint64_t at = pos - base;
    const std::uint64_t to = std::min(end, base + obj->chunkLength(i)) - base;
    if (read.status == Status::Hit) {
      if (!co_await send(read.chunk->value() + at, static_cast<std::size_t>(to - at))) {
        x.errorCode = "ClientGone";
        co_return true;
      }
      cache_->countServed(read, to - at);
      at = to;
    }
    while (read.status == Status::Filling && at < to) {
      const std::size_t ready = co_await readyPastPatiently(read.fill, static_cast<std::size_t>(at), opts_.fillTimeout);
      if (ready <= at) break;  // failed, or no progress: give up
      const std::uint64_t n = std::min<std::uint64_t>(ready, to) - at;
      if (!co_await send(read.fill->data() + at, static_cast<std::size_t>(n))) {
        x.errorCode = "ClientGone";
        co_return true;
      }
      at += n;
    }
    if (at < to) {  // the fill failed (or had just failed: Retry)
      if (!headerSent) co_return false;
      // Bytes already went out: cutting the connection is the only honest signal left.
      spdlog::warn("{} /{}/{}: chunk {} could not be fetched after {} bytes were sent (fill {}, {} bytes ready)",
                   x.requestId, logSafe(obj->id.bucket), logSafe(obj->id.key), i, x.bytesOut,
                   read.fill ? static_cast<int>(read.fill->state()) : -1, read.fill ? read.fill->ready() : 0);
      x.errorCode = "CacheFillFailed";
      co_return true;
    }
    pos = base + to;
  }
  co_await x.out.finish();
  co_return true;
}

void ProxyHandler::startFill(const std::shared_ptr<const CachedObject>& obj, std::uint32_t index) {
  if (!stopping_) cache_->prefetch(obj->id, index, obj->source, opts_.maxFills);
}

bool ProxyHandler::fillsOnWrite(const Exchange& x, std::optional<std::uint64_t> payloadLength) const {
  if (!cache_ || stopping_ || x.op != S3Op::PutObject || !x.policy->cache || x.policy->writeMode != WriteMode::Through)
    return false;
  if (!payloadLength || *payloadLength > opts_.writeFillMax) return false;
  for (const auto& [name, value] : x.headers)  // copies, SSE-C (the backend stores other bytes than sent)
    if (name == "x-amz-copy-source" || name.starts_with("x-amz-server-side-encryption-customer-")) return false;
  return true;
}

struct ProxyHandler::WrittenObject {
  upstream::Upstream* upstream = nullptr;
  std::string backendId, bucket, key, etag, data;
  std::uint64_t epoch = 0, bucketEpoch = 0;
};

void ProxyHandler::startFillAfterWrite(const Exchange& x, std::string etag, std::string data) {
  if (etag.empty()) return;
  auto w = std::make_shared<WrittenObject>();
  w->upstream = x.upstream;
  w->backendId = *x.backendId;
  w->bucket = x.backendBucket;
  w->key = x.routed.key;
  w->etag = std::move(etag);
  w->data = std::move(data);
  // Taken after the write's own invalidation: any later write or invalidation makes the fill a no-op.
  w->epoch = cache_->cache().metaEpoch(metaKeyOf(w->backendId, w->bucket, w->key, {}));
  w->bucketEpoch = cache_->cache().bucketEpoch(w->backendId, w->bucket);
  boost::asio::co_spawn(cache_->executor(), fillAfterWrite(std::move(w)), boost::asio::detached);
}

http::Awaitable<void> ProxyHandler::fillAfterWrite(std::shared_ptr<WrittenObject> w) {
  upstream::UpstreamRequest r;
  r.method = bhttp::verb::head;
  r.bucket = w->bucket;
  r.key = w->key;
  auto resp = co_await w->upstream->send(r);
  if (!resp || (*resp)->header().result_int() != 200) co_return;
  MetaPtr head = metaFromHead((*resp)->header());
  // Another write may have landed between the PUT and this HEAD: then these bytes are not the object's.
  if (!head || head->etag != w->etag || head->size != w->data.size()) co_return;
  auto meta = std::make_shared<ObjectMeta>(*head);
  meta->bucketEpoch = w->bucketEpoch;
  const cache::ObjectId id{w->backendId, w->bucket, w->key, {}, w->etag, w->data.size(), cache_->cache().chunkSize()};
  const std::string metaKey = id.metaKey();
  if (cache_->cache().metaEpoch(metaKey) != w->epoch) co_return;
  for (std::uint32_t i = 0; i < id.chunkCount(); ++i) {
    const std::string_view bytes(w->data.data() + id.chunkOffset(i), static_cast<std::size_t>(id.chunkLength(i)));
    co_await cache_->insert(id, i, bytes);
  }
  co_await cache_->storeMeta(metaKey, std::move(meta), w->epoch);  // chunks first: the metadata finds them
}

void ProxyHandler::invalidateForWrite(const Exchange& x, const upstream::UpstreamRequest& ur) {
  if (!cache_ || x.routed.bucket.empty()) return;
  const auto m = x.req.method();
  if (m == bhttp::verb::get || m == bhttp::verb::head || m == bhttp::verb::options) return;
  cache::ChunkCache& c = cache_->cache();
  auto invalidate = [&](const std::string& key, const std::string& versionId = {}) {
    c.invalidateMeta(metaKeyOf(*x.backendId, x.backendBucket, key, {}));
    // A version is immutable; only deleting it (DELETE ?versionId=) makes its entries go.
    if (!versionId.empty()) c.invalidateMeta(metaKeyOf(*x.backendId, x.backendBucket, key, versionId));
  };
  switch (writeScope(x.op, x.req.method_string(), !x.routed.key.empty(), x.routed.query,
                     findHeader(x.headers, "content-type"))) {
    case WriteScope::None:
      return;
    case WriteScope::Key: {
      const auto* v = m == bhttp::verb::delete_ ? findParam(x.routed.query, "versionId") : nullptr;
      invalidate(x.routed.key, v ? *v : std::string());
      return;
    }
    case WriteScope::Listed:
      // DeleteObjects: every key its body names, read as the backend reads them (forward() buffered and
      // checked the body; a body Granary cannot read never reaches the backend).
      for (const auto& [key, versionId] : deleteObjectsKeys(ur.bufferedBody)) invalidate(key, versionId);
      return;
    case WriteScope::Bucket:
      // A write whose keys Granary cannot tell (a browser POST form upload names its key inside the
      // form; an operation Granary does not know): everything cached of the bucket is revalidated.
      c.invalidateBucket(*x.backendId, x.backendBucket);
      spdlog::info("{} {} {} /{}: invalidating the bucket's cached metadata (a write Granary cannot attribute to keys)",
                   x.requestId, logSafe(x.req.method_string()), logSafe(opName(x.op)), logSafe(x.routed.bucket));
      return;
  }
}

http::Awaitable<void> ProxyHandler::invalidateOnOwners(const Exchange& x, const upstream::UpstreamRequest& ur) {
  if (!peers_ || x.routed.bucket.empty()) co_return;
  const cluster::MemberSetPtr set = opts_.cluster.members->current();
  if (!set) co_return;
  std::vector<std::pair<std::string, std::string>> keys;  // key, version id
  switch (writeScope(x.op, x.req.method_string(), !x.routed.key.empty(), x.routed.query,
                     findHeader(x.headers, "content-type"))) {
    case WriteScope::Key: {
      const auto* v = x.req.method() == bhttp::verb::delete_ ? findParam(x.routed.query, "versionId") : nullptr;
      keys.emplace_back(x.routed.key, v ? *v : std::string());
      break;
    }
    case WriteScope::Listed:
      keys = deleteObjectsKeys(ur.bufferedBody);
      break;
    default:
      co_return;  // (a bucket-wide invalidation stays local: its keys are unknown)
  }
  // An owner that failed once in this request is not asked again (a dead or stalled peer costs a
  // DeleteObjects of 1,000 keys one timeout, not 1,000), and its answer gets at most four reads of 256
  // bytes (a peer answering an endless or trickling body does not hold the client's write).
  std::vector<std::string> failed;
  for (const auto& [key, versionId] : keys) {
    const auto owner = set->rank(metaKeyOf(*x.backendId, x.backendBucket, key, {}), 1);
    if (owner.empty() || owner[0]->id == set->self()) continue;  // (this node's own: done already)
    const std::string address = owner[0]->address;
    if (std::find(failed.begin(), failed.end(), address) != failed.end()) continue;
    auto answer = co_await peers_->send(address, bhttp::verb::post,
                                        peerInvalidateTarget(*x.backendId, x.backendBucket, key, versionId));
    if (!answer) {
      spdlog::info("{} invalidating /{}/{} on its owner {} failed: {}", x.requestId, logSafe(x.routed.bucket),
                   logSafe(key), logSafe(address), answer.error().message());
      failed.push_back(address);
      continue;
    }
    std::array<char, 256> sink{};
    for (int reads = 0;; ++reads) {  // the short answer, so the connection can be kept
      if (reads == 4) {  // (the answer's destructor closes the connection)
        failed.push_back(address);
        break;
      }
      auto n = co_await (*answer)->read(boost::asio::buffer(sink));
      if (!n) failed.push_back(address);
      if (!n || *n == 0) break;
    }
  }
}

http::Awaitable<std::shared_ptr<const cache::ObjectMeta>> ProxyHandler::metaFromOwner(const Exchange& x,
                                                                                   std::chrono::milliseconds ttl) {
  // Never for a tenant key: its metadata is what its own credentials may see.
  if (!peers_ || x.routed.key.empty() || (x.client && x.client->backendCredentials)) co_return nullptr;
  const cluster::MemberSetPtr set = opts_.cluster.members ? opts_.cluster.members->current() : nullptr;
  if (!set) co_return nullptr;
  const auto owner = set->rank(metaKeyOf(*x.backendId, x.backendBucket, x.routed.key, {}), 1);
  if (owner.empty() || owner[0]->id == set->self()) co_return nullptr;
  std::string versionId;
  if (const auto* v = findParam(x.routed.query, "versionId")) versionId = *v;
  std::string target = peerInvalidateTarget(*x.backendId, x.backendBucket, x.routed.key, versionId);
  target.replace(0, kPeerInvalidatePath.size(), kPeerMetaPath);  // the same identity, another operation
  const std::string address = owner[0]->address;
  auto answer = co_await peers_->send(address, bhttp::verb::get, std::move(target));
  if (!answer) co_return nullptr;
  PeerAnswer& a = **answer;
  const auto len = a.contentLength();
  if (a.status() != 200 || !len || *len > (64u << 10)) co_return nullptr;  // (a record is a few KiB at most)
  std::string body(static_cast<std::size_t>(*len), '\0');
  std::size_t at = 0;
  while (at < body.size()) {
    auto n = co_await a.read(boost::asio::buffer(body.data() + at, body.size() - at));
    if (!n || *n == 0) co_return nullptr;
    at += *n;
  }
  std::array<char, 1> end{};
  (void)co_await a.read(boost::asio::buffer(end.data(), 0));  // the body's end: the connection is kept
  auto parsed = cache::parseMeta(body);
  if (!parsed || parsed->fromDisk) co_return nullptr;
  if (ttl != std::chrono::milliseconds::max() && nowMillis() - parsed->validatedAtMs >= ttl.count()) co_return nullptr;
  co_return std::make_shared<const ObjectMeta>(std::move(*parsed));
}

}  // namespace granary::s3api

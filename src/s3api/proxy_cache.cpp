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
#include "s3api/exchange.h"
#include "s3api/operation.h"
#include "s3api/request_xml.h"
#include "upstream/errors.h"

namespace granary::s3api {
namespace {

namespace bhttp = boost::beast::http;
using cache::ConstChunkPtr;
using cache::Fill;
using cache::FillPtr;
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

/// ?response-content-type=... and its siblings: the response header they set, or "" for other names.
std::string_view responseOverride(std::string_view param) {
  static constexpr std::pair<std::string_view, std::string_view> kMap[] = {
      {"response-content-type", "content-type"},           {"response-content-language", "content-language"},
      {"response-expires", "expires"},                     {"response-cache-control", "cache-control"},
      {"response-content-disposition", "content-disposition"}, {"response-content-encoding", "content-encoding"}};
  for (const auto& [p, h] : kMap)
    if (p == param) return h;
  return {};
}

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

/// Fills in flight (a chunk of RAM each) past which a new uncached read is relayed instead of cached:
/// this many times ProxyOptions::maxFills.
constexpr std::size_t kFillsHardLimitFactor = 4;

/// Ends a fill exactly once, whatever path the downloader takes out of its coroutine.
struct FillGuard {
  cache::FillTable& table;
  const std::string& key;
  FillPtr fill;
  bool ok = false;
  ~FillGuard() {
    if (fill->state() == Fill::State::Downloading) fill->finish(ok);
    table.release(key, fill.get());
  }
};

}  // namespace

/// If-Match / If-None-Match: a list of entity tags or "*" (weak tags compare by their opaque part).
bool etagListMatches(std::string_view list, std::string_view etag) {
  auto strip = [](std::string_view t) {
    while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
    while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
    if (t.starts_with("W/")) t.remove_prefix(2);
    if (t.size() >= 2 && t.front() == '"' && t.back() == '"') t = t.substr(1, t.size() - 2);
    return t;
  };
  const std::string_view want = strip(etag);
  while (!list.empty()) {
    const auto comma = list.find(',');
    const std::string_view tok = strip(list.substr(0, comma));
    if (tok == "*" || tok == want) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

Precondition evaluatePreconditions(const sigv4::HeaderList& headers, std::string_view etag,
                                   std::optional<std::chrono::system_clock::time_point> lastModified) {
  auto date = [&](std::string_view name) -> std::optional<std::chrono::system_clock::time_point> {
    const auto* v = findHeader(headers, name);
    return v ? parseHttpDate(*v) : std::nullopt;
  };
  if (const auto* im = findHeader(headers, "if-match")) {
    if (!etagListMatches(*im, etag)) return Precondition::Failed;
  } else if (auto ius = date("if-unmodified-since"); ius && lastModified && *lastModified > *ius) {
    return Precondition::Failed;
  }
  if (const auto* inm = findHeader(headers, "if-none-match")) {
    if (etagListMatches(*inm, etag)) return Precondition::NotModified;
  } else if (auto ims = date("if-modified-since"); ims && lastModified && *lastModified <= *ims) {
    return Precondition::NotModified;
  }
  return Precondition::Proceed;
}

std::string metaKeyOf(const std::string& backendId, const std::string& bucket, const std::string& key,
                      const std::string& versionId) {
  return cache::encodeKey({backendId, bucket, key, versionId.empty() ? std::string() : "version:" + versionId,
                           cache::kMetaIndex});
}

struct ProxyHandler::CachedObject {
  std::string backendId;
  std::string versionId;  // a versioned read: every request names it, every key includes it
  upstream::Upstream* upstream = nullptr;  // the handler's, which outlives every fill it starts
  std::string bucket;  // at the backend
  std::string key;
  std::string metaKey;
  MetaPtr meta;
  std::uint64_t chunkSize = 0;
  bool firstChunkFetched = false;  // this request's metadata GET brought chunk 0: not a hit for it

  std::uint32_t chunkCount() const { return static_cast<std::uint32_t>((meta->size + chunkSize - 1) / chunkSize); }
  std::uint64_t chunkLength(std::uint32_t i) const {
    return std::min<std::uint64_t>(chunkSize, meta->size - std::uint64_t{i} * chunkSize);
  }
  std::string chunkKey(std::uint32_t i) const {
    return chunkKeyOf(backendId, bucket, key, meta->etag, meta->size, versionId, i);
  }
};

namespace {
/// Whether every chunk a GET of `obj` needs (its Range, else the whole object) is in the cache now.
bool wholeRangeCached(cache::ChunkCache& c, const ProxyHandler::CachedObject& obj, const sigv4::HeaderList& headers,
                      bool head) {
  if (head || obj.meta->size == 0) return true;
  std::uint64_t offset = 0, length = obj.meta->size;
  if (const auto* rh = findHeader(headers, "range")) {
    ByteRange br;
    if (parseRange(*rh, br) == RangeParse::Ok) {
      const auto rr = resolveRange(br, obj.meta->size);
      if (!rr) return true;  // answered 416 from the metadata alone
      offset = rr->offset;
      length = rr->length;
    }
  }
  for (auto i = static_cast<std::uint32_t>(offset / obj.chunkSize); i <= (offset + length - 1) / obj.chunkSize; ++i)
    if (!c.couldExist(cache::hashBytes(obj.chunkKey(i)))) return false;
  return true;
}
}  // namespace

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
    if (!isPresignParam(kv.first) && (responseOverride(kv.first).empty() || x.accessKey.empty())) return false;
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
    cache_->cache().stats().revalidations.fetch_add(1, std::memory_order_relaxed);
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
  cache_->cache().stats().revalidations.fetch_add(1, std::memory_order_relaxed);
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
  // while the backend fails; its bytes were the backend's when last validated.
  // Never metadata a whole-bucket invalidation has made suspect since (a write Granary could not attribute
  // to keys may have replaced the object). Metadata read back after a restart is used: that is the case
  // stale-if-error exists for (the journal's last ~100 ms of invalidations can be lost to kill -9).
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
    FillGuard guard{c.metaFills(), metaKey, fill};
    const std::uint64_t epoch = c.metaEpoch(metaKey);
    upstream::UpstreamResponsePtr first;
    MetaAnswer answer = co_await fetchMeta(x, metaKey, m, fillFirst ? &first : nullptr);
    if (answer.meta) {
      auto stamped = std::make_shared<ObjectMeta>(*answer.meta);
      stamped->bucketEpoch = bucketEpoch;
      answer.meta = std::move(stamped);
    }
    MetaPtr fresh = answer.meta;
    if (fresh && first) {
      // The first chunk's fill exists before the metadata does: requests that waited for the metadata
      // join this fill instead of asking the backend for the chunk again.
      fillFirst->meta = fresh;
      fillFirst->firstChunkFetched = true;
      std::string key = fillFirst->chunkKey(0);
      if (!c.couldExist(cache::hashBytes(key))) {
        auto [fill, leads] =
            c.fills().acquire(key, [&] { return std::make_shared<cache::Chunk>(key, fillFirst->chunkLength(0)); });
        if (leads)
          boost::asio::co_spawn(cache_->executor(),
                                downloadChunk(fillFirst, 0, std::move(fill), std::move(key), std::move(first)),
                                boost::asio::detached);
      }
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
  obj->backendId = *x.backendId;
  obj->upstream = x.upstream;
  obj->bucket = x.backendBucket;
  obj->key = x.routed.key;
  if (const auto* v = findParam(x.routed.query, "versionId")) obj->versionId = *v;
  obj->chunkSize = c.chunkSize();
  obj->metaKey = metaKeyOf(obj->backendId, obj->bucket, obj->key, obj->versionId);
  bool metaFromCache = false, stale = false;
  // A whole-object GET that finds no metadata learns it from a GET of the first chunk.
  const bool whole = x.req.method() == bhttp::verb::get && !findHeader(x.headers, "range") &&
                     !findParam(x.routed.query, "partNumber");
  std::shared_ptr<CachedObject> fillFirst = whole ? obj : nullptr;
  MetaPtr fresh = co_await freshMeta(x, obj->metaKey, metaFromCache, stale, fillFirst);
  if (obj->meta != fresh) obj->meta = fresh;  // (already set when the first chunk's fill started with it)
  if (!obj->meta) {
    x.cacheStatus = "miss";
    co_return false;
  }
  const ObjectMeta& meta = *obj->meta;
  if (stale && (findParam(x.routed.query, "partNumber") ||
                !wholeRangeCached(c, *obj, x.headers, x.req.method() == bhttp::verb::head))) {
    // Serving stale is only for bytes on hand: with chunks missing, the backend's error is the answer.
    x.cacheStatus = "miss";
    co_return false;
  }
  std::optional<std::chrono::system_clock::time_point> lastModified;
  for (const auto& [name, value] : meta.headers)
    if (name == "last-modified") lastModified = parseHttpDate(value);
  const Precondition pre = evaluatePreconditions(x.headers, meta.etag, lastModified);
  if (pre == Precondition::Failed) {
    const auto* im = findHeader(x.headers, "if-match");
    const S3Failure failed{S3Error::PreconditionFailed, {}, {{"Condition", im ? "If-Match" : "If-Unmodified-Since"}}};
    co_await sendError(x, failed);
    co_return true;
  }

  http::ResponseHeader h;
  for (const auto& [name, value] : meta.headers) h.insert(name, value);
  for (const auto& [param, value] : x.routed.query)  // (values checked for control bytes in forward())
    if (const auto header = responseOverride(param); !header.empty() && isSafeHeaderValue(value)) h.set(header, value);
  h.set("x-amz-request-id", x.requestId);
  if (stale) {
    cache_->cache().stats().staleServed.fetch_add(1, std::memory_order_relaxed);
    h.set(bhttp::field::warning, "110 granary \"Response is Stale\"");
    spdlog::warn("{} /{}/{}: the backend could not revalidate it: serving the cached copy (stale-if-error)",
                 x.requestId, logSafe(x.routed.bucket), logSafe(x.routed.key));
  }
  if (pre == Precondition::NotModified) {
    h.result(bhttp::status::not_modified);
    if (opts_.cacheStatusHeader) h.set("x-granary-cache", stale ? "stale" : metaFromCache ? "hit" : "miss");
    x.status = 304;
    if (!co_await x.out.writeHeader(std::move(h))) co_await x.out.finish();
    co_return true;
  }

  std::uint64_t offset = 0, length = meta.size;
  bool ranged = false;
  if (const auto* part = findParam(x.routed.query, "partNumber")) {
    // Where the part lies is the backend's to say (a HEAD); its bytes are the cache's. forward() checked
    // the number (1 to 10000, no Range beside it).
    upstream::UpstreamRequest r;
    r.method = bhttp::verb::head;
    r.bucket = obj->bucket;
    r.key = obj->key;
    r.query.emplace_back("partNumber", *part);
    if (!obj->versionId.empty()) r.query.emplace_back("versionId", obj->versionId);
    auto resp = co_await x.upstream->send(r);
    if (!resp) co_return false;
    const auto& ph = (*resp)->header();
    if (ph[bhttp::field::etag] != meta.etag) co_return false;  // changed since: the backend answers
    if (ph.result_int() == 206) {
      const auto cr = parseContentRange(ph[bhttp::field::content_range]);
      if (!cr || cr->total != meta.size || cr->last < cr->first) co_return false;
      ranged = true;
      offset = cr->first;
      length = cr->last - cr->first + 1;
    } else if (ph.result_int() == 200) {
      // The backend located no part (it ignores partNumber, or the object is one part): past the part
      // count the object shows (x-amz-mp-parts-count, else its ETag's "-N"), S3's answer is 416.
      const auto shown = parseLength(ph["x-amz-mp-parts-count"]);
      const std::uint64_t count = shown.value_or(partCountOf(meta.etag));
      if (parseLength(*part).value_or(0) > count) {
        const S3Failure bad{S3Error::InvalidPartNumber, {},
                            {{"PartNumberRequested", *part}, {"ActualPartCount", std::to_string(count)}}};
        co_await sendError(x, bad);
        co_return true;
      }
    } else {
      co_return false;  // InvalidPartNumber and the like: the backend's answer
    }
    if (const auto count = ph["x-amz-mp-parts-count"]; !count.empty()) h.set("x-amz-mp-parts-count", count);
  } else if (const auto* rh = findHeader(x.headers, "range")) {
    ByteRange br;
    if (parseRange(*rh, br) == RangeParse::Ok) {
      const auto rr = resolveRange(br, meta.size);
      if (!rr) {
        const S3Failure bad{S3Error::InvalidRange, {}, {{"RangeRequested", *rh}, {"ActualObjectSize", std::to_string(meta.size)}}};
        const std::string contentRange = "bytes */" + std::to_string(meta.size);  // (named: GCC 12 coroutines)
        co_await sendError(x, bad, contentRange);
        co_return true;
      }
      ranged = true;
      offset = rr->offset;
      length = rr->length;
    }
  }
  const bool head = x.req.method() == bhttp::verb::head;
  std::string_view status = metaFromCache ? "hit" : "miss";
  if (!head && length > 0) {
    std::uint32_t cached = 0;
    const auto first = static_cast<std::uint32_t>(offset / obj->chunkSize);
    const auto last = static_cast<std::uint32_t>((offset + length - 1) / obj->chunkSize);
    for (std::uint32_t i = first; i <= last; ++i) {
      // A chunk whose fill finished is served from that fill's bytes while its insert completes.
      const std::string key = obj->chunkKey(i);
      if (i == 0 && obj->firstChunkFetched) continue;  // fetched by this very request: a miss
      bool have = c.couldExist(cache::hashBytes(key));
      if (!have)
        if (const auto fill = c.fills().find(key); fill && fill->state() == Fill::State::Done) have = true;
      cached += have ? 1 : 0;
    }
    status = cached == last - first + 1 ? "hit" : cached == 0 ? "miss" : "partial";
  }
  if (stale) status = "stale";
  h.result(ranged ? bhttp::status::partial_content : bhttp::status::ok);
  h.set(bhttp::field::accept_ranges, "bytes");
  h.set(bhttp::field::content_length, std::to_string(length));
  if (ranged)
    h.set(bhttp::field::content_range, "bytes " + std::to_string(offset) + "-" + std::to_string(offset + length - 1) +
                                           "/" + std::to_string(meta.size));
  if (opts_.cacheStatusHeader) h.set("x-granary-cache", status);
  x.status = h.result_int();
  x.cacheStatus = status;
  if (head || length == 0) {
    if (!co_await x.out.writeHeader(std::move(h))) co_await x.out.finish();
    co_return true;
  }
  if (status != "hit" && !stale && c.fills().size() >= kFillsHardLimitFactor * opts_.maxFills) {
    // Every fill holds a chunk of RAM: past this many, a new request for uncached bytes is relayed from
    // the backend instead of filling the cache, so concurrent cold readers cannot take unbounded memory.
    x.cacheStatus = "bypass";
    co_return false;
  }
  const bool served = co_await streamChunks(x, obj, offset, length, std::move(h));
  if (served && ranged) {
    // A ranged reader (s3transfer, PyTorch loaders) usually asks for what follows next: fetch it now.
    const auto last = static_cast<std::uint32_t>((offset + length - 1) / obj->chunkSize);
    for (std::uint32_t j = last + 1; j <= last + opts_.readAhead && j < obj->chunkCount(); ++j) startFill(obj, j);
  }
  co_return served;
}

http::Awaitable<bool> ProxyHandler::streamChunks(Exchange& x, const std::shared_ptr<const CachedObject>& obj,
                                                 std::uint64_t offset, std::uint64_t length,
                                                 http::ResponseHeader header) {
  cache::CacheStats& st = cache_->cache().stats();
  const std::uint64_t C = obj->chunkSize;
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
  std::uint64_t pos = offset;
  for (std::uint32_t i = first; i <= last; ++i) {
    for (std::uint32_t j = i + 1; j < i + opts_.parallelFills && j <= last; ++j) startFill(obj, j);
    cache::CacheThread::Tier tier = cache::CacheThread::Tier::None;
    auto [chunk, fill] = co_await obtainChunk(obj, i, &tier);
    if (!chunk && !fill) {  // a fill of another length: the object changed under this request
      if (!headerSent) co_return false;
      x.errorCode = "ObjectChanged";
      co_return true;  // bytes already went out: cutting the connection is the only honest signal left
    }
    const std::uint64_t base = std::uint64_t{i} * C;
    const std::uint64_t from = pos - base;
    const std::uint64_t to = std::min(end, base + obj->chunkLength(i)) - base;
    if (chunk) {
      if (!co_await send(chunk->value() + from, static_cast<std::size_t>(to - from))) {
        x.errorCode = "ClientGone";
        co_return true;
      }
      st.bytesFromCache.fetch_add(to - from, std::memory_order_relaxed);
      (tier == cache::CacheThread::Tier::Ram ? st.bytesFromRam : st.bytesFromDisk).fetch_add(to - from, std::memory_order_relaxed);
    } else {
      std::uint64_t at = from;
      while (at < to) {
        const std::size_t ready = fill->ready();
        if (ready > at) {
          const std::uint64_t n = std::min<std::uint64_t>(ready, to) - at;
          if (!co_await send(fill->data() + at, static_cast<std::size_t>(n))) {
            x.errorCode = "ClientGone";
            co_return true;
          }
          at += n;
          continue;
        }
        if (fill->state() != Fill::State::Downloading) break;
        co_await fill->waitPast(at, opts_.fillTimeout);
        if (fill->ready() == ready && fill->state() == Fill::State::Downloading) break;  // no progress: give up
      }
      if (at < to) {
        if (!headerSent) co_return false;
        // Bytes already went out: cutting the connection is the only honest signal left.
        spdlog::warn("{} /{}/{}: chunk {} could not be fetched after {} bytes were sent", x.requestId,
                     logSafe(obj->bucket), logSafe(obj->key), i, x.bytesOut);
        x.errorCode = "CacheFillFailed";
        co_return true;
      }
    }
    pos = base + to;
  }
  co_await x.out.finish();
  co_return true;
}

http::Awaitable<std::pair<ConstChunkPtr, FillPtr>> ProxyHandler::obtainChunk(
    const std::shared_ptr<const CachedObject>& obj, std::uint32_t index, cache::CacheThread::Tier* tier) {
  std::string key = obj->chunkKey(index);
  const std::uint64_t length = obj->chunkLength(index);
  if (auto c = co_await cache_->lookup(key, cache::hashBytes(key), length, tier))
    co_return std::pair{std::move(c), FillPtr{}};
  cache::ChunkCache& c = cache_->cache();
  auto [fill, leader] = c.fills().acquire(key, [&] { return std::make_shared<cache::Chunk>(key, length); });
  if (leader) {
    boost::asio::co_spawn(cache_->executor(), downloadChunk(obj, index, fill, std::move(key), nullptr),
                          boost::asio::detached);
  } else if (fill->sharedChunk()->valueSize() != length) {
    // Started by a request that saw another size under the same ETag: the object is being rewritten.
    c.stats().lengthErrors.fetch_add(1, std::memory_order_relaxed);
    c.invalidateMeta(obj->metaKey);
    spdlog::warn("/{}/{}: chunk {} is being fetched as {} bytes, this request expects {}: the object changed",
                 logSafe(obj->bucket), logSafe(obj->key), index, fill->sharedChunk()->valueSize(), length);
    co_return std::pair{ConstChunkPtr{}, FillPtr{}};
  } else {
    c.stats().fillWaits.fetch_add(1, std::memory_order_relaxed);
  }
  co_return std::pair{ConstChunkPtr{}, std::move(fill)};
}

void ProxyHandler::startFill(const std::shared_ptr<const CachedObject>& obj, std::uint32_t index) {
  cache::ChunkCache& c = cache_->cache();
  if (stopping_ || c.fills().size() >= opts_.maxFills) return;
  std::string key = obj->chunkKey(index);
  if (c.couldExist(cache::hashBytes(key))) return;
  auto [fill, leader] =
      c.fills().acquire(key, [&] { return std::make_shared<cache::Chunk>(key, obj->chunkLength(index)); });
  if (leader)
    boost::asio::co_spawn(cache_->executor(), downloadChunk(obj, index, std::move(fill), std::move(key), nullptr),
                          boost::asio::detached);
}

http::Awaitable<void> ProxyHandler::downloadChunk(std::shared_ptr<const CachedObject> obj, std::uint32_t index,
                                                  FillPtr fill, std::string key, upstream::UpstreamResponsePtr opened) {
  cache::ChunkCache& c = cache_->cache();
  FillGuard guard{c.fills(), key, fill};
  c.stats().fillsStarted.fetch_add(1, std::memory_order_relaxed);
  const std::uint64_t first = std::uint64_t{index} * obj->chunkSize;
  const std::uint64_t len = obj->chunkLength(index);
  upstream::UpstreamRequest r;
  r.method = bhttp::verb::get;
  r.bucket = obj->bucket;
  r.key = obj->key;
  if (!obj->versionId.empty()) r.query.emplace_back("versionId", obj->versionId);
  r.headers.emplace_back("range", "bytes=" + std::to_string(first) + "-" + std::to_string(first + len - 1));
  r.headers.emplace_back("if-match", obj->meta->etag);  // never mix bytes of two versions
  if (!opened && c.couldExist(cache::hashBytes(key))) {
    // The previous fill of this chunk ended (and left the table) between the caller's lookup and its
    // taking this fill: the cache holds the bytes now, so they fill this one instead of the backend.
    if (auto held = co_await cache_->lookup(key, cache::hashBytes(key), len)) {
      std::memcpy(fill->chunk().value(), held->value(), static_cast<std::size_t>(len));
      fill->advance(static_cast<std::size_t>(len));
      fill->chunk().seal();
      guard.ok = true;
      fill->finish(true);
      co_return;
    }
  }
  if (!opened) {
    auto resp = co_await obj->upstream->send(r);
    if (!resp) {
      spdlog::warn("fetching chunk {} of /{}/{} failed: {}", index, logSafe(obj->bucket), logSafe(obj->key),
                   resp.error().message());
      co_return;
    }
    opened = std::move(*resp);
  }
  upstream::UpstreamResponse& body = *opened;
  const auto& h = body.header();
  std::uint64_t skip = 0;
  const unsigned status = h.result_int();
  if ((status == 200 || status == 206) && !h[bhttp::field::etag].empty() && h[bhttp::field::etag] != obj->meta->etag) {
    // A backend that ignores If-Match (s3rver does) sent another version: its bytes must not join ours.
    spdlog::info("/{}/{} changed at the backend (ETag {} -> {}): revalidating", logSafe(obj->bucket),
                 logSafe(obj->key), logSafe(obj->meta->etag), logSafe(h[bhttp::field::etag]));
    c.invalidateMeta(obj->metaKey);
    co_return;
  }
  switch (status) {
    case 206: {
      const auto cr = parseContentRange(h[bhttp::field::content_range]);
      if (cr && cr->total && *cr->total != obj->meta->size) {
        // Same ETag, another size: the object is being rewritten (s3rver overwrites in place). Its
        // metadata goes; no byte of this answer joins the cache.
        c.stats().lengthErrors.fetch_add(1, std::memory_order_relaxed);
        c.invalidateMeta(obj->metaKey);
        spdlog::warn("chunk {} of /{}/{}: the backend says the object holds {} bytes, not {}: revalidating", index,
                     logSafe(obj->bucket), logSafe(obj->key), *cr->total, obj->meta->size);
        co_return;
      }
      if (!cr || cr->first != first || cr->last != first + len - 1) {
        spdlog::warn("chunk {} of /{}/{}: the backend answered {} for bytes {}-{}", index, logSafe(obj->bucket),
                     logSafe(obj->key), logSafe(h[bhttp::field::content_range]), first, first + len - 1);
        co_return;
      }
      if (const auto cl = body.contentLength(); cl && *cl != len) co_return;
      break;
    }
    case 200:  // the Range was ignored: the whole object follows
      if (body.contentLength() != obj->meta->size) {
        c.stats().lengthErrors.fetch_add(1, std::memory_order_relaxed);
        c.invalidateMeta(obj->metaKey);
        co_return;
      }
      skip = first;
      break;
    case 412:
    case 416:
      // The object changed at the backend: its old metadata (and with it the old chunks) must go.
      spdlog::info("/{}/{} changed at the backend (ETag {} gone): revalidating", logSafe(obj->bucket),
                   logSafe(obj->key), logSafe(obj->meta->etag));
      c.invalidateMeta(obj->metaKey);
      co_return;
    default:
      spdlog::warn("chunk {} of /{}/{}: the backend answered {}", index, logSafe(obj->bucket), logSafe(obj->key),
                   h.result_int());
      co_return;
  }
  char* dst = fill->chunk().value();
  while (skip > 0) {  // bytes before the chunk land in its buffer and are overwritten: readers see only ready()
    auto n = co_await body.read(boost::asio::buffer(dst, static_cast<std::size_t>(std::min(skip, len))));
    if (!n || *n == 0) co_return;
    skip -= *n;
  }
  std::uint64_t got = 0;
  while (got < len) {
    auto n = co_await body.read(boost::asio::buffer(dst + got, static_cast<std::size_t>(len - got)));
    if (!n || *n == 0) {
      spdlog::warn("chunk {} of /{}/{}: the backend body ended after {} of {} bytes", index, logSafe(obj->bucket),
                   logSafe(obj->key), got, len);
      co_return;
    }
    got += *n;
    fill->advance(*n);
  }
  c.stats().bytesFromBackend.fetch_add(len, std::memory_order_relaxed);
  fill->chunk().seal();
  guard.ok = true;
  fill->finish(true);
  // Readers already have the bytes; the fill stays findable until the cache holds the chunk.
  co_await cache_->insert(fill->sharedChunk(), len);
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
  const std::string metaKey = metaKeyOf(w->backendId, w->bucket, w->key, {});
  if (cache_->cache().metaEpoch(metaKey) != w->epoch) co_return;
  const std::uint64_t chunkSize = cache_->cache().chunkSize();
  for (std::uint64_t off = 0, i = 0; off < w->data.size(); off += chunkSize, ++i) {
    const std::uint64_t len = std::min<std::uint64_t>(chunkSize, w->data.size() - off);
    auto chunk = std::make_shared<cache::Chunk>(
        chunkKeyOf(w->backendId, w->bucket, w->key, w->etag, w->data.size(), {}, static_cast<std::uint32_t>(i)), len);
    std::memcpy(chunk->value(), w->data.data() + off, static_cast<std::size_t>(len));
    chunk->seal();
    co_await cache_->insert(std::move(chunk), len);
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

}  // namespace granary::s3api

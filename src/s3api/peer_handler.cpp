#include "s3api/peer_handler.h"

#include <spdlog/spdlog.h>

#include <charconv>

#include "common/log_escape.h"
#include "common/uri.h"
#include "s3api/backend_chunk_source.h"
#include "s3api/fill_wait.h"
#include "s3api/peer_chunk_source.h"

namespace granary::s3api {

namespace bhttp = boost::beast::http;

namespace {

std::int64_t wallMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

const std::string* find(const QueryParams& q, std::string_view name) {
  for (const auto& [k, v] : q)
    if (k == name) return &v;
  return nullptr;
}

bool number(const QueryParams& q, std::string_view name, std::uint64_t& out) {
  const std::string* s = find(q, name);
  if (!s || s->empty()) return false;
  const auto [end, ec] = std::from_chars(s->data(), s->data() + s->size(), out);
  return ec == std::errc{} && end == s->data() + s->size();
}

PeerRefusal refusalOf(cluster::PeerAuthResult r) {
  switch (r) {
    case cluster::PeerAuthResult::Signature: return PeerRefusal::Signature;
    case cluster::PeerAuthResult::Expired: return PeerRefusal::Expired;
    case cluster::PeerAuthResult::Replay: return PeerRefusal::Replay;
    default: return PeerRefusal::Malformed;
  }
}

/// The backend as this request's fill source, remembering how its fetch ended (a version change is a 412
/// to the asking node, which then drops its metadata too).
class RecordingSource final : public cache::ChunkSource {
 public:
  explicit RecordingSource(upstream::Upstream* up) : backend_(up) {}
  boost::asio::awaitable<cache::FetchOutcome> fetch(const cache::ChunkRequest& req, cache::ChunkSink& sink) override {
    outcome = co_await backend_.fetch(req, sink);
    co_return outcome;
  }
  cache::FetchOutcome outcome = cache::FetchOutcome::Ok;

 private:
  BackendChunkSource backend_;
};

}  // namespace

struct PeerHandler::ChunkAsk {
  cache::ObjectId obj;
  std::uint32_t index = 0;
  std::uint64_t from = 0;
  bool fill = false;
  upstream::Upstream* upstream = nullptr;
};

PeerHandler::PeerHandler(PeerHandlerOptions opts, std::vector<std::unique_ptr<upstream::Upstream>> upstreams,
                         std::unique_ptr<cache::CacheThread> cache)
    : opts_(std::move(opts)), upstreams_(std::move(upstreams)), cache_(std::move(cache)) {}

PeerHandler::~PeerHandler() = default;

void PeerHandler::shutdown() {
  for (auto& u : upstreams_) u->shutdown();
}

std::string PeerHandler::protocolError(http::ResponseHeader& res, http::ProtocolError, std::string_view message) {
  res.set(bhttp::field::content_type, "text/plain");
  return std::string(message) + "\n";
}

int PeerHandler::backendIndex(const std::string& id) const {
  for (std::size_t i = 0; i < upstreams_.size(); ++i)
    if (opts_.buckets && opts_.buckets->backendId(i) == id) return static_cast<int>(i);
  return -1;
}

http::Awaitable<void> PeerHandler::respond(http::ResponseWriter& out, http::Status status, std::string_view why) {
  http::ResponseHeader h;
  h.result(status);
  h.set(bhttp::field::content_type, "text/plain");
  std::string body(why);
  body += "\n";
  h.set(bhttp::field::content_length, std::to_string(body.size()));
  if (co_await out.writeHeader(std::move(h))) co_return;
  if (co_await out.writeBody(boost::asio::buffer(body))) co_return;
  co_await out.finish();
}

http::Awaitable<void> PeerHandler::handle(const http::RequestHeader& req, const http::RequestContext&,
                                          http::BodyReader&, http::ResponseWriter& out) {
  const std::string_view target = req.target();
  const auto parts = splitTarget(target);
  const std::string_view path = parts.first, rawQuery = parts.second;
  const bool chunk = path == kPeerChunkPath && req.method() == bhttp::verb::get;
  const bool invalidate = path == kPeerInvalidatePath && req.method() == bhttp::verb::post;
  const bool meta = path == kPeerMetaPath && req.method() == bhttp::verb::get;
  if (!chunk && !invalidate && !meta) co_return co_await respond(out, http::Status::not_found, "no such peer operation");
  const cluster::PeerCredentials creds{req[cluster::kPeerNodeHeader], req[cluster::kPeerDateHeader],
                                       req[cluster::kPeerNonceHeader], req[cluster::kPeerHopHeader],
                                       req[cluster::kPeerSignatureHeader]};
  const cluster::PeerAuthResult auth = opts_.verifier->verify(req.method_string(), target, creds, wallMillis());
  if (auth != cluster::PeerAuthResult::Ok) {
    if (opts_.stats) opts_.stats->refused(refusalOf(auth));
    spdlog::warn("peer request from node {} refused: {}", logSafe(creds.node), cluster::name(auth));
    out.closeAfterResponse();
    co_return co_await respond(out, http::Status::forbidden, cluster::name(auth));
  }
  const auto query = parseQuery(rawQuery);
  const std::string* b = query ? find(*query, "b") : nullptr;
  const std::string* bucket = query ? find(*query, "bucket") : nullptr;
  const std::string* key = query ? find(*query, "key") : nullptr;
  if (!b || !bucket || !key) co_return co_await respond(out, http::Status::bad_request, "malformed");
  const int backend = backendIndex(*b);
  if (backend < 0 || !cache_) co_return co_await respond(out, http::Status::not_found, "unknown backend");
  ChunkAsk ask;
  ask.obj.backend = *b;
  ask.obj.bucket = *bucket;
  ask.obj.key = *key;
  if (const std::string* v = find(*query, "v")) ask.obj.versionId = *v;
  if (key->size() > 1024 || bucket->size() > 255 || ask.obj.versionId.size() > 1024)
    co_return co_await respond(out, http::Status::bad_request, "malformed");
  ask.upstream = upstreams_[static_cast<std::size_t>(backend)].get();
  if (meta) co_return co_await serveMeta(std::move(ask), out);
  if (invalidate) {
    cache_->invalidateMeta(ask.obj.metaKey());
    if (!ask.obj.versionId.empty()) {
      ask.obj.versionId.clear();
      cache_->invalidateMeta(ask.obj.metaKey());
    }
    if (opts_.stats) opts_.stats->invalidated();
    co_return co_await respond(out, http::Status::ok, "invalidated");
  }
  std::uint64_t index = 0, fill = 0;
  const std::string* etag = find(*query, "etag");
  // Every size checked before it is used: chunk size first (chunkCount() divides by it), an S3 object's
  // largest size (5 TiB), S3's key and bucket limits, an ETag of at most 128 bytes.
  constexpr std::uint64_t kMaxObjectSize = 5ull << 40;
  if (!etag || etag->empty() || etag->size() > 128 || !number(*query, "size", ask.obj.size) ||
      !number(*query, "cs", ask.obj.chunkSize) || !number(*query, "i", index) || !number(*query, "from", ask.from) ||
      !number(*query, "fill", fill) || ask.obj.size == 0 || ask.obj.size > kMaxObjectSize || ask.obj.chunkSize == 0)
    co_return co_await respond(out, http::Status::bad_request, "malformed");
  // Chunks are cut by this node's cache: another chunk size is not a chunk this node could hold.
  if (ask.obj.chunkSize != cache_->cache().chunkSize())
    co_return co_await respond(out, http::Status::service_unavailable, "another chunk size");
  if (index >= ask.obj.chunkCount()) co_return co_await respond(out, http::Status::bad_request, "malformed");
  ask.obj.etag = *etag;
  ask.index = static_cast<std::uint32_t>(index);
  ask.fill = fill != 0;
  if (ask.from > ask.obj.chunkLength(ask.index)) co_return co_await respond(out, http::Status::bad_request, "malformed");
  co_await serveChunk(ask, out);
}

/// The object's metadata as this node (its owner) knows it: cached and validated within the TTL, else asked
/// of the backend now (a HEAD, stored under the fence of the metadata's epoch), so that the fleet asks the
/// backend once per object and TTL. 404 for anything but a 200: the asker's own HEAD gets the real answer.
http::Awaitable<void> PeerHandler::serveMeta(ChunkAsk ask, http::ResponseWriter& out) {
  const std::string metaKey = ask.obj.metaKey();
  std::shared_ptr<const cache::ObjectMeta> m = co_await cache_->lookupMeta(metaKey);
  const std::int64_t now = wallMillis();
  if (!m || m->fromDisk || now - m->validatedAtMs >= opts_.metadataTtl.count()) {
    const std::uint64_t epoch = cache_->cache().metaEpoch(metaKey);
    upstream::UpstreamRequest r;
    r.method = bhttp::verb::head;
    r.bucket = ask.obj.bucket;
    r.key = ask.obj.key;
    if (!ask.obj.versionId.empty()) r.query.emplace_back("versionId", ask.obj.versionId);
    cache_->countRevalidation();
    auto resp = co_await ask.upstream->send(r);
    if (!resp || (*resp)->header().result_int() != 200) co_return co_await respond(out, http::Status::not_found, "no");
    auto fresh = metaFromHead((*resp)->header());
    if (!fresh) co_return co_await respond(out, http::Status::not_found, "no");
    auto stamped = std::make_shared<cache::ObjectMeta>(*fresh);
    stamped->bucketEpoch = cache_->cache().bucketEpoch(ask.obj.backend, ask.obj.bucket);
    m = stamped;
    co_await cache_->storeMeta(metaKey, m, epoch);
  }
  const std::string body = cache::serializeMeta(*m);
  http::ResponseHeader h;
  h.result(http::Status::ok);
  h.set(bhttp::field::content_type, "application/octet-stream");
  h.set(bhttp::field::content_length, std::to_string(body.size()));
  if (co_await out.writeHeader(std::move(h))) co_return;
  if (co_await out.writeBody(boost::asio::buffer(body))) co_return;
  co_await out.finish();
}

http::Awaitable<void> PeerHandler::serveChunk(const ChunkAsk& ask, http::ResponseWriter& out) {
  using Status = cache::CacheThread::ChunkRead::Status;
  const std::uint64_t len = ask.obj.chunkLength(ask.index);
  cache::CacheThread::ChunkRead read;
  std::shared_ptr<RecordingSource> recorder;
  if (ask.fill) {
    recorder = std::make_shared<RecordingSource>(ask.upstream);
    cache::ChunkSourcePtr source = recorder;
    read = co_await cache_->getOrFill(ask.obj, ask.index, source);
  } else {
    read.chunk = co_await cache_->lookup(ask.obj, ask.index, &read.tier);
    read.status = read.chunk ? Status::Hit : Status::Retry;
    if (!read.chunk) co_return co_await respond(out, http::Status::not_found, "not held");
  }
  if (read.status == Status::Changed || read.status == Status::Retry)
    spdlog::info("peer: chunk {} of /{}/{}: {}", ask.index, logSafe(ask.obj.bucket), logSafe(ask.obj.key),
                 read.status == Status::Changed ? "a fill of another length is under way" : "its fill just failed");
  if (read.status == Status::Changed) co_return co_await respond(out, http::Status::precondition_failed, "changed");
  if (read.status == Status::Retry) co_return co_await respond(out, http::Status::service_unavailable, "retry");
  std::uint64_t at = ask.from;
  if (read.status == Status::Filling) {
    // The header waits for the first byte: a fill that fails before it is still a clean 503 (or 412).
    const std::size_t ready = co_await readyPastPatiently(read.fill, static_cast<std::size_t>(at), opts_.fillTimeout);
    if (ready <= at && at < len) {
      // A fill this request started says why it failed (one it joined does not: the asker's backend will).
      const auto o = recorder ? recorder->outcome : cache::FetchOutcome::Failed;
      spdlog::info("peer: chunk {} of /{}/{}: its fill failed before byte {}", ask.index, logSafe(ask.obj.bucket),
                   logSafe(ask.obj.key), at);
      if (o == cache::FetchOutcome::Changed || o == cache::FetchOutcome::LengthMismatch)
        co_return co_await respond(out, http::Status::precondition_failed, "changed");
      co_return co_await respond(out, http::Status::service_unavailable, "fill failed");
    }
  }
  http::ResponseHeader h;
  h.result(http::Status::ok);
  h.set(bhttp::field::content_type, "application/octet-stream");
  h.set(bhttp::field::content_length, std::to_string(len - at));
  if (co_await out.writeHeader(std::move(h))) co_return;
  if (read.status == Status::Hit) {
    if (co_await out.writeBody(boost::asio::buffer(read.chunk->value() + at, static_cast<std::size_t>(len - at))))
      co_return;
    if (opts_.stats) opts_.stats->served(len - at);
    cache_->countServed(read, len - at);
    at = len;
  }
  while (at < len) {
    const std::size_t ready = co_await readyPastPatiently(read.fill, static_cast<std::size_t>(at), opts_.fillTimeout);
    if (ready <= at) {  // the fill failed after the header went out: cut the connection (a short body)
      spdlog::warn("peer: chunk {} of /{}/{} failed after {} of {} bytes", ask.index, logSafe(ask.obj.bucket),
                   logSafe(ask.obj.key), at, len);
      out.closeAfterResponse();
      co_return;
    }
    const std::uint64_t n = std::min<std::uint64_t>(ready, len) - at;
    if (co_await out.writeBody(boost::asio::buffer(read.fill->data() + at, static_cast<std::size_t>(n)))) co_return;
    if (opts_.stats) opts_.stats->served(n);
    at += n;
  }
  if (opts_.stats) opts_.stats->requestServed();
  co_await out.finish();
}

}  // namespace granary::s3api

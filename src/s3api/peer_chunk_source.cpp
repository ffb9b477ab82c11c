#include "s3api/peer_chunk_source.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "common/log_escape.h"
#include "common/uri.h"

namespace granary::s3api {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using cache::FetchOutcome;

namespace {

void param(std::string& t, std::string_view name, std::string_view value) {
  t += t.find('?') == std::string::npos ? '?' : '&';
  t += name;
  t += '=';
  t += uriEncode(value, true);
}

}  // namespace

std::string peerChunkTarget(const cache::ChunkRequest& req, std::uint64_t from, bool fill) {
  const cache::ObjectId& o = req.object;
  std::string t(kPeerChunkPath);
  param(t, "b", o.backend);
  param(t, "bucket", o.bucket);
  param(t, "key", o.key);
  if (!o.versionId.empty()) param(t, "v", o.versionId);
  param(t, "etag", o.etag);
  param(t, "size", std::to_string(o.size));
  param(t, "cs", std::to_string(o.chunkSize));
  param(t, "i", std::to_string(req.index));
  param(t, "from", std::to_string(from));
  param(t, "fill", fill ? "1" : "0");
  return t;
}

std::string peerInvalidateTarget(const std::string& backend, const std::string& bucket, const std::string& key,
                                 const std::string& versionId) {
  std::string t(kPeerInvalidatePath);
  param(t, "b", backend);
  param(t, "bucket", bucket);
  param(t, "key", key);
  if (!versionId.empty()) param(t, "v", versionId);
  return t;
}

asio::awaitable<PeerOutcome> HttpPeerFetcher::fetch(const cluster::Member& peer, bool fill,
                                                    const cache::ChunkRequest& req, cache::ChunkSink& sink) {
  const std::uint64_t from = sink.written();
  auto sent = co_await client_.send(peer.address, bhttp::verb::get, peerChunkTarget(req, from, fill));
  if (!sent) co_return PeerOutcome::Connect;
  PeerAnswer& a = **sent;
  const unsigned status = a.status();
  if (status == 404) co_return PeerOutcome::NotHeld;
  if (status == 412) co_return PeerOutcome::Changed;
  if (status != 200 || a.contentLength() != req.length - from) co_return PeerOutcome::Status;
  // Every read is bounded by peer_read_timeout, the whole body by one such timeout per MiB it holds: a
  // peer trickling a few bytes per timeout cannot hold the fill (and its readers) for hours.
  const auto timeout = client_.options().readTimeout;
  const auto mibs = std::max<std::uint64_t>(1, (req.length - from) >> 20);
  const auto deadline = std::chrono::steady_clock::now() + timeout * mibs;
  std::uint64_t at = from;
  while (at < req.length) {
    if (std::chrono::steady_clock::now() > deadline) co_return PeerOutcome::Short;
    auto n = co_await a.read(asio::buffer(sink.data() + at, static_cast<std::size_t>(req.length - at)));
    if (!n || *n == 0) co_return PeerOutcome::Short;
    at += *n;
    sink.advance(*n);
  }
  co_await a.read(asio::buffer(sink.data(), 0));  // the body's end: the connection goes back to the pool
  co_return PeerOutcome::Ok;
}

std::vector<PeerChunkSource::Ask> PeerChunkSource::plan(const cluster::MemberSet& set, const std::string& chunkKey) {
  const auto owners = set.rank(chunkKey, 2);
  std::vector<Ask> asks;
  const std::string& self = set.self();
  if (!owners.empty() && owners[0]->id == self) {
    if (owners.size() > 1) asks.push_back({*owners[1], false});  // a lazy join: the previous owner, if it holds it
  } else if (owners.size() > 1 && owners[1]->id == self) {
    asks.push_back({*owners[0], true});
  } else {
    for (const auto* m : owners) asks.push_back({*m, true});
  }
  return asks;
}

asio::awaitable<FetchOutcome> PeerChunkSource::fetch(const cache::ChunkRequest& req, cache::ChunkSink& sink) {
  std::vector<Ask> asks;
  if (const cluster::MemberSetPtr set = members_ ? members_->current() : nullptr) {
    const std::string key = req.object.chunkKey(req.index);
    asks = plan(*set, key);
    // Another node owns it: this node serves it and keeps it only once it is read here again.
    const auto owner = set->rank(key, 1);
    if (!owner.empty() && owner[0]->id != set->self()) sink.markBorrowed();
  }
  for (const Ask& ask : asks) {
    const std::uint64_t before = sink.written();
    const auto t0 = std::chrono::steady_clock::now();
    PeerOutcome o = PeerOutcome::Connect;
    try {  // (a peer's failure of any kind is a reason to ask the next source, never the reader's error)
      o = co_await fetcher_.fetch(ask.peer, ask.fill, req, sink);
    } catch (const std::exception& e) {
      spdlog::warn("chunk {}: asking peer {} failed: {}", req.index, logSafe(ask.peer.id), e.what());
      o = sink.written() > before ? PeerOutcome::Short : PeerOutcome::Connect;
    }
    const std::uint64_t got = sink.written() - before;
    sink.notePeerBytes(got);
    if (stats_) {
      stats_->fetched(got);
      stats_->saved(got);
    }
    switch (o) {
      case PeerOutcome::Ok:
        if (stats_) stats_->fetchLatency().observe(std::chrono::steady_clock::now() - t0);
        co_return FetchOutcome::Ok;
      case PeerOutcome::Changed:
        if (stats_) stats_->fallback(PeerFallback::Changed);
        spdlog::info("chunk {} of /{}/{}: peer {} says the object changed at the backend", req.index,
                     logSafe(req.object.bucket), logSafe(req.object.key), logSafe(ask.peer.id));
        co_return FetchOutcome::Changed;
      case PeerOutcome::NotHeld:
        if (ask.fill && stats_) stats_->fallback(PeerFallback::Status);  // (fill=0: the expected miss)
        break;
      case PeerOutcome::Status:
        if (stats_) stats_->fallback(PeerFallback::Status);
        spdlog::info("chunk {} of /{}/{}: peer {} could not serve it: asking the next source", req.index,
                     logSafe(req.object.bucket), logSafe(req.object.key), logSafe(ask.peer.id));
        break;
      case PeerOutcome::Connect:
        if (stats_) stats_->fallback(PeerFallback::Connect);
        spdlog::debug("chunk {}: peer {} did not answer: asking the next source", req.index, logSafe(ask.peer.id));
        break;
      case PeerOutcome::Short:
        if (stats_) stats_->fallback(PeerFallback::Short);
        spdlog::info("chunk {} of /{}/{}: peer {} stopped after {} of {} bytes: resuming elsewhere", req.index,
                     logSafe(req.object.bucket), logSafe(req.object.key), logSafe(ask.peer.id), sink.written(),
                     req.length);
        break;
    }
  }
  const FetchOutcome last = co_await backend_->fetch(req, sink);
  if (last != FetchOutcome::Ok)
    spdlog::info("chunk {} of /{}/{}: the backend after {} peers: outcome {} at byte {}", req.index,
                 logSafe(req.object.bucket), logSafe(req.object.key), asks.size(), static_cast<int>(last),
                 sink.written());
  co_return last;
}

}  // namespace granary::s3api

#include "s3api/backend_chunk_source.h"

#include <boost/beast/http/field.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/log_escape.h"
#include "s3api/range.h"

namespace granary::s3api {

namespace bhttp = boost::beast::http;
using cache::FetchOutcome;

boost::asio::awaitable<FetchOutcome> BackendChunkSource::fetch(const cache::ChunkRequest& req,
                                                               cache::ChunkSink& sink) {
  const cache::ObjectId& obj = req.object;
  // A source before this one may have written some of the chunk: those bytes are readers' already and
  // stay; the rest is asked for (Range from the mark).
  const std::uint64_t from = sink.written();
  if (from >= req.length) co_return FetchOutcome::Ok;
  upstream::UpstreamResponsePtr body;
  if (req.index == 0 && opened_ && from == 0) {
    body = std::move(opened_);
  } else {
    opened_.reset();
    upstream::UpstreamRequest r;
    r.method = bhttp::verb::get;
    r.bucket = obj.bucket;
    r.key = obj.key;
    if (!obj.versionId.empty()) r.query.emplace_back("versionId", obj.versionId);
    r.headers.emplace_back("range",
                           "bytes=" + std::to_string(req.offset + from) + "-" + std::to_string(req.offset + req.length - 1));
    r.headers.emplace_back("if-match", obj.etag);  // never mix bytes of two versions
    auto resp = co_await upstream_->send(r);
    if (!resp) {
      spdlog::warn("fetching chunk {} of /{}/{} failed: {}", req.index, logSafe(obj.bucket), logSafe(obj.key),
                   resp.error().message());
      co_return FetchOutcome::Failed;
    }
    body = std::move(*resp);
  }
  std::uint64_t skip = 0;
  const FetchOutcome checked = checkAnswer(req, from, *body, skip);
  if (checked != FetchOutcome::Ok) co_return checked;
  co_return co_await readBody(req, from, *body, skip, sink);
}

FetchOutcome BackendChunkSource::checkAnswer(const cache::ChunkRequest& req, std::uint64_t from,
                                             const upstream::UpstreamResponse& body, std::uint64_t& skip) {
  const cache::ObjectId& obj = req.object;
  const auto& h = body.header();
  const unsigned status = h.result_int();
  const std::uint64_t first = req.offset + from, len = req.length - from;  // what is asked for
  if ((status == 200 || status == 206) && !h[bhttp::field::etag].empty() && h[bhttp::field::etag] != obj.etag) {
    // A backend that ignores If-Match (s3rver does) sent another version: its bytes must not join ours.
    spdlog::info("/{}/{} changed at the backend (ETag {} -> {}): revalidating", logSafe(obj.bucket), logSafe(obj.key),
                 logSafe(obj.etag), logSafe(h[bhttp::field::etag]));
    return FetchOutcome::Changed;
  }
  switch (status) {
    case 206: {
      const auto cr = parseContentRange(h[bhttp::field::content_range]);
      if (cr && cr->total && *cr->total != obj.size) {
        // Same ETag, another size: the object is being rewritten (s3rver overwrites in place). Its
        // metadata goes; no byte of this answer joins the cache.
        spdlog::warn("chunk {} of /{}/{}: the backend says the object holds {} bytes, not {}: revalidating", req.index,
                     logSafe(obj.bucket), logSafe(obj.key), *cr->total, obj.size);
        return FetchOutcome::LengthMismatch;
      }
      if (!cr || cr->first != first || cr->last != first + len - 1) {
        spdlog::warn("chunk {} of /{}/{}: the backend answered {} for bytes {}-{}", req.index, logSafe(obj.bucket),
                     logSafe(obj.key), logSafe(h[bhttp::field::content_range]), first, first + len - 1);
        return FetchOutcome::Failed;
      }
      if (const auto cl = body.contentLength(); cl && *cl != len) {
        spdlog::warn("chunk {} of /{}/{}: the backend sent {} bytes for a range of {}", req.index, logSafe(obj.bucket),
                     logSafe(obj.key), *cl, len);
        return FetchOutcome::Failed;
      }
      return FetchOutcome::Ok;
    }
    case 200:  // the Range was ignored: the whole object follows
      if (body.contentLength() != obj.size) {
        spdlog::warn("chunk {} of /{}/{}: the backend sent the whole object with another length: revalidating",
                     req.index, logSafe(obj.bucket), logSafe(obj.key));
        return FetchOutcome::LengthMismatch;
      }
      skip = first;
      return FetchOutcome::Ok;
    case 412:
    case 416:
      // The object changed at the backend: its old metadata (and with it the old chunks) must go.
      spdlog::info("/{}/{} changed at the backend (ETag {} gone): revalidating", logSafe(obj.bucket), logSafe(obj.key),
                   logSafe(obj.etag));
      return FetchOutcome::Changed;
    default:
      spdlog::warn("chunk {} of /{}/{}: the backend answered {}", req.index, logSafe(obj.bucket), logSafe(obj.key),
                   status);
      return FetchOutcome::Failed;
  }
}

boost::asio::awaitable<FetchOutcome> BackendChunkSource::readBody(const cache::ChunkRequest& req, std::uint64_t from,
                                                                  upstream::UpstreamResponse& body, std::uint64_t skip,
                                                                  cache::ChunkSink& sink) {
  const std::uint64_t len = req.length - from;
  char* dst = sink.data() + from;  // above the mark: bytes below it are readers' and never change
  while (skip > 0) {  // bytes before the wanted ones land above the mark and are overwritten: readers see only written()
    auto n = co_await body.read(boost::asio::buffer(dst, static_cast<std::size_t>(std::min(skip, len))));
    if (!n || *n == 0) co_return FetchOutcome::Failed;
    skip -= *n;
  }
  std::uint64_t got = 0;
  while (got < len) {
    auto n = co_await body.read(boost::asio::buffer(dst + got, static_cast<std::size_t>(len - got)));
    if (!n || *n == 0) {
      spdlog::warn("chunk {} of /{}/{}: the backend body ended after {} of {} bytes", req.index,
                   logSafe(req.object.bucket), logSafe(req.object.key), from + got, req.length);
      co_return FetchOutcome::Failed;
    }
    got += *n;
    sink.advance(*n);
  }
  co_return FetchOutcome::Ok;
}

}  // namespace granary::s3api

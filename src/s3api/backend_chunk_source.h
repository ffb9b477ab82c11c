#pragma once
// The backend as a chunk source for the cache: one ranged GET per chunk, pinned to the version the
// cache knows (If-Match with its ETag), its answer checked (status, ETag, Content-Range and the total
// size in it, Content-Length) before a byte joins the fill. A fill another source left part-written is
// resumed: only the bytes from the sink's written() mark on are asked for.

#include "cache/chunk_source.h"
#include "cache/object_meta.h"
#include "upstream/upstream.h"

namespace granary::s3api {

/// An object's metadata from the backend's answer to a HEAD (200) or a GET (200, or 206 for a range); null
/// when it lacks a length or an ETag, or names a size past 64 TiB (relayed, never cached). proxy_cache.cpp.
std::shared_ptr<const cache::ObjectMeta> metaFromHead(const upstream::ResponseHeader& h);

class BackendChunkSource final : public cache::ChunkSource {
 public:
  /// @param upstream the backend the object lives at; it must outlive every fill using this source (the
  ///        handler's upstreams do).
  /// @param opened the backend's answer to a GET of the object's first chunk already sent (the request
  ///        that learnt the object's metadata from it): chunk 0's fetch reads it instead of asking again.
  explicit BackendChunkSource(upstream::Upstream* upstream, upstream::UpstreamResponsePtr opened = nullptr)
      : upstream_(upstream), opened_(std::move(opened)) {}

  /// @return Ok (every byte in `sink`), Changed (412, 416, another ETag), LengthMismatch (another total
  ///         size under the same ETag), Failed (no answer, another status or range, a short body).
  boost::asio::awaitable<cache::FetchOutcome> fetch(const cache::ChunkRequest& req, cache::ChunkSink& sink) override;

 private:
  /// Checks the answer's header. @param skip set to the bytes before the chunk in the body (a 200).
  /// @return Ok to read the body, else how the fetch ends.
  /// @param from the bytes of the chunk the sink holds already (not asked for).
  static cache::FetchOutcome checkAnswer(const cache::ChunkRequest& req, std::uint64_t from,
                                         const upstream::UpstreamResponse& body, std::uint64_t& skip);
  static boost::asio::awaitable<cache::FetchOutcome> readBody(const cache::ChunkRequest& req, std::uint64_t from,
                                                              upstream::UpstreamResponse& body, std::uint64_t skip,
                                                              cache::ChunkSink& sink);

  upstream::Upstream* upstream_;
  upstream::UpstreamResponsePtr opened_;  // for chunk 0, once
};

}  // namespace granary::s3api

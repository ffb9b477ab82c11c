#pragma once
// The cluster's chunk source: a chunk this node lacks comes from the node that owns it, not from the
// backend. The owners of a chunk are members.rank(chunkKey, 2) (weighted rendezvous over the Active
// members). The order tried:
//   self is rank 0          -> rank 1 with fill=0 (it serves the chunk only if it holds it: after a lazy
//                              join the previous owner still has it), then the backend
//   self is rank 1          -> rank 0 with fill=1 (it fills through its own cache: one backend read per
//                              chunk fleet-wide), then the backend
//   otherwise               -> rank 0, then rank 1, both with fill=1, then the backend
// Bytes go into the sink as they arrive; a source that fails after writing some leaves them there and the
// next one continues from sink.written() (peers take from=n, the backend a Range from the mark). A peer's
// 412 means the version changed at the backend (Changed); any other failure moves on (counted in
// PeerStats by reason).

#include <memory>
#include <string>

#include "cache/chunk_source.h"
#include "cluster/member_set.h"
#include "s3api/peer_client.h"
#include "s3api/peer_stats.h"
#include "s3api/proxy_options.h"

namespace granary::s3api {

inline constexpr std::string_view kPeerChunkPath = "/_granary/peer/v1/chunk";
inline constexpr std::string_view kPeerInvalidatePath = "/_granary/peer/v1/invalidate";
/// GET: an object's metadata from its owner (serialized cache::ObjectMeta), validated at the backend by the
/// owner within its metadata TTL; 404 when the backend has no such object for the owner (the asker asks
/// the backend itself and gets its own answer).
inline constexpr std::string_view kPeerMetaPath = "/_granary/peer/v1/meta";

/// The request target asking a peer for chunk `req.index` of `req.object` from byte `from` of the chunk.
std::string peerChunkTarget(const cache::ChunkRequest& req, std::uint64_t from, bool fill);
/// The request target dropping an object's metadata on its owner.
std::string peerInvalidateTarget(const std::string& backend, const std::string& bucket, const std::string& key,
                                 const std::string& versionId);

/// How asking one peer for a chunk ended.
enum class PeerOutcome : std::uint8_t {
  Ok,       // the sink holds the whole chunk
  NotHeld,  // 404: the peer does not hold it (fill=0) or does not know the backend
  Changed,  // 412: the peer's backend says the version changed
  Status,   // another status (503...)
  Connect,  // no answer: refused, no connection in time, reset before the header
  Short,    // the body ended or stalled before its end (what arrived stays in the sink)
};

/// Asks one peer for one chunk (the HTTP client in production, a fake in tests).
class PeerChunkFetcher {
 public:
  virtual ~PeerChunkFetcher() = default;
  virtual boost::asio::awaitable<PeerOutcome> fetch(const cluster::Member& peer, bool fill,
                                                    const cache::ChunkRequest& req, cache::ChunkSink& sink) = 0;
};

/// The peer port over HTTP (PeerClient: this thread's keep-alive connections).
class HttpPeerFetcher final : public PeerChunkFetcher {
 public:
  explicit HttpPeerFetcher(PeerClient& client) : client_(client) {}
  boost::asio::awaitable<PeerOutcome> fetch(const cluster::Member& peer, bool fill, const cache::ChunkRequest& req,
                                            cache::ChunkSink& sink) override;

 private:
  PeerClient& client_;
};

class PeerChunkSource final : public cache::ChunkSource {
 public:
  /// @param fetcher and @param backend must outlive every fill using this source (the handler's do).
  PeerChunkSource(std::shared_ptr<cluster::MemberSource> members, PeerChunkFetcher& fetcher,
                  cache::ChunkSourcePtr backend, std::shared_ptr<PeerStats> stats)
      : members_(std::move(members)), fetcher_(fetcher), backend_(std::move(backend)), stats_(std::move(stats)) {}

  boost::asio::awaitable<cache::FetchOutcome> fetch(const cache::ChunkRequest& req, cache::ChunkSink& sink) override;

  struct Ask {
    cluster::Member peer;
    bool fill = false;
  };
  /// The peers to ask for `chunkKey`, in order (see the file comment).
  static std::vector<Ask> plan(const cluster::MemberSet& set, const std::string& chunkKey);

 private:
  std::shared_ptr<cluster::MemberSource> members_;
  PeerChunkFetcher& fetcher_;
  cache::ChunkSourcePtr backend_;
  std::shared_ptr<PeerStats> stats_;
};

}  // namespace granary::s3api

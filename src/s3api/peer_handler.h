#pragma once
// The peer port's request handler (one per peer I/O thread): other nodes of the cluster ask it for chunks
// this node owns, and tell it to drop an object's metadata after a write.
//   GET  /_granary/peer/v1/chunk?b=&bucket=&key=[&v=]&etag=&size=&cs=&i=&from=&fill=0|1
//        -> 200 + Content-Length (chunk length - from), the bytes streamed as they arrive (a fill in flight
//           is served from its Filling bytes, never stored first); 404 not held (fill=0) or an unknown
//           backend; 412 the backend says the version changed; 503 anything else.
//        fill=1 goes through this node's CacheThread::getOrFill with a BackendChunkSource (single flight
//        with this node's own readers); fill=0 serves only chunks the cache holds.
//   POST /_granary/peer/v1/invalidate?b=&bucket=&key=[&v=] -> 204, the object's metadata dropped.
// Every request is authenticated first (cluster/peer_auth.h); refusals are 403, counted by reason. A peer
// request is never sent on to another peer (its chunk source is the backend alone).

#include <memory>
#include <string>
#include <vector>

#include "cache/chunk_cache.h"
#include "cluster/peer_auth.h"
#include "http/handler.h"
#include "s3api/bucket_map.h"
#include "s3api/peer_stats.h"
#include "upstream/upstream.h"

namespace granary::s3api {

struct PeerHandlerOptions {
  std::shared_ptr<cluster::PeerVerifier> verifier;  // shared by the peer threads (its replay cache)
  std::shared_ptr<PeerStats> stats;                 // null = not counted
  std::shared_ptr<const BucketMap> buckets;         // backend ids (index = the upstream's)
  std::chrono::milliseconds fillTimeout{60'000};    // longest wait for a fill without progress
  std::chrono::milliseconds metadataTtl{60'000};    // metadata older than this is validated again first
};

class PeerHandler final : public http::RequestHandler {
 public:
  PeerHandler(PeerHandlerOptions opts, std::vector<std::unique_ptr<upstream::Upstream>> upstreams,
              std::unique_ptr<cache::CacheThread> cache);
  ~PeerHandler() override;

  http::Awaitable<void> handle(const http::RequestHeader& req, const http::RequestContext& ctx,
                               http::BodyReader& body, http::ResponseWriter& out) override;
  std::string protocolError(http::ResponseHeader& res, http::ProtocolError error, std::string_view message) override;
  void shutdown() override;
  /// New credentials for backend `backend` (SIGHUP). Call on this handler's thread.
  void setBackendCredentials(std::size_t backend, sigv4::Credentials creds) {
    if (backend < upstreams_.size()) upstreams_[backend]->setCredentials(std::move(creds));
  }

 private:
  struct ChunkAsk;
  http::Awaitable<void> serveChunk(const ChunkAsk& ask, http::ResponseWriter& out);
  http::Awaitable<void> serveMeta(ChunkAsk ask, http::ResponseWriter& out);
  http::Awaitable<void> respond(http::ResponseWriter& out, http::Status status, std::string_view why);
  int backendIndex(const std::string& id) const;

  PeerHandlerOptions opts_;
  std::vector<std::unique_ptr<upstream::Upstream>> upstreams_;
  std::unique_ptr<cache::CacheThread> cache_;
};

}  // namespace granary::s3api

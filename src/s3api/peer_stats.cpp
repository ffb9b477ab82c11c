#include "s3api/peer_stats.h"

namespace granary::s3api {

std::string_view name(PeerFallback r) {
  switch (r) {
    case PeerFallback::Connect: return "connect";
    case PeerFallback::Status: return "status";
    case PeerFallback::Short: return "short";
    case PeerFallback::Changed: return "changed";
  }
  return "unknown";
}

std::string_view name(PeerRefusal r) {
  switch (r) {
    case PeerRefusal::Signature: return "signature";
    case PeerRefusal::Expired: return "expired";
    case PeerRefusal::Replay: return "replay";
    case PeerRefusal::Malformed: return "malformed";
  }
  return "unknown";
}

void PeerStats::writeTo(metrics::TextWriter& w) const {
  w.family("granary_peer_bytes_served_total", "counter", "Chunk bytes this node sent to peers.");
  w.sample("granary_peer_bytes_served_total", bytesServed());
  w.family("granary_peer_bytes_fetched_total", "counter", "Chunk bytes this node read from peers.");
  w.sample("granary_peer_bytes_fetched_total", bytesFetched());
  w.family("granary_peer_backend_bytes_saved_total", "counter",
           "Bytes peers delivered that this node would otherwise have read from its backend.");
  w.sample("granary_peer_backend_bytes_saved_total", backendBytesSaved_.load(std::memory_order_relaxed));
  w.family("granary_peer_requests_served_total", "counter", "Chunk requests the peer port answered.");
  w.sample("granary_peer_requests_served_total", requestsServed_.load(std::memory_order_relaxed));
  w.family("granary_peer_invalidations_total", "counter", "Metadata invalidations the peer port applied.");
  w.sample("granary_peer_invalidations_total", invalidations_.load(std::memory_order_relaxed));
  w.family("granary_peer_fetch_seconds", "histogram", "Time to read one chunk from a peer.");
  w.histogram("granary_peer_fetch_seconds", {}, fetchLatency_.snapshot());
  w.family("granary_peer_fallbacks_total", "counter", "Peer reads abandoned for the next source, by reason.");
  for (auto r : {PeerFallback::Connect, PeerFallback::Status, PeerFallback::Short, PeerFallback::Changed})
    w.sample("granary_peer_fallbacks_total", {{"reason", name(r)}}, fallbacks(r));
  w.family("granary_peer_auth_refusals_total", "counter", "Peer requests refused (403), by reason.");
  for (auto r : {PeerRefusal::Signature, PeerRefusal::Expired, PeerRefusal::Replay, PeerRefusal::Malformed})
    w.sample("granary_peer_auth_refusals_total", {{"reason", name(r)}}, refusals(r));
}

}  // namespace granary::s3api

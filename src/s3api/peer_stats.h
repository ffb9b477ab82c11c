#pragma once
// What the peer read path counts, for /metrics (granary_peer_*): one instance per process, shared by the
// S3 threads (the reading side) and the peer port's threads (the serving side), bumped with relaxed
// atomics. The admin endpoint renders it with writeTo().

#include <array>
#include <atomic>
#include <cstdint>
#include <string_view>

#include "common/metrics.h"

namespace granary::s3api {

/// Why a reader left a peer for the next source.
enum class PeerFallback : std::uint8_t { Connect, Status, Short, Changed };
/// Why the peer port refused a request (403).
enum class PeerRefusal : std::uint8_t { Signature, Expired, Replay, Malformed };

class PeerStats {
 public:
  void served(std::uint64_t n) { bytesServed_.fetch_add(n, std::memory_order_relaxed); }
  void fetched(std::uint64_t n) { bytesFetched_.fetch_add(n, std::memory_order_relaxed); }
  /// Bytes a peer delivered that this node would otherwise have read from its backend.
  void saved(std::uint64_t n) { backendBytesSaved_.fetch_add(n, std::memory_order_relaxed); }
  void fallback(PeerFallback r) { fallbacks_[static_cast<std::size_t>(r)].fetch_add(1, std::memory_order_relaxed); }
  void refused(PeerRefusal r) { refusals_[static_cast<std::size_t>(r)].fetch_add(1, std::memory_order_relaxed); }
  void requestServed() { requestsServed_.fetch_add(1, std::memory_order_relaxed); }
  void invalidated() { invalidations_.fetch_add(1, std::memory_order_relaxed); }
  metrics::DurationHistogram& fetchLatency() { return fetchLatency_; }

  std::uint64_t bytesServed() const { return bytesServed_.load(std::memory_order_relaxed); }
  std::uint64_t bytesFetched() const { return bytesFetched_.load(std::memory_order_relaxed); }
  std::uint64_t fallbacks(PeerFallback r) const {
    return fallbacks_[static_cast<std::size_t>(r)].load(std::memory_order_relaxed);
  }
  std::uint64_t refusals(PeerRefusal r) const {
    return refusals_[static_cast<std::size_t>(r)].load(std::memory_order_relaxed);
  }

  /// The granary_peer_* families in the Prometheus text format.
  void writeTo(metrics::TextWriter& w) const;

 private:
  std::atomic<std::uint64_t> bytesServed_{0}, bytesFetched_{0}, backendBytesSaved_{0};
  std::atomic<std::uint64_t> requestsServed_{0}, invalidations_{0};
  std::array<std::atomic<std::uint64_t>, 4> fallbacks_{};
  std::array<std::atomic<std::uint64_t>, 4> refusals_{};
  metrics::DurationHistogram fetchLatency_;
};

std::string_view name(PeerFallback r);
std::string_view name(PeerRefusal r);

}  // namespace granary::s3api

#pragma once
// What the S3 front end counts per request, for /metrics and `granary admin stats`: requests by operation
// and status, answers by cache outcome, and per-bucket totals. One instance per I/O thread (its own
// ProxyHandler), so the hot path takes an uncontended lock; the admin endpoint sums the instances.

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace granary::s3api {

class RequestStats {
 public:
  /// Distinct buckets tracked before the rest are summed under kOtherBuckets (names come from clients).
  static constexpr std::size_t kMaxBuckets = 1000;
  static constexpr std::string_view kOtherBuckets = "(other)";

  struct BucketTotals {
    std::uint64_t requests = 0, hits = 0, misses = 0, partial = 0, bytesOut = 0, bytesIn = 0;
  };
  struct Snapshot {
    std::map<std::pair<std::string, unsigned>, std::uint64_t> byOpStatus;
    std::map<std::string, std::uint64_t> byCache;  // hit, miss, partial, bypass (GET/HEAD)
    std::map<std::string, BucketTotals> byBucket;
    std::uint64_t bytesIn = 0, bytesOut = 0;
    std::map<std::string, std::uint64_t> deniedByKey;  // AccessDenied by a key's policy, by access key
  };

  /// @param cache x-granary-cache of the answer ("hit", "miss", "partial", "bypass"); empty = not a read.
  void record(std::string_view op, unsigned status, std::string_view bucket, std::string_view cache,
              std::uint64_t bytesIn, std::uint64_t bytesOut);
  /// A request the key's policy refused (the key is a configured one, so the label set is bounded).
  void denied(std::string_view accessKey);
  /// Adds this instance's counts to `into`.
  void addTo(Snapshot& into) const;

 private:
  mutable std::mutex m_;
  std::unordered_map<std::string, std::uint64_t> byOpStatus_;  // "op status"
  std::unordered_map<std::string, std::uint64_t> byCache_;
  std::unordered_map<std::string, BucketTotals> byBucket_;
  std::uint64_t bytesIn_ = 0, bytesOut_ = 0;
  std::unordered_map<std::string, std::uint64_t> denied_;
};

}  // namespace granary::s3api

#include "s3api/request_stats.h"

#include <charconv>

namespace granary::s3api {

void RequestStats::record(std::string_view op, unsigned status, std::string_view bucket, std::string_view cache,
                          std::uint64_t bytesIn, std::uint64_t bytesOut) {
  std::string opKey(op);
  opKey += ' ';
  opKey += std::to_string(status);
  std::lock_guard lk(m_);
  ++byOpStatus_[opKey];
  if (!cache.empty()) ++byCache_[std::string(cache)];
  bytesIn_ += bytesIn;
  bytesOut_ += bytesOut;
  if (bucket.empty()) return;
  auto it = byBucket_.find(std::string(bucket));
  if (it == byBucket_.end()) {
    it = byBucket_.try_emplace(byBucket_.size() < kMaxBuckets ? std::string(bucket) : std::string(kOtherBuckets))
             .first;
  }
  BucketTotals& b = it->second;
  ++b.requests;
  if (cache == "hit") ++b.hits;
  else if (cache == "miss") ++b.misses;
  else if (cache == "partial") ++b.partial;
  b.bytesOut += bytesOut;
  b.bytesIn += bytesIn;
}

void RequestStats::denied(std::string_view accessKey) {
  std::lock_guard lk(m_);
  ++denied_[std::string(accessKey)];
}

void RequestStats::addTo(Snapshot& into) const {
  std::lock_guard lk(m_);
  for (const auto& [k, n] : denied_) into.deniedByKey[k] += n;
  for (const auto& [k, n] : byOpStatus_) {
    const auto space = k.rfind(' ');
    unsigned status = 0;
    std::from_chars(k.data() + space + 1, k.data() + k.size(), status);
    into.byOpStatus[{k.substr(0, space), status}] += n;
  }
  for (const auto& [k, n] : byCache_) into.byCache[k] += n;
  for (const auto& [k, b] : byBucket_) {
    BucketTotals& t = into.byBucket[k];
    t.requests += b.requests;
    t.hits += b.hits;
    t.misses += b.misses;
    t.partial += b.partial;
    t.bytesOut += b.bytesOut;
    t.bytesIn += b.bytesIn;
  }
  into.bytesIn += bytesIn_;
  into.bytesOut += bytesOut_;
}

}  // namespace granary::s3api

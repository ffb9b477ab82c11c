#include "s3api/bucket_map.h"

#include <algorithm>

namespace granary::s3api {

BucketMap::BucketMap(std::vector<std::string> backendIds, BucketPolicy fallback)
    : ids_(std::move(backendIds)), fallback_(std::move(fallback)) {
  if (ids_.empty()) ids_.emplace_back();
  fallback_.backend = 0;
  fallback_.backendBucket.clear();
}

bool BucketMap::add(std::string clientName, BucketPolicy policy) {
  if (policy.backend >= ids_.size()) return false;
  return buckets_.emplace(std::move(clientName), std::move(policy)).second;
}

const BucketPolicy& BucketMap::lookup(std::string_view clientBucket) const {
  if (buckets_.empty()) return fallback_;
  auto it = buckets_.find(std::string(clientBucket));
  return it == buckets_.end() ? fallback_ : it->second;
}

std::string_view BucketMap::backendBucket(std::string_view clientBucket) const {
  const auto& p = lookup(clientBucket);
  return p.backendBucket.empty() ? clientBucket : std::string_view(p.backendBucket);
}

bool BucketMap::passThroughListing() const {
  if (ids_.size() > 1) return false;
  return std::all_of(buckets_.begin(), buckets_.end(),
                     [](const auto& kv) { return kv.second.backendBucket.empty() || kv.second.backendBucket == kv.first; });
}

std::vector<std::string> BucketMap::visibleNames(std::size_t backend, std::string_view backendBucket) const {
  std::vector<std::string> names;
  bool claimedByConfig = false;  // a [[bucket]] maps some client name onto this backend bucket
  for (const auto& [name, p] : buckets_) {
    const std::string_view there = p.backendBucket.empty() ? std::string_view(name) : std::string_view(p.backendBucket);
    if (p.backend == backend && there == backendBucket) {
      names.push_back(name);
      claimedByConfig = true;
    }
  }
  // Unlisted buckets of the default backend keep their own names, unless that name routes elsewhere.
  if (backend == 0 && !claimedByConfig && !buckets_.count(std::string(backendBucket)))
    names.emplace_back(backendBucket);
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::size_t> BucketMap::listingBackends() const {
  std::vector<std::size_t> out{0};
  for (const auto& [name, p] : buckets_)
    if (std::find(out.begin(), out.end(), p.backend) == out.end()) out.push_back(p.backend);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace granary::s3api

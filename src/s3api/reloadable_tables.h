#pragma once
// Tables replaced at run time (SIGHUP): the metadata TTLs and the key table.

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <unordered_map>

#include "s3api/auth.h"

namespace granary::s3api {

/// Metadata TTLs by client bucket, replaceable at run time (SIGHUP) like the key table.
struct TtlTable {
  std::chrono::milliseconds fallback{60'000};  // cache.metadata_ttl
  std::unordered_map<std::string, std::chrono::milliseconds> buckets;  // [[bucket]] metadata_ttl
  /// cache.stale_if_error / [[bucket]] stale_if_error: how long past the TTL cached metadata may be
  /// served when revalidation meets a backend failure; 0 = never.
  std::chrono::milliseconds staleFallback{3'600'000};
  std::unordered_map<std::string, std::chrono::milliseconds> staleBuckets;
  std::chrono::milliseconds forBucket(const std::string& bucket) const {
    auto it = buckets.find(bucket);
    return it == buckets.end() ? fallback : it->second;
  }
  std::chrono::milliseconds staleIfError(const std::string& bucket) const {
    auto it = staleBuckets.find(bucket);
    return it == staleBuckets.end() ? staleFallback : it->second;
  }
};

/// A shared, replaceable table (SIGHUP reloads swap the pointer; a request keeps the one it started with).
template <class Table>
class ReloadableTable {
 public:
  explicit ReloadableTable(std::shared_ptr<const Table> t) : table_(std::move(t)) {}
  std::shared_ptr<const Table> get() const { return std::atomic_load(&table_); }
  void set(std::shared_ptr<const Table> t) { std::atomic_store(&table_, std::move(t)); }

 private:
  std::shared_ptr<const Table> table_;
};
using TtlStore = ReloadableTable<TtlTable>;
using KeyStore = ReloadableTable<KeyTable>;

}  // namespace granary::s3api

#pragma once
// Which backend serves a client-visible bucket, under which name there, and with which cache policy.
// Built once at start-up from the [[backend]] / [[bucket]] configuration; immutable and shared by every
// I/O thread.

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace granary::s3api {

enum class WriteMode {
  Through,  // forward; once the backend took the object, the bytes written also fill the cache
  Around,   // forward; the cache only invalidates
  Back,     // acknowledged once durable in the write-back spool; uploaded in the background
};

struct BucketPolicy {
  std::size_t backend = 0;    // index into the handler's backends
  std::string backendBucket;  // the name at the backend; "" = the client's name
  std::optional<std::chrono::milliseconds> metadataTtl;  // nullopt = ProxyOptions::metadataTtl
  bool cache = true;
  WriteMode writeMode = WriteMode::Through;
};

class BucketMap {
 public:
  /// @param backendIds one per backend, index 0 the default; each is part of every cache key of its
  ///        backend's objects (so two backends never share entries).
  explicit BucketMap(std::vector<std::string> backendIds, BucketPolicy fallback = {});

  /// Adds a [[bucket]]; returns false if the client name is taken.
  bool add(std::string clientName, BucketPolicy policy);

  /// The policy of a client-visible bucket: its own, or the default backend's fallback.
  const BucketPolicy& lookup(std::string_view clientBucket) const;
  /// The bucket's name at its backend.
  std::string_view backendBucket(std::string_view clientBucket) const;
  const std::string& backendId(std::size_t backend) const { return ids_.at(backend); }
  std::size_t backendCount() const { return ids_.size(); }

  /// True when ListBuckets can go to the single backend as it is (one backend, no renamed or hidden
  /// buckets).
  bool passThroughListing() const;
  /// The names under which the backend's bucket appears to clients in ListBuckets (none: hidden).
  std::vector<std::string> visibleNames(std::size_t backend, std::string_view backendBucket) const;
  /// Backends that ListBuckets must ask: the default, and every one a [[bucket]] points to.
  std::vector<std::size_t> listingBackends() const;

 private:
  std::vector<std::string> ids_;
  BucketPolicy fallback_;
  std::unordered_map<std::string, BucketPolicy> buckets_;
};

}  // namespace granary::s3api

#pragma once
// What the admin side (src/admin: preload, ls, invalidate) may ask of an I/O thread's S3 handler, and no
// more: ProxyHandler implements AdminOps (admin_ops.cpp). Each call runs on that handler's thread;
// `bucket` is the name clients use.

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "http/handler.h"

namespace granary::s3api {

/// A shared byte-rate budget (admin preloads' bandwidth cap): each caller reserves its bytes and waits
/// the time returned before taking more.
class RateLimiter {
 public:
  explicit RateLimiter(std::uint64_t bytesPerSecond) : rate_(bytesPerSecond) {}
  std::chrono::nanoseconds reserve(std::uint64_t bytes);

 private:
  std::mutex m_;
  const std::uint64_t rate_;
  std::chrono::steady_clock::time_point next_{};
};

class AdminOps {
 public:
  struct ListedObject {
    std::string key;
    std::uint64_t size = 0;
    std::string etag;
  };
  struct ListPage {
    std::vector<ListedObject> objects;
    std::string nextToken;  // empty: the last page
    std::string error;      // empty: listed
  };
  /// One page of ListObjectsV2 at the bucket's backend.
  virtual http::Awaitable<ListPage> adminList(std::string bucket, std::string prefix, std::string token) = 0;
  struct CachedExtent {
    bool known = false;  // the cache holds the object's metadata
    std::uint64_t size = 0;
    std::string etag;
    std::uint32_t chunks = 0, cachedChunks = 0;
    std::uint64_t cachedBytes = 0;
    bool complete() const { return known && cachedChunks == chunks; }
  };
  /// How much of an object the cache holds (its metadata, then which chunks the index has; no data read).
  virtual http::Awaitable<CachedExtent> adminCached(std::string bucket, std::string key) = 0;
  /// Drops an object's metadata and chunks from the cache. @return what was cached before.
  virtual http::Awaitable<CachedExtent> adminInvalidate(std::string bucket, std::string key) = 0;
  struct ReadResult {
    unsigned status = 0;
    std::string cacheStatus;  // x-granary-cache of the answer
    std::string etag;
    std::uint64_t bytes = 0;
    std::string md5Hex;  // when asked for
    std::string error;   // S3 error code, or why the read stopped
  };
  /// GETs an object through the cache as a client would (filling what is missing); the bytes are counted
  /// (and hashed with MD5 if `md5`), paced by `limit` when given.
  virtual http::Awaitable<ReadResult> adminRead(std::string bucket, std::string key, bool md5,
                                                std::shared_ptr<RateLimiter> limit) = 0;

 protected:
  ~AdminOps() = default;  // not owned through this interface
};

}  // namespace granary::s3api

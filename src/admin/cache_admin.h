#pragma once
// The cache's admin operations behind `granary admin` and the admin HTTP API: preload a prefix (a job
// with progress), list what is cached under a prefix, invalidate a key or prefix, and a summary of the
// cache. Runs on the admin endpoint's thread; the work itself runs on the I/O threads (each S3 handler
// on its own io_context), dispatched round-robin, so a preload fills the cache exactly as client reads do.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "admin/prefetch_job.h"
#include "cache/chunk_cache.h"
#include "s3api/admin_ops.h"
#include "s3api/prefetch_tracker.h"
#include "s3api/request_stats.h"

namespace granary::admin {

using s3api::AdminOps;
using s3api::RateLimiter;
using s3api::RequestStats;

struct AdminWorker {
  boost::asio::any_io_executor ex;
  AdminOps* handler = nullptr;  // an I/O thread's S3 handler
};

struct LoadRequest {
  std::string bucket, prefix;
  unsigned concurrency = 8;          // objects read at once
  std::uint64_t bytesPerSecond = 0;  // 0 = no cap
  bool verify = false;               // re-read every object from the cache and check it
};

class CacheAdmin {
 public:
  /// @param ex the admin endpoint's executor (every method but shutdown() is called there).
  /// @param tracker where the I/O threads report client reads (prefetch jobs); null: no prefetch.
  CacheAdmin(boost::asio::any_io_executor ex, std::vector<AdminWorker> workers, cache::ChunkCache* cache,
             std::vector<std::shared_ptr<RequestStats>> stats, std::shared_ptr<s3api::PrefetchTracker> tracker = nullptr);

  /// Starts a preload of bucket/prefix, or returns the one already running for it. @return its job id.
  std::string startLoad(LoadRequest req);
  /// Starts a prefetch job (cache_admin_prefetch.cpp). @return its job id, or nullopt when
  /// kMaxPrefetchJobsRunning are running already (or prefetch is off).
  std::optional<std::string> startPrefetch(PrefetchRequest req);
  /// Whether startPrefetch could start a job now (prefetch on, fewer than kMaxPrefetchJobsRunning running).
  bool prefetchSlotFree() const;
  /// Orders (bodies of up to 64 MiB) are received one at a time: true = the caller may read one now and
  /// calls endPrefetchOrder() when done; false = another is being received.
  bool beginPrefetchOrder() { return !receivingOrder_.exchange(true); }
  void endPrefetchOrder() { receivingOrder_.store(false); }
  /// A job's progress (a load or a prefetch); nullopt for an unknown id.
  std::optional<boost::json::object> job(const std::string& id) const;
  boost::json::array jobs() const;
  /// Asks a running job to stop after the objects in flight. @return false for an unknown id.
  bool cancel(const std::string& id);

  /// The objects under bucket/prefix at the backend (at most `max`) and how much of each is cached.
  boost::asio::awaitable<boost::json::object> ls(std::string bucket, std::string prefix, std::size_t max);
  /// Drops an object from the cache: keyOrPrefix itself when the backend lists an object of that name (or
  /// nothing at all under it), else every object listed under it as a prefix (always, with `asPrefix`).
  boost::asio::awaitable<boost::json::object> invalidate(std::string bucket, std::string keyOrPrefix, bool asPrefix);
  /// Capacity, use, hit ratio, top buckets.
  boost::json::object stats() const;

  /// No new work goes to the I/O threads from now on (call before stopping the S3 server; any thread).
  void shutdown();

 private:
  struct Job;
  boost::asio::awaitable<void> runLoad(std::shared_ptr<Job> job);
  boost::asio::awaitable<void> loadWorker(std::shared_ptr<Job> job, std::shared_ptr<RateLimiter> limit);
  /// Every object under bucket/prefix (at most `max`), or an error ("cancelled" once `cancelled()` says so,
  /// checked before each page).
  boost::asio::awaitable<std::pair<std::vector<AdminOps::ListedObject>, std::string>> listAll(
      const std::string& bucket, const std::string& prefix, std::size_t max, std::shared_ptr<Job> progress = nullptr,
      std::function<bool()> cancelled = {});
  boost::asio::awaitable<void> runPrefetch(std::shared_ptr<PrefetchJob> job);
  /// Builds the job's order (listing the prefix when it has no keys). @return false when it failed.
  boost::asio::awaitable<bool> preparePrefetch(std::shared_ptr<PrefetchJob> job);
  boost::asio::awaitable<void> prefetchOne(std::shared_ptr<PrefetchJob> job, std::size_t position);
  const AdminWorker& nextWorker() { return workers_[next_++ % workers_.size()]; }

  boost::asio::any_io_executor ex_;
  std::vector<AdminWorker> workers_;
  cache::ChunkCache* cache_;
  std::vector<std::shared_ptr<RequestStats>> stats_;
  std::vector<boost::asio::any_io_executor> guards_;  // outstanding_work.tracked: I/O threads run until shutdown()
  std::atomic<bool> stopping_{false};
  std::size_t next_ = 0;
  std::uint64_t jobCounter_ = 0;
  std::map<std::string, std::shared_ptr<Job>> jobs_;
  std::shared_ptr<s3api::PrefetchTracker> tracker_;
  std::uint64_t prefetchCounter_ = 0;
  std::map<std::string, std::shared_ptr<PrefetchJob>> prefetchJobs_;
  std::atomic<bool> receivingOrder_{false};
};

}  // namespace granary::admin

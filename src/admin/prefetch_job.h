#pragma once
// A prefetch job (`granary admin prefetch`, POST /admin/prefetch): the order in which a loader will read
// keys of a bucket, fetched into the cache ahead of the reader within a window of bytes and fetches in
// flight (s3api::PrefetchWindow), the reader's position coming from client reads (s3api::PrefetchTracker).
// The job's state and counters are owned by the admin thread; the order's reader position is shared.

#include <boost/asio/steady_timer.hpp>
#include <boost/json/object.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "s3api/prefetch_tracker.h"
#include "s3api/prefetch_window.h"

namespace granary::admin {

/// Bounds of what a prefetch request may ask (the admin API's input is hostile too).
inline constexpr std::size_t kMaxPrefetchBody = 64u << 20;  // bytes of the key list
inline constexpr std::size_t kMaxPrefetchKeys = 1'000'000;
inline constexpr std::size_t kMaxPrefetchKeyBytes = 1024;
inline constexpr std::size_t kMaxPrefetchJobsRunning = 8;

struct PrefetchRequest {
  std::string bucket, prefix;
  std::vector<std::string> keys;               // the order; empty: the prefix's listing order
  std::uint64_t windowBytes = 256ull << 20;    // bytes fetched ahead of the reader
  unsigned concurrency = 8;                    // objects fetched at once
  std::chrono::milliseconds idle{30'000};      // no client read this long: the job stops
};

/// The keys of a request body: one per line, blank lines (and a CR before the LF) ignored.
/// @return the keys, or why the body is refused (a key longer than kMaxPrefetchKeyBytes, too many keys,
///         a key outside `prefix`).
std::pair<std::vector<std::string>, std::string> parsePrefetchKeys(std::string_view body, std::string_view prefix);

struct PrefetchJob {
  std::string id;
  PrefetchRequest req;  // keys moved into `order` once it is built
  std::string state = "starting";  // listing, prefetching, done, idle-stopped, cancelled, failed
  std::string error;
  bool cancelled = false;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now(), ended{};
  std::shared_ptr<s3api::PrefetchOrder> order;
  std::optional<s3api::PrefetchWindow> window;
  // The job loop's timer, cancelled when a fetch completes. Owned by runPrefetch's frame, never by the job:
  // a job outlives the admin io_context (CacheAdmin's map), and a timer must not.
  std::weak_ptr<boost::asio::steady_timer> wake;
  std::uint64_t fetched = 0, cached = 0, failed = 0, bytesFetched = 0, bytesCached = 0, bytesTotal = 0;
  std::vector<std::pair<std::string, std::string>> errors;  // the first few: key, why
  /// A finished job's last progress: its order (up to 64 MiB of keys) is then released.
  std::optional<boost::json::object> final;

  bool finished() const {
    return state == "done" || state == "idle-stopped" || state == "cancelled" || state == "failed";
  }
  void fail(const std::string& key, const std::string& why) {
    ++failed;
    if (errors.size() < 20) errors.emplace_back(key, why);
  }
  boost::json::object toJson() const;
};

}  // namespace granary::admin

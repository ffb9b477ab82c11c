#pragma once
// Where the reader of a prefetch job is (`granary admin prefetch`, src/admin/prefetch_jobs.h). A job hands
// Granary the order in which a training loader will read keys; the client read path reports every GET
// here (notePrefetchRead), and the job fetches ahead of the highest position read, within its window.
//
// Threads: the I/O threads report reads, the admin thread creates and retires orders. An order is built
// whole before it is published and never changes after (its key -> index map is read without a lock);
// its reader position and last-read time are atomics. With no job active, a read costs one relaxed load.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace granary::s3api {

/// One job's read order: bucket and keys, and how far a client has read in it.
class PrefetchOrder {
 public:
  /// @param keys the order (a key listed twice keeps its first position).
  PrefetchOrder(std::string bucket, std::vector<std::string> keys);
  PrefetchOrder(const PrefetchOrder&) = delete;
  PrefetchOrder& operator=(const PrefetchOrder&) = delete;

  const std::string& bucket() const { return bucket_; }
  const std::vector<std::string>& keys() const { return keys_; }
  std::size_t size() const { return keys_.size(); }
  /// The position of `key` in the order, or -1.
  std::int64_t indexOf(std::string_view key) const;

  /// A client read `key` of this order's bucket: the reader position becomes at least its index.
  /// @return true when the key is in the order. Any thread.
  bool noteRead(std::string_view key, std::chrono::steady_clock::time_point now);
  /// The highest position a client has read; -1 before the first read.
  std::int64_t reader() const { return reader_.load(std::memory_order_relaxed); }
  /// When a client last read a key of the order (the order's creation before that).
  std::chrono::steady_clock::time_point lastRead() const;

 private:
  const std::string bucket_;
  const std::vector<std::string> keys_;
  std::unordered_map<std::string_view, std::uint32_t> index_;  // views into keys_
  std::atomic<std::int64_t> reader_{-1};
  std::atomic<std::int64_t> lastReadNs_;  // steady_clock, since its epoch
};

/// The orders of the running prefetch jobs, shared by every I/O thread and the admin thread.
class PrefetchTracker {
 public:
  /// A job starts tracking its order (admin thread).
  void add(std::shared_ptr<PrefetchOrder> order);
  /// A job stops (admin thread).
  void remove(const PrefetchOrder* order);
  /// Orders tracked now.
  std::size_t active() const { return active_.load(std::memory_order_relaxed); }

  /// A client GET of bucket/key (never the jobs' own reads). Costs one relaxed load without a job.
  void noteRead(std::string_view bucket, std::string_view key) {
    if (active_.load(std::memory_order_relaxed) == 0) return;
    noteReadSlow(bucket, key);
  }

 private:
  using OrderList = std::vector<std::shared_ptr<PrefetchOrder>>;
  void noteReadSlow(std::string_view bucket, std::string_view key);

  std::atomic<std::size_t> active_{0};
  mutable std::mutex m_;
  std::shared_ptr<const OrderList> orders_ = std::make_shared<const OrderList>();  // guarded by m_; replaced, never changed
};

}  // namespace granary::s3api

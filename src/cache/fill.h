#pragma once
// One downloader per chunk (ClickHouse's FileSegment): the first request that misses a chunk creates its
// Fill and downloads into it; concurrent requests for the same chunk, on any thread, find the Fill and
// stream from it as bytes arrive instead of asking the backend again. State machine:
// Downloading -> Done | Failed. Bytes below ready() never change, so readers need no lock to copy them.
// A fill leaves its table (FillGuard) once over and, when Done, once the cache holds its chunk; readers
// that hold it keep streaming from it (detached, ClickHouse's word).

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "cache/chunk.h"

namespace granary::cache {

class Fill {
 public:
  enum class State : std::uint8_t { Downloading, Done, Failed };

  /// @param chunk the entry being filled (its value size is the chunk's length); null for a fill that
  ///        only carries an outcome (metadata lookups).
  explicit Fill(ChunkPtr chunk) : chunk_(std::move(chunk)) {}

  /// Downloader only: the entry to write into (bytes at and above ready()).
  Chunk& chunk() { return *chunk_; }
  ConstChunkPtr sharedChunk() const { return chunk_; }
  /// Downloader: `n` more bytes are in place. Wakes readers.
  void advance(std::size_t n);
  /// Downloader: the fill is over. Wakes readers.
  void finish(bool ok);

  /// A caller-defined word describing the outcome, set by the downloader before finish() (metadata
  /// fills: why it failed, so waiters can act on the reason too).
  void setNote(int note) { note_.store(note, std::memory_order_release); }
  int note() const { return note_.load(std::memory_order_acquire); }

  std::size_t ready() const { return ready_.load(std::memory_order_acquire); }
  State state() const { return state_.load(std::memory_order_acquire); }
  const char* data() const { return chunk_->value(); }

  /// Returns once ready() > pos, the fill is over, or `timeout` passed (check state() and ready()).
  boost::asio::awaitable<void> waitPast(std::size_t pos, std::chrono::milliseconds timeout);
  /// Waits until bytes past `pos` are ready. @return ready() (> pos), or `pos` when the fill failed or
  /// made no progress for `timeout` (the bytes past `pos` will not come from this fill).
  boost::asio::awaitable<std::size_t> readyPast(std::size_t pos, std::chrono::milliseconds timeout);

 private:
  struct Waiter {
    boost::asio::any_io_executor executor;
    std::shared_ptr<boost::asio::steady_timer> timer;
  };
  void wake();

  ChunkPtr chunk_;
  std::atomic<std::size_t> ready_{0};
  std::atomic<State> state_{State::Downloading};
  std::atomic<int> note_{0};
  std::mutex m_;
  std::vector<Waiter> waiters_;  // guarded by m_
};
using FillPtr = std::shared_ptr<Fill>;

/// Fills in flight, by full key. Thread-safe: power-of-two lock stripes chosen by the key hash's high bits.
class FillTable {
 public:
  /// @return the fill in flight for `key`, or a new one whose caller is the downloader (second = true).
  ///         `makeChunk` creates the entry of a new fill (may return null for outcome-only fills).
  template <class MakeChunk>
  std::pair<FillPtr, bool> acquire(const std::string& key, MakeChunk&& makeChunk) {
    Stripe& s = stripeOf(key);
    std::lock_guard lk(s.m);
    auto [it, inserted] = s.fills.try_emplace(key);
    if (!inserted) return {it->second, false};
    it->second = std::make_shared<Fill>(makeChunk());
    size_.fetch_add(1, std::memory_order_relaxed);
    return {it->second, true};
  }
  FillPtr find(const std::string& key) const;
  /// The downloader, once finished: later requests no longer find this fill.
  void release(const std::string& key, const Fill* fill);
  std::size_t size() const { return size_.load(std::memory_order_relaxed); }

 private:
  static constexpr std::size_t kStripes = 16;
  struct Stripe {
    mutable std::mutex m;
    std::unordered_map<std::string, FillPtr> fills;  // guarded by m
  };
  Stripe& stripeOf(const std::string& key) const { return stripes_[(hashBytes(key) >> 60) & (kStripes - 1)]; }

  mutable std::array<Stripe, kStripes> stripes_;
  std::atomic<std::size_t> size_{0};
};

/// Ends a fill exactly once, whatever path its downloader takes out of its coroutine: a fill still
/// Downloading finishes (as `ok` says), and it leaves the table.
struct FillGuard {
  FillTable& table;
  const std::string& key;
  FillPtr fill;
  bool ok = false;
  FillGuard(FillTable& t, const std::string& k, FillPtr f) : table(t), key(k), fill(std::move(f)) {}
  FillGuard(const FillGuard&) = delete;
  FillGuard& operator=(const FillGuard&) = delete;
  ~FillGuard() {
    if (fill->state() == Fill::State::Downloading) fill->finish(ok);
    table.release(key, fill.get());
  }
};

}  // namespace granary::cache

#pragma once
// The bounded window of a prefetch job (pure bookkeeping, no I/O, no clock): which position of the order
// to fetch next, given the reader's position, the bytes already fetched (or in flight) ahead of it, and
// the fetches in flight. One thread (the admin thread) owns it.
//
// Rules:
// - At most `concurrency` fetches in flight.
// - Positions at or below the reader are skipped: the reader has read them already (through the cache).
// - A fetch starts only while the bytes fetched or in flight ahead of the reader, plus its own size,
//   stay within `windowBytes`; the position just past the reader always may start (the reader needs it
//   now), so an object larger than the window is still fetched, one at a time.
// - A position's size is known from a listing, else estimated (the mean of the sizes fetched so far)
//   until its fetch completes and tells the real one; before any size is known, one fetch at a time.
//   With estimates, the window can be passed by what objects larger than the mean add (at most
//   `concurrency` of them).
// Bytes of positions the reader passes leave the window.

#include <cstdint>
#include <optional>
#include <vector>

namespace granary::s3api {

class PrefetchWindow {
 public:
  /// @param sizes the size of each position when known (a listing), else empty: estimated.
  PrefetchWindow(std::size_t positions, std::vector<std::uint64_t> sizes, std::uint64_t windowBytes, unsigned concurrency);

  /// The reader reached `position` (a maximum: lower values are ignored).
  void setReader(std::int64_t position);
  /// The next position to fetch now, reserved in the window, or nullopt (wait for the reader, or for a
  /// fetch to complete, or nothing is left).
  std::optional<std::size_t> next();
  /// The fetch of `position` completed with `bytes` (0 when it failed).
  void finished(std::size_t position, std::uint64_t bytes);

  std::int64_t reader() const { return reader_; }
  /// The first position not started yet.
  std::size_t cursor() const { return cursor_; }
  /// Bytes fetched or in flight at positions past the reader.
  std::uint64_t bytesAhead() const { return bytesAhead_; }
  unsigned inFlight() const { return inFlight_; }
  /// Positions the reader passed before they were started.
  std::uint64_t skipped() const { return skipped_; }
  /// Every position started or skipped, and no fetch in flight.
  bool done() const { return cursor_ >= positions_ && inFlight_ == 0; }

 private:
  std::uint64_t estimate(std::size_t position) const;

  const std::size_t positions_;
  const std::vector<std::uint64_t> known_;  // sizes from a listing, or empty
  const std::uint64_t windowBytes_;
  const unsigned concurrency_;
  std::vector<std::uint64_t> reserved_;  // bytes counted for each started position (estimate, then real)
  std::int64_t reader_ = -1;
  std::size_t cursor_ = 0;
  std::uint64_t bytesAhead_ = 0;
  unsigned inFlight_ = 0;
  std::uint64_t skipped_ = 0;
  std::uint64_t fetchedBytes_ = 0, fetchedCount_ = 0;  // for the estimate
};

}  // namespace granary::s3api

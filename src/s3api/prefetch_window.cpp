#include "s3api/prefetch_window.h"

#include <algorithm>

namespace granary::s3api {

PrefetchWindow::PrefetchWindow(std::size_t positions, std::vector<std::uint64_t> sizes, std::uint64_t windowBytes,
                               unsigned concurrency)
    : positions_(positions),
      known_(sizes.size() == positions ? std::move(sizes) : std::vector<std::uint64_t>{}),
      windowBytes_(windowBytes),
      concurrency_(std::max(1u, concurrency)),
      reserved_(positions, 0) {}

void PrefetchWindow::setReader(std::int64_t position) {
  position = std::min<std::int64_t>(position, static_cast<std::int64_t>(positions_) - 1);
  if (position <= reader_) return;
  // Positions in (reader_, position] leave the window: those started release what they reserved.
  const std::size_t from = static_cast<std::size_t>(reader_ + 1);
  const std::size_t to = std::min(static_cast<std::size_t>(position) + 1, cursor_);
  for (std::size_t i = from; i < to; ++i) bytesAhead_ -= reserved_[i];
  reader_ = position;
}

std::uint64_t PrefetchWindow::estimate(std::size_t position) const {
  if (!known_.empty()) return known_[position];
  return fetchedCount_ ? fetchedBytes_ / fetchedCount_ : 0;
}

std::optional<std::size_t> PrefetchWindow::next() {
  if (inFlight_ >= concurrency_) return std::nullopt;
  if (static_cast<std::int64_t>(cursor_) <= reader_) {
    const std::size_t past = static_cast<std::size_t>(reader_) + 1;
    skipped_ += past - cursor_;
    cursor_ = past;
  }
  if (cursor_ >= positions_) return std::nullopt;
  // Sizes unknown and none measured yet: one fetch at a time until the first tells what a size is.
  if (known_.empty() && fetchedCount_ == 0 && inFlight_ > 0) return std::nullopt;
  const std::uint64_t size = estimate(cursor_);
  const bool nextForReader = static_cast<std::int64_t>(cursor_) == reader_ + 1;
  if (!nextForReader && bytesAhead_ + size > windowBytes_) return std::nullopt;
  reserved_[cursor_] = size;
  bytesAhead_ += size;
  ++inFlight_;
  return cursor_++;
}

void PrefetchWindow::finished(std::size_t position, std::uint64_t bytes) {
  if (position >= positions_ || inFlight_ == 0) return;
  --inFlight_;
  if (bytes) {
    fetchedBytes_ += bytes;
    ++fetchedCount_;
  }
  // Still ahead of the reader: its real size replaces what was reserved for it.
  if (static_cast<std::int64_t>(position) > reader_) bytesAhead_ = bytesAhead_ - reserved_[position] + bytes;
  reserved_[position] = bytes;
}

}  // namespace granary::s3api

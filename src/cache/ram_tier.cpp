#include "cache/ram_tier.h"

#include <algorithm>

namespace granary::cache {

RamTier::RamTier(std::uint64_t capacity, std::uint64_t chunkSize)
    : capacity_(capacity), sketch_(static_cast<std::size_t>(std::max<std::uint64_t>(256, capacity / std::max<std::uint64_t>(chunkSize / 8, 4096)))) {}

ConstChunkPtr RamTier::get(std::uint64_t hash, std::string_view key) {
  std::lock_guard lk(m_);
  auto it = items_.find(hash);
  if (it == items_.end() || it->second.chunk->key() != key) return nullptr;
  order_.splice(order_.begin(), order_, it->second.pos);
  return it->second.chunk;
}

bool RamTier::contains(std::uint64_t hash) const {
  std::lock_guard lk(m_);
  return items_.contains(hash);
}

void RamTier::recordAccess(std::uint64_t hash) {
  std::lock_guard lk(m_);
  sketch_.increment(hash);
}

bool RamTier::put(std::uint64_t hash, ConstChunkPtr chunk) {
  const std::uint64_t size = chunk->entrySize();
  if (size > capacity_) return false;
  std::lock_guard lk(m_);
  if (auto it = items_.find(hash); it != items_.end()) eraseLocked(it);
  // Admission: the least recent chunks that would have to go must be accessed less often than the newcomer.
  const unsigned freq = sketch_.frequency(hash);
  std::uint64_t freed = 0;
  auto victim = order_.end();
  while (bytes_ - freed + size > capacity_ && victim != order_.begin()) {
    --victim;
    if (sketch_.frequency(*victim) >= freq) return false;
    freed += items_.find(*victim)->second.chunk->entrySize();
  }
  while (bytes_ + size > capacity_) {
    eraseLocked(items_.find(order_.back()));
    evictions_.fetch_add(1, std::memory_order_relaxed);
  }
  order_.push_front(hash);
  items_.emplace(hash, Item{std::move(chunk), order_.begin()});
  bytes_ += size;
  return true;
}

void RamTier::remove(std::uint64_t hash) {
  std::lock_guard lk(m_);
  if (auto it = items_.find(hash); it != items_.end()) eraseLocked(it);
}

void RamTier::eraseLocked(boost::unordered_flat_map<std::uint64_t, Item>::iterator it) {
  bytes_ -= it->second.chunk->entrySize();
  order_.erase(it->second.pos);
  items_.erase(it);
}

std::uint64_t RamTier::bytes() const {
  std::lock_guard lk(m_);
  return bytes_;
}

std::size_t RamTier::size() const {
  std::lock_guard lk(m_);
  return items_.size();
}

}  // namespace granary::cache

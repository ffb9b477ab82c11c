#include "cache/ram_tier.h"

#include <algorithm>

namespace granary::cache {

namespace {
constexpr std::size_t kMaxStripes = 16;
constexpr std::uint64_t kChunksPerStripe = 16;  // fewer stripes than this many chunks each would skew LRU
}  // namespace

RamTier::RamTier(std::uint64_t capacity, std::uint64_t chunkSize) : capacity_(capacity) {
  std::size_t n = 1;
  while (n < kMaxStripes && capacity / (2 * n) >= kChunksPerStripe * chunkSize) n *= 2;
  const std::uint64_t share = capacity / n;
  const auto sketchSize =
      static_cast<std::size_t>(std::max<std::uint64_t>(256, share / std::max<std::uint64_t>(chunkSize / 8, 4096)));
  for (std::size_t i = 0; i < n; ++i) stripes_.push_back(std::make_unique<Stripe>(share, sketchSize));
}

ConstChunkPtr RamTier::get(std::uint64_t hash, std::string_view key) {
  Stripe& s = stripeOf(hash);
  std::lock_guard lk(s.m);
  return getLocked(s, hash, key);
}

ConstChunkPtr RamTier::access(std::uint64_t hash, std::string_view key) {
  Stripe& s = stripeOf(hash);
  std::lock_guard lk(s.m);
  s.sketch.increment(hash);
  return getLocked(s, hash, key);
}

ConstChunkPtr RamTier::getLocked(Stripe& s, std::uint64_t hash, std::string_view key) {
  auto it = s.items.find(hash);
  if (it == s.items.end() || it->second.chunk->key() != key) return nullptr;
  s.order.splice(s.order.begin(), s.order, it->second.pos);
  return it->second.chunk;
}

bool RamTier::contains(std::uint64_t hash) const {
  Stripe& s = stripeOf(hash);
  std::lock_guard lk(s.m);
  return s.items.contains(hash);
}

void RamTier::recordAccess(std::uint64_t hash) {
  Stripe& s = stripeOf(hash);
  std::lock_guard lk(s.m);
  s.sketch.increment(hash);
}

bool RamTier::put(std::uint64_t hash, ConstChunkPtr chunk) {
  const std::uint64_t size = chunk->entrySize();
  Stripe& s = stripeOf(hash);
  if (size > s.capacity) return false;
  std::lock_guard lk(s.m);
  if (auto it = s.items.find(hash); it != s.items.end()) eraseLocked(s, it);
  // Admission: the least recent chunks that would have to go must be accessed less often than the newcomer.
  const unsigned freq = s.sketch.frequency(hash);
  std::uint64_t freed = 0;
  auto victim = s.order.end();
  while (s.bytes - freed + size > s.capacity && victim != s.order.begin()) {
    --victim;
    if (s.sketch.frequency(*victim) >= freq) return false;
    freed += s.items.find(*victim)->second.chunk->entrySize();
  }
  while (s.bytes + size > s.capacity) {
    eraseLocked(s, s.items.find(s.order.back()));
    evictions_.fetch_add(1, std::memory_order_relaxed);
  }
  s.order.push_front(hash);
  s.items.emplace(hash, Item{std::move(chunk), s.order.begin()});
  s.bytes += size;
  return true;
}

void RamTier::remove(std::uint64_t hash) {
  Stripe& s = stripeOf(hash);
  std::lock_guard lk(s.m);
  if (auto it = s.items.find(hash); it != s.items.end()) eraseLocked(s, it);
}

void RamTier::eraseLocked(Stripe& s, Map::iterator it) {
  s.bytes -= it->second.chunk->entrySize();
  s.order.erase(it->second.pos);
  s.items.erase(it);
}

std::uint64_t RamTier::bytes() const {
  std::uint64_t n = 0;
  for (const auto& s : stripes_) {
    std::lock_guard lk(s->m);
    n += s->bytes;
  }
  return n;
}

std::size_t RamTier::size() const {
  std::size_t n = 0;
  for (const auto& s : stripes_) {
    std::lock_guard lk(s->m);
    n += s->items.size();
  }
  return n;
}

}  // namespace granary::cache

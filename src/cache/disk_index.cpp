#include "cache/disk_index.h"

#include <algorithm>

namespace granary::cache {
namespace {
constexpr unsigned kVictimScoreReuse = 256;  // admission checks between recomputing a region's score
}

DiskIndex::DiskIndex(std::vector<DirGeometry> dirs, std::size_t expectedEntries)
    : sketch_(std::max<std::size_t>(1024, expectedEntries)) {
  for (const auto& g : dirs) dirs_.push_back(std::make_unique<Dir>(g));
}

std::optional<Location> DiskIndex::find(std::uint64_t hash) const {
  std::optional<Location> out;
  {
    Stripe& s = stripe(hash);
    std::lock_guard lk(s.m);
    if (auto it = s.map.find(hash); it != s.map.end()) out = it->second;
  }
  if (out && dirFailed(out->dir)) return std::nullopt;
  return out;
}

void DiskIndex::recordAccess(std::uint64_t hash) {
  std::lock_guard lk(sketchMutex_);
  sketch_.increment(hash);
}

double DiskIndex::victimScoreLocked(Dir& d, std::uint32_t r) {
  if (d.victimScoreRegion == r && d.victimScoreGen == d.regions[r].gen && d.victimScoreUses++ < kVictimScoreReuse)
    return d.victimScore;
  const Region& reg = d.regions[r];
  double sum = 0;
  std::size_t n = 0;
  {
    std::lock_guard lk(sketchMutex_);
    for (std::uint64_t h : reg.hashes) {
      sum += sketch_.frequency(h);
      ++n;
    }
  }
  d.victimScore = n ? sum / static_cast<double>(n) : 0;
  d.victimScoreRegion = r;
  d.victimScoreGen = reg.gen;
  d.victimScoreUses = 0;
  return d.victimScore;
}

void DiskIndex::openRegionLocked(std::uint8_t dirIdx, Dir& d, std::uint32_t r) {
  Region& reg = d.regions[r];
  if (reg.gen != 0) {
    reclaimed_.fetch_add(1, std::memory_order_relaxed);
    for (std::uint64_t h : reg.hashes) {
      Stripe& s = stripe(h);
      std::lock_guard lk(s.m);
      auto it = s.map.find(h);
      if (it != s.map.end() && it->second.dir == dirIdx && regionOf(d, it->second) == r) s.map.erase(it);
    }
  }
  reg.hashes.clear();
  reg.hashes.shrink_to_fit();
  reg.used = 0;
  reg.gen = d.nextGen++;
  d.active = r;
  d.opened = true;
  emit({IndexEvent::Kind::Open, dirIdx, r, reg.gen, 0, {}});
}

std::optional<Slot> DiskIndex::reserve(std::uint64_t hash, std::uint64_t bytes) {
  bytes = (bytes + 4095) & ~std::uint64_t{4095};
  const std::size_t n = dirs_.size();
  for (std::size_t i = 0; i < n; ++i) {
    const auto dirIdx = static_cast<std::uint8_t>((hash + i) % n);
    Dir& d = *dirs_[dirIdx];
    if (d.failed.load(std::memory_order_relaxed)) continue;
    if (bytes > d.geo.regionSize || bytes / 4096 > UINT16_MAX) return std::nullopt;
    std::lock_guard lk(d.m);
    if (!d.opened || d.regions[d.active].used + bytes > d.geo.regionSize) {
      const std::uint32_t next = d.opened ? (d.active + 1) % d.geo.regions : 0;
      Region& victim = d.regions[next];
      if (victim.pending > 0) return std::nullopt;  // still being written: skip this entry
      if (victim.gen != 0) {
        unsigned freq;
        {
          std::lock_guard sk(sketchMutex_);
          freq = sketch_.frequency(hash);
        }
        if (static_cast<double>(freq) <= victimScoreLocked(d, next)) {
          rejected_.fetch_add(1, std::memory_order_relaxed);
          return std::nullopt;
        }
      }
      openRegionLocked(dirIdx, d, next);
    }
    Region& reg = d.regions[d.active];
    Slot slot;
    slot.dir = dirIdx;
    slot.region = d.active;
    slot.gen = reg.gen;
    const std::uint64_t offset = std::uint64_t{d.active} * d.geo.regionSize + reg.used;
    slot.loc = {static_cast<std::uint32_t>(offset / 4096), static_cast<std::uint16_t>(bytes / 4096), dirIdx, 0};
    reg.used += bytes;
    ++reg.pending;
    admitted_.fetch_add(1, std::memory_order_relaxed);
    return slot;
  }
  return std::nullopt;
}

void DiskIndex::commit(const Slot& slot, std::uint64_t hash) {
  Dir& d = *dirs_[slot.dir];
  std::lock_guard lk(d.m);
  Region& reg = d.regions[slot.region];
  --reg.pending;
  if (reg.gen != slot.gen || d.failed.load(std::memory_order_relaxed)) return;
  reg.hashes.push_back(hash);
  {
    Stripe& s = stripe(hash);
    std::lock_guard sl(s.m);
    s.map.insert_or_assign(hash, slot.loc);
    // Journaled under the stripe lock: for one hash the journal's order is the index's order.
    emit({IndexEvent::Kind::Insert, slot.dir, slot.region, slot.gen, hash, slot.loc});
  }
}

void DiskIndex::abort(const Slot& slot) {
  Dir& d = *dirs_[slot.dir];
  std::lock_guard lk(d.m);
  --d.regions[slot.region].pending;
}

bool DiskIndex::remove(std::uint64_t hash) {
  Stripe& s = stripe(hash);
  std::lock_guard lk(s.m);
  auto it = s.map.find(hash);
  if (it == s.map.end()) return false;
  const std::uint8_t dir = it->second.dir;
  s.map.erase(it);
  emit({IndexEvent::Kind::Remove, dir, 0, 0, hash, {}});  // into the journal of the entry's directory
  return true;
}

bool DiskIndex::removeIfAt(std::uint64_t hash, const Location& loc) {
  Stripe& s = stripe(hash);
  std::lock_guard lk(s.m);
  auto it = s.map.find(hash);
  if (it == s.map.end() || it->second.block != loc.block || it->second.dir != loc.dir) return false;
  s.map.erase(it);
  emit({IndexEvent::Kind::Remove, loc.dir, 0, 0, hash, {}});
  return true;
}

void DiskIndex::failDir(std::uint8_t dir) { dirs_[dir]->failed.store(true, std::memory_order_relaxed); }

void DiskIndex::restoreDir(std::uint8_t dirIdx, const std::vector<std::uint32_t>& gens,
                           const std::vector<std::pair<std::uint64_t, std::pair<Location, std::uint32_t>>>& entries) {
  Dir& d = *dirs_[dirIdx];
  std::lock_guard lk(d.m);
  std::uint32_t newest = 0;
  for (std::uint32_t r = 0; r < d.geo.regions && r < gens.size(); ++r) {
    d.regions[r].gen = gens[r];
    if (gens[r] >= d.nextGen) {
      d.nextGen = gens[r] + 1;
      newest = r;
      d.opened = true;
    }
  }
  for (const auto& [hash, lg] : entries) {
    const auto& [loc, gen] = lg;
    const std::uint32_t r = regionOf(d, loc);
    if (r >= d.geo.regions || d.regions[r].gen != gen || gen == 0) continue;
    Region& reg = d.regions[r];
    reg.hashes.push_back(hash);
    const std::uint64_t end = std::uint64_t{loc.block} * 4096 + std::uint64_t{loc.blocks} * 4096 -
                              std::uint64_t{r} * d.geo.regionSize;
    reg.used = std::max(reg.used, end);
    Stripe& s = stripe(hash);
    std::lock_guard sl(s.m);
    s.map.insert_or_assign(hash, loc);
  }
  if (d.opened) {
    // The newest region may hold writes that never finished: never append to it again; the next write
    // opens the region after it.
    d.active = newest;
    d.regions[newest].used = d.geo.regionSize;
  }
}

void DiskIndex::snapshotDir(std::uint8_t dirIdx, std::vector<std::uint32_t>& gens,
                            std::vector<std::pair<std::uint64_t, Location>>& entries) const {
  Dir& d = *dirs_[dirIdx];
  std::lock_guard lk(d.m);
  gens.clear();
  entries.clear();
  for (const Region& r : d.regions) gens.push_back(r.gen);
  for (std::uint32_t r = 0; r < d.geo.regions; ++r) {
    for (std::uint64_t h : d.regions[r].hashes) {
      Stripe& s = stripe(h);
      std::lock_guard sl(s.m);
      auto it = s.map.find(h);
      if (it != s.map.end() && it->second.dir == dirIdx && regionOf(d, it->second) == r)
        entries.emplace_back(h, it->second);
    }
  }
}

DiskIndex::Stats DiskIndex::stats() const {
  Stats st;
  for (const Stripe& s : stripes_) {
    std::lock_guard lk(s.m);
    st.entries += s.map.size();
    for (const auto& [h, loc] : s.map) st.bytes += std::uint64_t{loc.blocks} * 4096;
  }
  st.admitted = admitted_.load();
  st.rejected = rejected_.load();
  st.regionsReclaimed = reclaimed_.load();
  return st;
}

}  // namespace granary::cache

// Trace-driven benchmark of the disk tier's admission/eviction (DiskIndex, the production code) against
// LRU of the same capacity: cyclic scans over twice the cache (AI training epochs, same and shuffled
// order) and Zipf(0.9). Prints hit ratios side by side. Usage: policy_trace [regions ...]

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "cache/disk_index.h"
#include "support/cache_traces.h"

using namespace granary;

namespace {
constexpr std::uint64_t kRegion = 16 << 20;  // production's default region for 4 MiB chunks
constexpr std::uint64_t kEntry = 4 << 20;     // ~4 entries per region, as with 4 MiB chunks
constexpr std::uint64_t kEntryOnDisk = kEntry + 4096;

struct Result {
  double granary, lru;
};

Result replay(const std::vector<std::uint64_t>& trace, std::uint32_t regions, std::size_t warmup) {
  cache::DiskIndex idx({cache::DirGeometry{kRegion + 4 * 4096, regions}}, regions * 4);
  testing::Lru lru(regions * 4);
  std::size_t hits = 0, lruHits = 0, n = 0;
  for (std::size_t i = 0; i < trace.size(); ++i) {
    const std::uint64_t h = trace[i];
    idx.recordAccess(h);
    bool hit = idx.find(h).has_value();
    if (!hit)
      if (auto slot = idx.reserve(h, kEntryOnDisk)) idx.commit(*slot, h);
    const bool lh = lru.access(h);
    if (i >= warmup) {
      hits += hit;
      lruHits += lh;
      ++n;
    }
  }
  return {double(hits) / double(n), double(lruHits) / double(n)};
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::uint32_t> sizes;
  for (int i = 1; i < argc; ++i) sizes.push_back(static_cast<std::uint32_t>(std::atoi(argv[i])));
  if (sizes.empty()) sizes = {64, 256, 1024};
  std::printf("%-10s %-9s %-28s %12s %12s\n", "regions", "chunks", "trace", "Granary hit", "LRU hit");
  for (std::uint32_t regions : sizes) {
    const std::size_t chunks = regions * 4;
    const auto same = testing::cyclicTrace(2 * chunks, 10, false);
    const auto shuffled = testing::cyclicTrace(2 * chunks, 10, true);
    const auto zipf = testing::zipfTrace(20 * chunks, 400 * chunks);
    const Result a = replay(same, regions, 4 * chunks);
    const Result b = replay(shuffled, regions, 4 * chunks);
    const Result c = replay(zipf, regions, 0);
    std::printf("%-10u %-9zu %-28s %12.3f %12.3f\n", regions, chunks, "cyclic 2x cache, same order", a.granary, a.lru);
    std::printf("%-10u %-9zu %-28s %12.3f %12.3f\n", regions, chunks, "cyclic 2x cache, shuffled", b.granary, b.lru);
    std::printf("%-10u %-9zu %-28s %12.3f %12.3f\n", regions, chunks, "Zipf(0.9), 20x cache keys", c.granary, c.lru);
  }
}

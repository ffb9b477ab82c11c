// How fast the disk tier's index comes back after a restart, and how much RAM it takes per chunk:
// writes a journal of N entries (default one million), then times Journal::load + DiskIndex::restoreDir
// as Granary's start-up does, and reports the resident memory the restored index holds.
// Usage: index_load [entries] [directory]

#include <malloc.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "cache/disk_index.h"
#include "cache/journal.h"

using namespace granary::cache;

namespace {
long rssKiB() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  const std::size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1'000'000;
  const std::string dir = argc > 2 ? argv[2] : "/tmp";
  const std::string path = dir + "/granary-index-load.journal";
  // 1M chunks of 64 KiB (small objects: the index's worst case per byte) in 16 MiB regions.
  const DirGeometry geo{16 << 20, static_cast<std::uint32_t>((n * 65536 + (16 << 20) - 1) / (16 << 20) + 1)};
  {
    std::vector<std::uint32_t> gens(geo.regions);
    for (std::uint32_t r = 0; r < geo.regions; ++r) gens[r] = r + 1;
    std::vector<std::pair<std::uint64_t, Location>> entries(n);
    for (std::size_t i = 0; i < n; ++i)
      entries[i] = {i * 0x9e3779b97f4a7c15ull + 1, Location{static_cast<std::uint32_t>(i * 16), 16, 0, 0}};
    std::string err;
    if (!Journal::writeSnapshot(path, geo, gens, entries, err)) {
      std::fprintf(stderr, "%s\n", err.c_str());
      return 1;
    }
  }
  const long before = rssKiB();
  const auto t0 = std::chrono::steady_clock::now();
  auto* idx = new DiskIndex({geo}, n / 4);  // sketch sized as DiskTier sizes it for 4 MiB chunks
  {
    Journal::Loaded loaded = Journal::load(path, geo, 0);
    idx->restoreDir(0, loaded.gens, loaded.entries);
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ::malloc_trim(0);  // as DiskTier does after loading: the journal's temporaries go back to the system
  const long after = rssKiB();
  const auto st = idx->stats();
  std::printf("entries restored: %llu of %zu\nload + restore: %.3f s\n"
              "index RAM: %.1f bytes per entry held (maps, region lists, sketch); process RSS grew %.1f bytes per entry\n",
              static_cast<unsigned long long>(st.entries), n, secs, double(idx->memoryBytes()) / double(st.entries),
              double(after - before) * 1024.0 / double(st.entries));
  ::unlink(path.c_str());
  delete idx;
  return st.entries == n ? 0 : 1;
}

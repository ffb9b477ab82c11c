// Fuzz target: the disk tier's index journal (src/cache/journal.h) replayed as DiskTier does at start-up
// (disk_tier.cpp: Journal::load, DiskIndex::restoreDir, snapshotDir, Journal::writeSnapshot), from a
// file in a scratch directory.
//
// Input: u8 mode, u8 regions, u8 region size, then
//   mode & 1: raw journal bytes (mode & 2: after the real header of this geometry);
//   else: records as 12-byte events (kind, region, gen, hash, block, blocks), encoded with the real
//   record encoder (valid checksums), then damaged: cut at a chosen byte and/or one byte flipped.
// Properties:
//   - load() yields exactly the state of the whole records before the first damaged one (a model
//     replays them): never an entry that was not written whole, never one from after a torn record;
//   - restoreDir keeps exactly the entries of a live region generation;
//   - the snapshot DiskTier writes back reloads to the same state, and cut at any byte it reloads to
//     the state of a prefix of its records;
//   - space handed out after the restore lies inside one region and overlaps no live entry.

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "cache/disk_index.h"
#include "cache/journal.h"
#include "fuzz_common.h"

using namespace granary::cache;
using granary::fuzz::Input;

namespace {

using Entries = std::map<std::uint64_t, std::pair<Location, std::uint32_t>>;  // hash -> (where, gen)

struct Model {
  std::vector<std::uint32_t> gens;
  Entries entries;
  std::size_t records = 0;
};

bool sameLoc(const Location& a, const Location& b) {
  return a.block == b.block && a.blocks == b.blocks && a.dir == b.dir && a.reserved == b.reserved;
}

/// What load() must return for these whole, valid records.
Model replayModel(const std::vector<IndexEvent>& events, const DirGeometry& geo, std::uint8_t dir) {
  Model m;
  m.gens.assign(geo.regions, 0);
  for (const auto& e : events) {
    ++m.records;
    switch (e.kind) {
      case IndexEvent::Kind::Open:
        if (e.region < geo.regions) m.gens[e.region] = e.gen;
        break;
      case IndexEvent::Kind::Insert:
        m.entries[e.hash] = {Location{e.loc.block, e.loc.blocks, dir, 0}, e.gen};
        break;
      case IndexEvent::Kind::Remove:
        m.entries.erase(e.hash);
        break;
      default:
        break;  // a record of a kind this version does not know: counted, ignored
    }
  }
  return m;
}

void checkLoaded(const Journal::Loaded& got, const Model& want, const char* what) {
  FUZZ_CHECK(got.records == want.records, std::string(what) + ": records " + std::to_string(got.records) + " != " +
                                               std::to_string(want.records));
  FUZZ_CHECK(got.gens == want.gens, what);
  FUZZ_CHECK(got.entries.size() == want.entries.size(), what);
  for (const auto& [hash, lg] : got.entries) {
    auto it = want.entries.find(hash);
    FUZZ_CHECK(it != want.entries.end(), std::string(what) + ": an entry never written whole");
    FUZZ_CHECK(sameLoc(lg.first, it->second.first) && lg.second == it->second.second, what);
  }
}

std::uint32_t regionOf(const DirGeometry& geo, const Location& loc) {
  return static_cast<std::uint32_t>(std::uint64_t{loc.block} * 4096 / geo.regionSize);
}

bool insideRegion(const DirGeometry& geo, const Location& loc) {
  const std::uint64_t begin = std::uint64_t{loc.block} * 4096, end = begin + std::uint64_t{loc.blocks} * 4096;
  const std::uint64_t r = begin / geo.regionSize;
  return r < geo.regions && end <= (r + 1) * geo.regionSize;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 64 * 1024) return 0;
  Input in(data, size);
  const std::uint8_t mode = in.u8();
  DirGeometry geo;
  geo.regions = 2 + in.u8() % 15;
  geo.regionSize = 4096ull * (1 + in.u8() % 16);
  const std::uint8_t dir = 0;
  const std::string dirPath = granary::fuzz::scratchDir() + "/disk";
  granary::fuzz::resetDir(dirPath);
  const std::string path = dirPath + "/journal";

  std::string file;
  std::vector<IndexEvent> whole;  // the records load() may use (structured mode)
  bool checkModel = false;
  if (mode & 1) {
    if (mode & 2) file = Journal::encodeHeader(geo);
    file += in.rest();
  } else {
    std::vector<IndexEvent> events;
    std::vector<std::string> encoded;
    const std::uint8_t damage = in.u8();
    const std::uint16_t cutAt = in.u16(), flipAt = in.u16();
    const std::uint8_t flipXor = in.u8();
    while (in.remaining() >= 12 && events.size() < 512) {
      IndexEvent e{};
      const std::uint8_t kind = in.u8();
      // 1 Open, 2 Insert, 3 Remove; 0, 8, 16...: a kind this version does not know.
      const unsigned k = kind % 8;
      e.kind = static_cast<IndexEvent::Kind>(k >= 1 && k <= 3 ? k : k == 0 ? kind : 1 + k % 3);
      e.dir = in.u8();
      e.region = in.u8();
      e.gen = in.u16();
      e.hash = in.u16() * 0x9E3779B97F4A7C15ull;  // few distinct keys, spread over the index's stripes
      e.loc.block = in.u16();
      e.loc.blocks = in.u8();
      e.loc.dir = in.u8();
      in.u8();
      events.push_back(e);
      encoded.push_back(Journal::encodeRecord(e));
    }
    file = Journal::encodeHeader(geo);
    for (const auto& r : encoded) file += r;
    std::size_t firstBad = events.size();  // records before the damage are whole
    if ((damage & 1) && !file.empty()) {
      const std::size_t at = cutAt % (file.size() + 1);
      file.resize(at);
      if (at < 64) firstBad = 0;
      else firstBad = std::min(firstBad, (at - 64) / 32);
    }
    if ((damage & 2) && !file.empty() && flipXor != 0) {
      const std::size_t at = flipAt % file.size();
      file[at] = static_cast<char>(file[at] ^ flipXor);
      firstBad = at < 64 ? 0 : std::min(firstBad, (at - 64) / 32);
    }
    const bool headerIntact = file.size() >= 64 && !((damage & 2) && flipXor != 0 && flipAt % file.size() < 64);
    if (headerIntact) whole.assign(events.begin(), events.begin() + static_cast<std::ptrdiff_t>(firstBad));
    checkModel = true;
  }
  granary::fuzz::writeFile(path, file);

  // Start-up, as DiskTier::openDir does it.
  Journal::Loaded loaded = Journal::load(path, geo, dir);
  FUZZ_CHECK(loaded.gens.size() == geo.regions);
  if (checkModel) checkLoaded(loaded, replayModel(whole, geo, dir), "damaged journal");
  if (!loaded.reset.empty()) FUZZ_CHECK(loaded.entries.empty() && loaded.records == 0);

  DiskIndex index({geo}, 1024);
  index.restoreDir(dir, loaded.gens, loaded.entries);
  std::vector<std::uint32_t> gens;
  std::vector<std::pair<std::uint64_t, Location>> live;
  index.snapshotDir(dir, gens, live);
  FUZZ_CHECK(gens == loaded.gens, "restoreDir keeps the generations");
  // Exactly the entries whose region exists and holds their generation.
  std::map<std::uint64_t, Location> expectLive;
  for (const auto& [hash, lg] : loaded.entries) {
    const std::uint32_t r = regionOf(geo, lg.first);
    if (r < geo.regions && lg.second != 0 && loaded.gens[r] == lg.second) expectLive[hash] = lg.first;
  }
  FUZZ_CHECK(live.size() == expectLive.size(), "restored entries: " + std::to_string(live.size()) + " != " +
                                                   std::to_string(expectLive.size()));
  for (const auto& [hash, loc] : live) {
    auto it = expectLive.find(hash);
    FUZZ_CHECK(it != expectLive.end() && sameLoc(it->second, loc), "a restored entry that the journal did not hold");
    const auto found = index.find(hash);
    FUZZ_CHECK(found && sameLoc(*found, loc));
  }

  // The compact journal DiskTier writes back, reloaded whole and cut at a chosen byte.
  std::string error;
  FUZZ_CHECK(Journal::writeSnapshot(path, geo, gens, live, error), error);
  const std::string snapshot = granary::fuzz::readFile(path);
  std::vector<IndexEvent> written;  // the snapshot's records, in writeSnapshot's order
  for (std::uint32_t r = 0; r < gens.size(); ++r)
    if (gens[r] != 0) written.push_back({IndexEvent::Kind::Open, 0, r, gens[r], 0, {}});
  for (const auto& [hash, loc] : live) {
    const std::uint32_t r = regionOf(geo, loc);
    written.push_back({IndexEvent::Kind::Insert, loc.dir, r, gens[r], hash, loc});
  }
  FUZZ_CHECK(snapshot.size() == 64 + 32 * written.size(), "snapshot size");
  checkLoaded(Journal::load(path, geo, dir), replayModel(written, geo, dir), "snapshot");
  const std::size_t cut = (static_cast<std::size_t>(mode) * 7919 + live.size() * 31) % (snapshot.size() + 1);
  granary::fuzz::writeFile(path, std::string_view(snapshot).substr(0, cut));
  const Journal::Loaded cutLoaded = Journal::load(path, geo, dir);
  if (cut < 64) {
    FUZZ_CHECK(cutLoaded.entries.empty() && cutLoaded.records == 0 && !cutLoaded.reset.empty());
  } else {
    const std::vector<IndexEvent> prefix(written.begin(), written.begin() + static_cast<std::ptrdiff_t>((cut - 64) / 32));
    checkLoaded(cutLoaded, replayModel(prefix, geo, dir), "cut snapshot");
  }

  // New space after the restore: inside one region, never over a live entry written there whole.
  for (int i = 0; i < 3; ++i) {
    const std::uint64_t bytes = 4096ull * (1 + (mode >> 4) % 4) * (i + 1);
    const std::uint64_t hash = 0xABCDEF0123456789ull * static_cast<std::uint64_t>(i + 1);
    for (int k = 0; k < 8; ++k) index.recordAccess(hash);
    const auto slot = index.reserve(hash, bytes);
    if (!slot) continue;
    const std::uint64_t begin = slot->offset(), end = begin + slot->size();
    FUZZ_CHECK(slot->region < geo.regions && begin >= slot->region * geo.regionSize &&
                   end <= (slot->region + 1) * geo.regionSize,
               "a slot outside its region");
    index.snapshotDir(dir, gens, live);
    for (const auto& [h, loc] : live) {
      if (!insideRegion(geo, loc)) continue;  // (only a forged record can make one)
      const std::uint64_t b = std::uint64_t{loc.block} * 4096, e = b + std::uint64_t{loc.blocks} * 4096;
      FUZZ_CHECK(e <= begin || b >= end || loc.blocks == 0, "a slot over a live entry");
    }
    index.commit(*slot, hash);
  }
  return 0;
}

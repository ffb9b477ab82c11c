#pragma once
// The disk tier's index journal: one append-only file per cache directory of 32-byte records (region
// opened, entry inserted, entry removed), written by a background thread so no I/O thread ever blocks on
// it. At start-up the journal is replayed into the index (a million entries load in well under 2 s,
// see bench/RESULTS.md) and rewritten compactly; it is compacted again when it outgrows its budget and
// at a clean stop.
//
// Crash safety needs no fsync for `kill -9`: the kernel keeps what was written. An entry is journaled only
// after its data write completed, and every read re-checks the entry's key and XXH3 checksum, so a lost or
// torn record can only lose cache contents, never serve wrong bytes. A record torn at the tail is ignored.

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "cache/disk_index.h"

namespace granary::cache {

class Journal {
 public:
  struct Loaded {
    std::vector<std::uint32_t> gens;
    std::vector<std::pair<std::uint64_t, std::pair<Location, std::uint32_t>>> entries;  // hash -> (where, gen)
    std::size_t records = 0;
    std::string reset;  // why the journal was not used (empty when it was)
  };
  /// Reads a journal. A missing, foreign or differently-shaped journal yields nothing (and says why).
  /// Blocking: start-up only.
  static Loaded load(const std::string& path, const DirGeometry& geo, std::uint8_t dir);

  /// Writes a compact journal for this state, atomically (temporary file, then rename). Blocking.
  /// @return false on an I/O error (errno-style message in `error`).
  static bool writeSnapshot(const std::string& path, const DirGeometry& geo, const std::vector<std::uint32_t>& gens,
                            const std::vector<std::pair<std::uint64_t, Location>>& entries, std::string& error);

  /// The bytes of a journal's header and of one record, exactly as writeSnapshot and the writer lay
  /// them out (for tests and the fuzz targets, which build journals record by record).
  static std::string encodeHeader(const DirGeometry& geo);
  static std::string encodeRecord(const IndexEvent& e);

  using SnapshotSource =
      std::function<void(std::vector<std::uint32_t>&, std::vector<std::pair<std::uint64_t, Location>>&)>;
  using ErrorHandler = std::function<void(const std::string&)>;

  /// Appends to `path` (which must exist, e.g. from writeSnapshot). `budget`: size that triggers compaction.
  Journal(std::string path, DirGeometry geo, std::uint64_t budget, SnapshotSource source, ErrorHandler onError);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  /// Queues a record; never blocks on I/O.
  void append(const IndexEvent& e);
  /// Writes what is queued, stops the writer and leaves a compact journal behind.
  void close();

  std::uint64_t compactions() const { return compactions_; }

 private:
  void run();
  bool writeBatch(const std::vector<IndexEvent>& batch);
  bool compact();

  std::string path_;
  DirGeometry geo_;
  std::uint64_t budget_;
  SnapshotSource source_;
  ErrorHandler onError_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
  std::uint64_t compactedSize_ = 0;
  std::uint64_t compactions_ = 0;
  bool failed_ = false;

  std::mutex m_;
  std::condition_variable cv_;
  std::vector<IndexEvent> queue_;  // guarded by m_
  bool stop_ = false;              // guarded by m_
  std::thread thread_;
};

}  // namespace granary::cache

#pragma once
// The disk tier: one preallocated data file and one index journal per cache directory (one directory per
// NVMe device), the DiskIndex over them, and per-thread io_uring file handles (Asio's io_uring file
// backend: each I/O thread's io_context owns its ring). Data files are opened O_DIRECT where the
// filesystem allows it. A directory that fails (EIO, ENOSPC, a journal that cannot be written) is taken
// out of service: its chunks become misses and requests go to the backend instead.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/random_access_file.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cache/chunk.h"
#include "cache/disk_index.h"
#include "cache/journal.h"

namespace granary::cache {

struct CacheDirSpec {
  std::string path;
  std::uint64_t capacity = 0;  // bytes for data file + journal
};

struct DiskTierOptions {
  std::vector<CacheDirSpec> dirs;
  std::uint64_t chunkSize = 4 << 20;
  std::uint64_t regionSize = 0;  // 0: from chunkSize
  bool directIo = true;
  /// Opens a data file (path, open flags) -> fd. Tests substitute failing devices (/dev/full...).
  std::function<int(const std::string&, int)> openFile;
};

class DiskTier {
 public:
  /// Creates or reopens every directory and loads its journal. Blocking (start-up only). A directory
  /// that cannot be used is logged and left out of service; throws std::runtime_error only for
  /// configuration mistakes (a directory too small for three regions).
  explicit DiskTier(DiskTierOptions opts);
  ~DiskTier();

  DiskIndex& index() { return *index_; }
  const DiskIndex& index() const { return *index_; }

  /// Takes a directory out of service (logged once, counted).
  void failDir(std::uint8_t dir, const std::string& why);
  /// Clean stop: flushes the journals and leaves them compact. Idempotent.
  void close();

  struct DirStatus {
    std::string path;
    std::uint64_t capacity = 0;
    std::uint64_t dataBytes = 0;
    std::uint64_t regionSize = 0;
    std::uint32_t regions = 0;
    bool directIo = false;
    bool failed = false;
    std::string why;             // why it failed
    std::size_t loadedEntries = 0;
    double loadSeconds = 0;
  };
  std::vector<DirStatus> status() const;
  std::uint64_t dirFailures() const { return dirFailures_.load(); }

  int fd(std::uint8_t dir) const { return dirs_[dir].fd; }
  bool directIo(std::uint8_t dir) const { return dirs_[dir].direct; }
  std::size_t dirCount() const { return dirs_.size(); }

 private:
  struct DirState {
    CacheDirSpec spec;
    std::string dataPath, journalPath;
    int fd = -1;
    bool direct = false;
    DirGeometry geo;
    std::uint64_t journalBudget = 0;
    std::unique_ptr<Journal> journal;
    bool failed = false;
    std::string why;
    std::size_t loadedEntries = 0;
    double loadSeconds = 0;
  };
  bool openDir(std::uint8_t i, DirState& d, std::string& why);

  DiskTierOptions opts_;
  std::vector<DirState> dirs_;
  std::unique_ptr<DiskIndex> index_;
  mutable std::mutex failMutex_;
  std::atomic<std::uint64_t> dirFailures_{0};
  bool closed_ = false;
};

/// One I/O thread's handles on the disk tier: its own file objects bound to its io_context (and ring).
class DiskIo {
 public:
  DiskIo(DiskTier& tier, boost::asio::any_io_executor ex);

  struct ReadResult {
    EntryStatus status = EntryStatus::Corrupt;
    bool ioError = false;
    ChunkPtr chunk;  // set when status == Ok
  };
  /// Reads and verifies the entry at `loc` for `key`.
  boost::asio::awaitable<ReadResult> read(const Location& loc, std::string_view key);
  /// Writes a sealed entry into a reserved slot. @return false on an I/O error (the directory is failed).
  boost::asio::awaitable<bool> write(const Slot& slot, const Chunk& chunk);

 private:
  DiskTier& tier_;
  std::vector<std::unique_ptr<boost::asio::random_access_file>> files_;  // per directory; null if failed
};

}  // namespace granary::cache

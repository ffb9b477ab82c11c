#include "cache/disk_tier.h"

#include <fcntl.h>
#include <malloc.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <thread>

namespace granary::cache {
namespace {

namespace asio = boost::asio;
constexpr std::uint64_t kMiB = 1 << 20;
constexpr auto kLockWait = std::chrono::seconds(5);  // see open(): a killed owner's ring lets go late

std::uint64_t regionSizeFor(std::uint64_t chunkSize) {
  // Room for four full chunks (entry header and key included) and some small objects; at least 16 MiB.
  const std::uint64_t four = 4 * alignUp(chunkSize + 64 * 1024);
  return std::max<std::uint64_t>(16 * kMiB, (four + kMiB - 1) / kMiB * kMiB);
}

}  // namespace

DiskTier::DiskTier(DiskTierOptions opts) : opts_(std::move(opts)) {
  if (opts_.dirs.size() > 255) throw std::runtime_error("at most 255 cache directories");
  const std::uint64_t regionSize = opts_.regionSize ? alignUp(opts_.regionSize) : regionSizeFor(opts_.chunkSize);
  if (entrySize(256, opts_.chunkSize) > regionSize)
    throw std::runtime_error("cache region size must exceed the chunk size");
  std::vector<DirGeometry> geos;
  for (const auto& spec : opts_.dirs) {
    DirState d;
    d.spec = spec;
    d.journalBudget = std::clamp<std::uint64_t>(spec.capacity / 64, kMiB, 256 * kMiB);
    const std::uint64_t data = spec.capacity > d.journalBudget ? spec.capacity - d.journalBudget : 0;
    d.geo.regionSize = regionSize;
    d.geo.regions = static_cast<std::uint32_t>(std::min<std::uint64_t>(data / regionSize, UINT32_MAX));
    if (d.geo.regions < 3)
      throw std::runtime_error("cache directory " + spec.path + " is too small: at least " +
                               std::to_string((3 * regionSize + d.journalBudget) / kMiB) + " MiB for chunks of " +
                               std::to_string(opts_.chunkSize / 1024) + " KiB");
    if (data / 4096 > UINT32_MAX) throw std::runtime_error("cache directory " + spec.path + " exceeds 16 TiB");
    geos.push_back(d.geo);
    dirs_.push_back(std::move(d));
  }
  std::size_t expected = 0;
  for (const auto& d : dirs_) expected += static_cast<std::size_t>(d.spec.capacity / std::max<std::uint64_t>(opts_.chunkSize / 4, 64 * 1024));
  index_ = std::make_unique<DiskIndex>(geos, expected);
  index_->setEventSink([this](const IndexEvent& e) {
    if (auto& j = dirs_[e.dir].journal) j->append(e);
  });
  for (std::size_t i = 0; i < dirs_.size(); ++i) {
    DirState& d = dirs_[i];
    std::string why;
    if (!openDir(static_cast<std::uint8_t>(i), d, why)) {
      d.failed = true;
      d.why = why;
      index_->failDir(static_cast<std::uint8_t>(i));
      dirFailures_.fetch_add(1);
      spdlog::error("cache directory {} is out of service (requests for its chunks go to the backend): {}",
                    d.spec.path, why);
    }
  }
}

DiskTier::~DiskTier() {
  close();
  for (auto& d : dirs_)
    if (d.fd >= 0) ::close(d.fd);
}

bool DiskTier::openDir(std::uint8_t i, DirState& d, std::string& why) {
  std::error_code ec;
  // A directory Granary creates is its own (0700): it holds cached object data.
  if (std::filesystem::create_directories(d.spec.path, ec) && !ec)
    std::filesystem::permissions(d.spec.path, std::filesystem::perms::owner_all, ec);
  if (ec) {
    why = "cannot create " + d.spec.path + ": " + ec.message();
    return false;
  }
  d.dataPath = (std::filesystem::path(d.spec.path) / "granary-cache.data").string();
  d.journalPath = (std::filesystem::path(d.spec.path) / "granary-cache.journal").string();
  int flags = O_RDWR | O_CREAT | O_CLOEXEC;
  auto openFile = [&](int f) {
    return opts_.openFile ? opts_.openFile(d.dataPath, f) : ::open(d.dataPath.c_str(), f, 0600);
  };
  d.fd = opts_.directIo ? openFile(flags | O_DIRECT) : -1;
  d.direct = d.fd >= 0;
  if (d.fd < 0) d.fd = openFile(flags);  // tmpfs and others refuse O_DIRECT
  if (d.fd >= 0 && !opts_.openFile) (void)::fchmod(d.fd, 0600);  // (a file made by an older release: 0644)
  if (d.fd < 0) {
    why = "cannot open " + d.dataPath + ": " + std::strerror(errno);
    return false;
  }
  // A process killed with -9 while io_uring requests on this file were in flight keeps its open file
  // (and with it the lock) until the kernel has torn its ring down, shortly after it exited: wait a
  // little before deciding the directory belongs to someone else.
  const auto lockDeadline = std::chrono::steady_clock::now() + kLockWait;
  while (::flock(d.fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK || std::chrono::steady_clock::now() >= lockDeadline) {
      why = d.dataPath + " is in use by another process";
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const auto t0 = std::chrono::steady_clock::now();
  Journal::Loaded loaded = Journal::load(d.journalPath, d.geo, i);
  const std::uint64_t dataBytes = std::uint64_t{d.geo.regions} * d.geo.regionSize;
  struct stat st {};
  ::fstat(d.fd, &st);
  if (S_ISREG(st.st_mode) && static_cast<std::uint64_t>(st.st_size) != dataBytes) {
    // New, or resized: its contents no longer match any journal.
    loaded = Journal::Loaded{};
    loaded.gens.assign(d.geo.regions, 0);
    if (::ftruncate(d.fd, 0) != 0 || ::ftruncate(d.fd, static_cast<off_t>(dataBytes)) != 0) {
      why = "cannot size " + d.dataPath + ": " + std::strerror(errno);
      return false;
    }
  }
  // Reserve the blocks now, so the cache never meets ENOSPC later (filesystems without fallocate
  // keep the sparse file).
  if (S_ISREG(st.st_mode) && ::fallocate(d.fd, 0, 0, static_cast<off_t>(dataBytes)) != 0 && errno != EOPNOTSUPP) {
    why = "cannot reserve " + std::to_string(dataBytes >> 20) + " MiB in " + d.dataPath + ": " + std::strerror(errno);
    // A failed fallocate may keep the blocks it did get (ENOSPC part way): give them back, or a cache
    // sized past the free space leaves the disk full and the directory unused.
    if (::ftruncate(d.fd, 0) != 0) why += " (and it could not be emptied again)";
    return false;
  }
  if (!loaded.reset.empty()) spdlog::info("cache directory {}: starting empty ({})", d.spec.path, loaded.reset);
  index_->restoreDir(i, loaded.gens, loaded.entries);
  std::vector<std::uint32_t> gens;
  std::vector<std::pair<std::uint64_t, Location>> live;
  index_->snapshotDir(i, gens, live);
  if (!Journal::writeSnapshot(d.journalPath, d.geo, gens, live, why)) return false;
  d.loadedEntries = live.size();
  loaded = Journal::Loaded{};
  live = {};
  ::malloc_trim(0);  // the journal's temporaries (tens of MB for millions of entries) go back
  d.loadSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  d.journal = std::make_unique<Journal>(
      d.journalPath, d.geo, d.journalBudget,
      [this, i](auto& g, auto& e) { index_->snapshotDir(i, g, e); },
      [this, i](const std::string& err) { failDir(i, err); });
  spdlog::info("cache directory {}: {} MiB in {} regions of {} MiB, {}, {} entries restored in {:.3f}s",
               d.spec.path, dataBytes >> 20, d.geo.regions, d.geo.regionSize >> 20,
               d.direct ? "O_DIRECT" : "buffered (page cache)", d.loadedEntries, d.loadSeconds);
  return true;
}

void DiskTier::failDir(std::uint8_t dir, const std::string& why) {
  {
    std::lock_guard lk(failMutex_);
    DirState& d = dirs_[dir];
    if (d.failed) return;
    d.failed = true;
    d.why = why;
  }
  index_->failDir(dir);
  dirFailures_.fetch_add(1);
  spdlog::error("cache directory {} is out of service (requests for its chunks go to the backend): {}",
                dirs_[dir].spec.path, why);
}

void DiskTier::close() {
  if (closed_) return;
  closed_ = true;
  for (auto& d : dirs_)
    if (d.journal) d.journal->close();
}

std::vector<DiskTier::DirStatus> DiskTier::status() const {
  std::lock_guard lk(failMutex_);
  std::vector<DirStatus> out;
  for (const auto& d : dirs_) {
    DirStatus s;
    s.path = d.spec.path;
    s.capacity = d.spec.capacity;
    s.regionSize = d.geo.regionSize;
    s.regions = d.geo.regions;
    s.dataBytes = std::uint64_t{d.geo.regions} * d.geo.regionSize;
    s.directIo = d.direct;
    s.failed = d.failed;
    s.why = d.why;
    s.loadedEntries = d.loadedEntries;
    s.loadSeconds = d.loadSeconds;
    out.push_back(std::move(s));
  }
  return out;
}

DiskIo::DiskIo(DiskTier& tier, asio::any_io_executor ex) : tier_(tier) {
  for (std::size_t i = 0; i < tier.dirCount(); ++i) {
    const int fd = tier.fd(static_cast<std::uint8_t>(i));
    if (fd < 0 || tier.index().dirFailed(static_cast<std::uint8_t>(i))) {
      files_.push_back(nullptr);
      continue;
    }
    auto f = std::make_unique<asio::random_access_file>(ex);
    boost::system::error_code ec;
    f->assign(::dup(fd), ec);
    if (ec) {
      tier.failDir(static_cast<std::uint8_t>(i), "io_uring file setup failed: " + ec.message());
      f.reset();
    }
    files_.push_back(std::move(f));
  }
}

asio::awaitable<DiskIo::ReadResult> DiskIo::read(const Location& loc, std::string_view key) {
  ReadResult out;
  auto* f = loc.dir < files_.size() ? files_[loc.dir].get() : nullptr;
  if (!f || tier_.index().dirFailed(loc.dir)) {
    out.ioError = true;
    co_return out;
  }
  AlignedBuffer buf(std::size_t{loc.blocks} * kBlockSize);
  std::size_t have = 0;
  const std::uint64_t base = std::uint64_t{loc.block} * kBlockSize;
  while (have < buf.size()) {
    auto [ec, n] = co_await f->async_read_some_at(base + have, asio::buffer(buf.data() + have, buf.size() - have),
                                                  asio::as_tuple(asio::use_awaitable));
    if (ec == asio::error::operation_aborted) {
      out.ioError = true;  // shutting down: not the device's fault
      co_return out;
    }
    if (ec || n == 0) {
      tier_.failDir(loc.dir, "read failed: " + (ec ? ec.message() : std::string("unexpected end of file")));
      out.ioError = true;
      co_return out;
    }
    have += n;
  }
  auto chunk = std::make_shared<Chunk>(std::move(buf));
  out.status = chunk->verify(key);
  if (out.status == EntryStatus::Ok) out.chunk = std::move(chunk);
  co_return out;
}

asio::awaitable<bool> DiskIo::write(const Slot& slot, const Chunk& chunk) {
  auto* f = slot.dir < files_.size() ? files_[slot.dir].get() : nullptr;
  if (!f || chunk.entrySize() != slot.size()) co_return false;
  std::size_t done = 0;
  while (done < chunk.entrySize()) {
    auto [ec, n] = co_await f->async_write_some_at(slot.offset() + done,
                                                   asio::buffer(chunk.entryData() + done, chunk.entrySize() - done),
                                                   asio::as_tuple(asio::use_awaitable));
    if (ec == asio::error::operation_aborted) co_return false;
    if (ec || n == 0) {
      tier_.failDir(slot.dir, "write failed: " + (ec ? ec.message() : std::string("no progress")));
      co_return false;
    }
    done += n;
  }
  co_return true;
}

}  // namespace granary::cache

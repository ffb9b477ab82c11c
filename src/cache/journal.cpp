#include "cache/journal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/unordered/unordered_flat_map.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "cache/chunk.h"

namespace granary::cache {
namespace {

constexpr std::uint32_t kMagic = 0x314a5247;  // "GRJ1"
constexpr std::uint32_t kVersion = 1;
constexpr std::size_t kHeaderSize = 64;
constexpr std::size_t kRecordSize = 32;

struct Header {
  std::uint32_t magic;
  std::uint32_t version;
  std::uint64_t regionSize;
  std::uint32_t regions;
  std::uint32_t blockSize;
  std::uint8_t reserved[32];
  std::uint64_t check;
};
static_assert(sizeof(Header) == kHeaderSize);

struct Record {
  std::uint8_t kind;
  std::uint8_t dir;
  std::uint16_t blocks;
  std::uint32_t block;
  std::uint64_t hash;
  std::uint32_t region;
  std::uint32_t gen;
  std::uint32_t reserved;
  std::uint32_t check;
};
static_assert(sizeof(Record) == kRecordSize);

Header makeHeader(const DirGeometry& geo) {
  Header h{};
  h.magic = kMagic;
  h.version = kVersion;
  h.regionSize = geo.regionSize;
  h.regions = geo.regions;
  h.blockSize = static_cast<std::uint32_t>(kBlockSize);
  h.check = hashBytes(&h, offsetof(Header, check));
  return h;
}

Record toRecord(const IndexEvent& e) {
  Record r{};
  r.kind = static_cast<std::uint8_t>(e.kind);
  r.dir = e.dir;
  r.blocks = e.loc.blocks;
  r.block = e.loc.block;
  r.hash = e.hash;
  r.region = e.region;
  r.gen = e.gen;
  r.check = static_cast<std::uint32_t>(hashBytes(&r, offsetof(Record, check)));
  return r;
}

bool writeAll(int fd, const void* data, std::size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

std::string errnoText(const std::string& what) { return what + ": " + std::strerror(errno); }

}  // namespace

Journal::Loaded Journal::load(const std::string& path, const DirGeometry& geo, std::uint8_t dir) {
  Loaded out;
  out.gens.assign(geo.regions, 0);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    out.reset = errno == ENOENT ? "no journal (new cache directory)" : errnoText("cannot open " + path);
    return out;
  }
  struct stat st {};
  std::string data;
  if (::fstat(fd, &st) == 0) {
    data.resize(static_cast<std::size_t>(st.st_size));
    std::size_t have = 0;
    while (have < data.size()) {
      const ssize_t n = ::read(fd, data.data() + have, data.size() - have);
      if (n <= 0) break;
      have += static_cast<std::size_t>(n);
    }
    data.resize(have);
  }
  ::close(fd);
  const Header want = makeHeader(geo);
  if (data.size() < kHeaderSize || std::memcmp(data.data(), &want, kHeaderSize) != 0) {
    out.reset = "journal written for another cache geometry or version";
    return out;
  }
  boost::unordered_flat_map<std::uint64_t, std::pair<Location, std::uint32_t>> live;
  live.reserve((data.size() - kHeaderSize) / kRecordSize);
  for (std::size_t off = kHeaderSize; off + kRecordSize <= data.size(); off += kRecordSize) {
    Record r;
    std::memcpy(&r, data.data() + off, kRecordSize);
    if (r.check != static_cast<std::uint32_t>(hashBytes(&r, offsetof(Record, check)))) break;  // torn tail
    ++out.records;
    switch (static_cast<IndexEvent::Kind>(r.kind)) {
      case IndexEvent::Kind::Open:
        if (r.region < geo.regions) out.gens[r.region] = r.gen;
        break;
      case IndexEvent::Kind::Insert:
        live.insert_or_assign(r.hash, std::pair{Location{r.block, r.blocks, dir, 0}, r.gen});
        break;
      case IndexEvent::Kind::Remove:
        live.erase(r.hash);
        break;
    }
  }
  out.entries.assign(live.begin(), live.end());
  return out;
}

bool Journal::writeSnapshot(const std::string& path, const DirGeometry& geo, const std::vector<std::uint32_t>& gens,
                            const std::vector<std::pair<std::uint64_t, Location>>& entries, std::string& error) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    error = errnoText("cannot create " + tmp);
    return false;
  }
  std::string buf;
  buf.reserve(kHeaderSize + (gens.size() + entries.size()) * kRecordSize);
  const Header h = makeHeader(geo);
  buf.append(reinterpret_cast<const char*>(&h), sizeof h);
  for (std::uint32_t r = 0; r < gens.size(); ++r) {
    if (gens[r] == 0) continue;
    const Record rec = toRecord({IndexEvent::Kind::Open, 0, r, gens[r], 0, {}});
    buf.append(reinterpret_cast<const char*>(&rec), sizeof rec);
  }
  for (const auto& [hash, loc] : entries) {
    const auto region = static_cast<std::uint32_t>(std::uint64_t{loc.block} * kBlockSize / geo.regionSize);
    const Record rec = toRecord({IndexEvent::Kind::Insert, loc.dir, region, gens.at(region), hash, loc});
    buf.append(reinterpret_cast<const char*>(&rec), sizeof rec);
  }
  const bool ok = writeAll(fd, buf.data(), buf.size()) && ::fdatasync(fd) == 0;
  if (!ok) error = errnoText("cannot write " + tmp);
  ::close(fd);
  if (ok && ::rename(tmp.c_str(), path.c_str()) != 0) {
    error = errnoText("cannot rename " + tmp);
    return false;
  }
  return ok;
}

std::string Journal::encodeHeader(const DirGeometry& geo) {
  const Header h = makeHeader(geo);
  return std::string(reinterpret_cast<const char*>(&h), sizeof h);
}

std::string Journal::encodeRecord(const IndexEvent& e) {
  const Record r = toRecord(e);
  return std::string(reinterpret_cast<const char*>(&r), sizeof r);
}

Journal::Journal(std::string path, DirGeometry geo, std::uint64_t budget, SnapshotSource source, ErrorHandler onError)
    : path_(std::move(path)), geo_(geo), budget_(budget), source_(std::move(source)), onError_(std::move(onError)) {
  fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd_ < 0) {
    failed_ = true;
    onError_(errnoText("cannot open " + path_));
  } else {
    struct stat st {};
    if (::fstat(fd_, &st) == 0) size_ = static_cast<std::uint64_t>(st.st_size);
  }
  thread_ = std::thread([this] { run(); });
}

Journal::~Journal() { close(); }

void Journal::append(const IndexEvent& e) {
  {
    std::lock_guard lk(m_);
    if (stop_) return;
    queue_.push_back(e);
  }
  cv_.notify_one();
}

void Journal::close() {
  {
    std::lock_guard lk(m_);
    if (stop_ && !thread_.joinable()) return;
    stop_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
  if (!failed_) compact();
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void Journal::run() {
  std::vector<IndexEvent> batch;
  for (;;) {
    {
      std::unique_lock lk(m_);
      // Batch for a few milliseconds: one write() per batch, not per record.
      cv_.wait_for(lk, std::chrono::milliseconds(20), [&] { return stop_ || queue_.size() >= 4096; });
      batch.swap(queue_);
      if (stop_ && batch.empty()) return;
    }
    if (!batch.empty() && !failed_) {
      if (!writeBatch(batch)) {
        failed_ = true;
        onError_(errnoText("cannot append to " + path_));
      } else if (size_ > std::max(budget_, 2 * compactedSize_) && !compact()) {
        failed_ = true;
      }
    }
    batch.clear();
  }
}

bool Journal::writeBatch(const std::vector<IndexEvent>& batch) {
  std::string buf;
  buf.reserve(batch.size() * kRecordSize);
  for (const auto& e : batch) {
    const Record r = toRecord(e);
    buf.append(reinterpret_cast<const char*>(&r), sizeof r);
  }
  if (!writeAll(fd_, buf.data(), buf.size())) return false;
  size_ += buf.size();
  return true;
}

bool Journal::compact() {
  std::vector<std::uint32_t> gens;
  std::vector<std::pair<std::uint64_t, Location>> entries;
  source_(gens, entries);
  std::string error;
  if (!writeSnapshot(path_, geo_, gens, entries, error)) {
    onError_(error);
    return false;
  }
  const int fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) {
    onError_(errnoText("cannot reopen " + path_));
    return false;
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
  size_ = kHeaderSize + (gens.size() + entries.size()) * kRecordSize;
  compactedSize_ = size_;
  ++compactions_;
  return true;
}

}  // namespace granary::cache

#include "cache/chunk.h"

#include <xxhash.h>
#if defined(__x86_64__) && __has_include(<xxh_x86dispatch.h>)
#define GRANARY_XXH_DISPATCH 1
#define XXH_DISPATCH_DISABLE_REPLACE 1
#include <xxh_x86dispatch.h>
#endif

#include <atomic>
#include <cstdlib>
#include <new>
#include <utility>
#include <vector>

namespace granary::cache {
namespace {

constexpr std::uint32_t kMagic = 0x31435247;  // "GRC1"
constexpr std::size_t kHeaderSumOffset = 56;

template <class T>
T load(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class T>
void store(char* p, T v) {
  std::memcpy(p, &v, sizeof v);
}

void appendField(std::string& out, std::string_view s) {
  const auto n = static_cast<std::uint32_t>(s.size());
  out.append(reinterpret_cast<const char*>(&n), sizeof n);
  out.append(s);
}

std::uint64_t headerSum(const char* entry, std::string_view key) {
  // Seeded with the key's hash: covers header and key without a streaming state.
  return XXH3_64bits_withSeed(entry, kHeaderSumOffset, XXH3_64bits(key.data(), key.size()));
}

// Freed entry-sized buffers, kept by the thread that freed them for its next allocation of the same size.
// A fresh multi-MiB allocation is an mmap whose every page faults (and is zeroed) at its first write, and
// its free an munmap: a 4 MiB disk-tier hit paid ~1,000 page faults, 40% of its CPU in `perf`
// (bench/RESULTS.md). Bounded per thread (the oldest kept buffer goes first, so sizes that do not come
// back, such as objects' last chunks, cannot crowd out the ones that do) and across the process; off
// under AddressSanitizer, which must see each free.
#if defined(__SANITIZE_ADDRESS__)
#define GRANARY_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GRANARY_ASAN 1
#endif
#endif
#if defined(GRANARY_ASAN)
constexpr bool kRecycle = false;
#else
constexpr bool kRecycle = true;
#endif
constexpr std::size_t kRecycleMin = 128 * 1024;  // below glibc's mmap threshold: its arenas reuse these
constexpr std::size_t kRecycleMaxBytes = 48u << 20;      // per thread
constexpr std::size_t kRecycleMaxBuffers = 16;            // per thread
constexpr std::size_t kRecycleMaxTotal = 256u << 20;      // all threads together
std::atomic<std::size_t> recycledTotal{0};

thread_local bool recyclerGone = false;  // (trivial: still readable while the thread's destructors run)

struct Recycler {
  std::vector<std::pair<std::size_t, char*>> free;  // oldest first
  std::size_t bytes = 0;
  Recycler() { free.reserve(kRecycleMaxBuffers); }  // (keep() never allocates: it runs in destructors)
  ~Recycler() {
    recyclerGone = true;
    while (!free.empty()) dropOldest();
  }
  char* take(std::size_t size) {
    for (auto it = free.rbegin(); it != free.rend(); ++it) {
      if (it->first != size) continue;
      char* p = it->second;
      free.erase(std::next(it).base());
      bytes -= size;
      recycledTotal.fetch_sub(size, std::memory_order_relaxed);
      return p;
    }
    return nullptr;
  }
  bool keep(char* p, std::size_t size) {
    if (size > kRecycleMaxBytes) return false;
    while (!free.empty() && (bytes + size > kRecycleMaxBytes || free.size() >= kRecycleMaxBuffers)) dropOldest();
    if (recycledTotal.fetch_add(size, std::memory_order_relaxed) + size > kRecycleMaxTotal) {
      recycledTotal.fetch_sub(size, std::memory_order_relaxed);
      return false;
    }
    free.emplace_back(size, p);
    bytes += size;
    return true;
  }
  void dropOldest() {
    std::free(free.front().second);
    bytes -= free.front().first;
    recycledTotal.fetch_sub(free.front().first, std::memory_order_relaxed);
    free.erase(free.begin());
  }
};

Recycler* recycler(std::size_t size) {
  if (!kRecycle || size < kRecycleMin || recyclerGone) return nullptr;
  thread_local Recycler r;
  return &r;
}

char* allocBlocks(std::size_t size) {
  if (Recycler* r = recycler(size))
    if (char* p = r->take(size)) return p;
  return static_cast<char*>(std::aligned_alloc(kBlockSize, size ? size : kBlockSize));
}

void freeBlocks(char* p, std::size_t size) {
  if (!p) return;
  if (Recycler* r = recycler(size); r && r->keep(p, size)) return;
  std::free(p);
}

}  // namespace

bool buffersRecycled() { return kRecycle; }

std::size_t recycledBufferBytesForTest() {
  Recycler* r = recycler(kRecycleMin);
  return r ? r->bytes : 0;
}

std::size_t recycledBufferBytesTotal() { return recycledTotal.load(std::memory_order_relaxed); }

std::uint64_t hashBytes(const void* data, std::size_t size) { return XXH3_64bits(data, size); }

std::uint64_t valueSum(const void* data, std::size_t size) {
#if defined(GRANARY_XXH_DISPATCH)
  // The same XXH3-64 (the entry format does not change), by libxxhash's widest vector unit of this CPU
  // (AVX2 or AVX-512; the plain entry point is built for SSE2): a disk-tier hit checks every byte it serves.
  return XXH3_64bits_dispatch(data, size);
#else
  return XXH3_64bits(data, size);
#endif
}

std::string encodeKey(const ChunkKey& k) {
  std::string out;
  out.reserve(24 + k.backend.size() + k.bucket.size() + k.key.size() + k.etag.size());
  out.append("K1", 2);
  appendField(out, k.backend);
  appendField(out, k.bucket);
  appendField(out, k.key);
  appendField(out, k.etag);
  out.append(reinterpret_cast<const char*>(&k.index), sizeof k.index);
  return out;
}

AlignedBuffer::AlignedBuffer(std::size_t size) : size_(alignUp(size)) {
  data_ = allocBlocks(size_);
  if (!data_) throw std::bad_alloc();
}

AlignedBuffer& AlignedBuffer::operator=(AlignedBuffer&& o) noexcept {
  if (this != &o) {
    freeBlocks(data_, size_);
    data_ = o.data_;
    size_ = o.size_;
    o.data_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

AlignedBuffer::~AlignedBuffer() { freeBlocks(data_, size_); }

Chunk::Chunk(std::string_view encodedKey, std::uint64_t valueLen)
    : buf_(cache::entrySize(encodedKey.size(), valueLen)), keyLen_(encodedKey.size()), valueLen_(valueLen) {
  std::memset(buf_.data(), 0, kEntryHeaderSize);
  std::memcpy(buf_.data() + kEntryHeaderSize, encodedKey.data(), keyLen_);
  const std::size_t used = kEntryHeaderSize + keyLen_ + valueLen_;
  std::memset(buf_.data() + used, 0, buf_.size() - used);  // padding: deterministic bytes on disk
}

Chunk::Chunk(AlignedBuffer entry) : buf_(std::move(entry)) {}

void Chunk::seal(std::uint64_t sequence) {
  char* h = buf_.data();
  store<std::uint32_t>(h, kMagic);
  store<std::uint32_t>(h + 4, static_cast<std::uint32_t>(keyLen_));
  store<std::uint64_t>(h + 8, valueLen_);
  store<std::uint64_t>(h + 16, keyHash());
  store<std::uint64_t>(h + 24, valueSum(value(), valueLen_));
  store<std::uint64_t>(h + 32, sequence);
  std::memset(h + 40, 0, 16);
  store<std::uint64_t>(h + kHeaderSumOffset, headerSum(h, key()));
}

EntryStatus Chunk::verify(std::string_view expectedKey) {
  const char* h = buf_.data();
  if (buf_.size() < kEntryHeaderSize || load<std::uint32_t>(h) != kMagic) return EntryStatus::Corrupt;
  const std::uint32_t keyLen = load<std::uint32_t>(h + 4);
  const std::uint64_t valueLen = load<std::uint64_t>(h + 8);
  if (keyLen > buf_.size() || valueLen > buf_.size() || cache::entrySize(keyLen, valueLen) != buf_.size())
    return EntryStatus::Corrupt;
  keyLen_ = keyLen;
  valueLen_ = valueLen;
  if (load<std::uint64_t>(h + kHeaderSumOffset) != headerSum(h, key())) return EntryStatus::Corrupt;
  if (key() != expectedKey) return EntryStatus::KeyMismatch;
  if (load<std::uint64_t>(h + 24) != valueSum(value(), valueLen_)) return EntryStatus::Corrupt;
  return EntryStatus::Ok;
}

}  // namespace granary::cache

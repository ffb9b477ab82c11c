#pragma once
// A cached chunk as one self-describing entry: a 64-byte header, the full cache key, then the value,
// padded to 4 KiB. The same aligned buffer is filled from the backend, written to disk (O_DIRECT), kept in
// the RAM tier and streamed to clients, so a chunk is never copied on its way through.
//
// Entry layout (little-endian):
//   0  u32 magic "GRC1"    4  u32 key length      8  u64 value length
//   16 u64 key hash       24 u64 XXH3 of value    32 u64 sequence (writer's; informational)
//   40..56 reserved (0)   56 u64 XXH3 of bytes 0..56 and of the key
//   64 key bytes, then value bytes, then zero padding to a multiple of 4096.

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

namespace granary::cache {

inline constexpr std::size_t kBlockSize = 4096;
inline constexpr std::size_t kEntryHeaderSize = 64;
/// The chunk index of an object's metadata record (its key carries no ETag).
inline constexpr std::uint32_t kMetaIndex = 0xFFFFFFFFu;

constexpr std::uint64_t alignUp(std::uint64_t n) { return (n + kBlockSize - 1) & ~std::uint64_t{kBlockSize - 1}; }

/// XXH3-64 of a byte range.
std::uint64_t hashBytes(const void* data, std::size_t size);
inline std::uint64_t hashBytes(std::string_view s) { return hashBytes(s.data(), s.size()); }
/// The same hash as hashBytes, for large ranges (chunk values): on x86-64 by the CPU's widest vector unit.
std::uint64_t valueSum(const void* data, std::size_t size);

/// What identifies a chunk. The ETag (or version id) is part of it, so a changed object can never be
/// served from the old one's chunks.
struct ChunkKey {
  std::string backend;
  std::string bucket;
  std::string key;
  std::string etag;  // empty for a metadata record
  std::uint32_t index = 0;
};

/// An unambiguous byte form of a key (each field length-prefixed), stored with the entry and compared
/// in full on every hit.
std::string encodeKey(const ChunkKey& k);

/// Bytes of disk an entry for this key and value takes.
inline std::uint64_t entrySize(std::size_t keyLen, std::uint64_t valueLen) {
  return alignUp(kEntryHeaderSize + keyLen + valueLen);
}

/// A 4 KiB-aligned heap buffer (O_DIRECT needs aligned memory). Move-only. Buffers of 128 KiB and more are
/// recycled: a freed one is kept by the freeing thread (its newest 16, at most 48 MiB; 256 MiB across the
/// process) for its next allocation of the same size, so that chunk-sized buffers do not fault their pages
/// in on every hit and fill.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(std::size_t size);
  AlignedBuffer(AlignedBuffer&& o) noexcept : data_(o.data_), size_(o.size_) { o.data_ = nullptr, o.size_ = 0; }
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  ~AlignedBuffer();
  char* data() const { return data_; }
  std::size_t size() const { return size_; }
  explicit operator bool() const { return data_ != nullptr; }

 private:
  char* data_ = nullptr;
  std::size_t size_ = 0;
};

/// Whether freed buffers are recycled (not under AddressSanitizer, which must see every free).
bool buffersRecycled();
/// Bytes the calling thread keeps for reuse.
std::size_t recycledBufferBytesForTest();
/// Bytes all threads keep for reuse (outside the RAM tier's budget; granary_cache_recycled_buffer_bytes).
std::size_t recycledBufferBytesTotal();

enum class EntryStatus {
  Ok,
  KeyMismatch,  // a valid entry of another key (the slot was reused): a plain miss
  Corrupt,      // bad magic, lengths or checksums: drop the index entry and count it
};

class Chunk {
 public:
  /// An empty entry for `encodedKey` with room for `valueLen` bytes; fill value(), then seal().
  Chunk(std::string_view encodedKey, std::uint64_t valueLen);
  /// Takes an entry read from disk; call verify() before trusting it.
  explicit Chunk(AlignedBuffer entry);

  char* value() { return buf_.data() + kEntryHeaderSize + keyLen_; }
  const char* value() const { return buf_.data() + kEntryHeaderSize + keyLen_; }
  std::uint64_t valueSize() const { return valueLen_; }
  std::string_view key() const { return {buf_.data() + kEntryHeaderSize, keyLen_}; }
  std::uint64_t keyHash() const { return hashBytes(key()); }

  /// Computes the checksums into the header: the entry is then ready for disk.
  void seal(std::uint64_t sequence = 0);
  /// Checks an entry read from disk: header, key (against `expectedKey`), value checksum.
  EntryStatus verify(std::string_view expectedKey);

  const char* entryData() const { return buf_.data(); }
  std::size_t entrySize() const { return buf_.size(); }

 private:
  AlignedBuffer buf_;
  std::size_t keyLen_ = 0;
  std::uint64_t valueLen_ = 0;
};
using ChunkPtr = std::shared_ptr<Chunk>;
using ConstChunkPtr = std::shared_ptr<const Chunk>;

}  // namespace granary::cache

// Fuzz target: the on-disk form of cached object metadata (src/cache/object_meta.h) as the cache reads it
// back (chunk_cache.cpp lookupMeta): the disk entry is checked first (cache::Chunk::verify: header, key,
// checksums; src/cache/chunk.h), then its value is decoded by parseMeta.
//
// Input: u8 mode, then bytes.
//   mode & 1 == 0: the bytes are an ObjectMeta value: sealed into a valid entry under a fixed key (as
//                  storeMeta writes it), read back through verify(), then parsed.
//   mode & 1 == 1: the bytes are a raw disk entry (padded to 4 KiB blocks), verified against the key it
//                  names (mode & 2: against a fixed key instead), and its value parsed when it verifies.
// Properties: a value that parses re-serializes to the same bytes; serialize -> parse round-trips.

#include <cstring>
#include <string>

#include "cache/chunk.h"
#include "cache/object_meta.h"
#include "fuzz_common.h"

using namespace granary::cache;
using granary::fuzz::Input;

namespace {

void checkParsed(std::string_view value) {
  const auto meta = parseMeta(value);
  if (!meta) return;
  FUZZ_CHECK(!meta->fromDisk);
  FUZZ_CHECK(serializeMeta(*meta) == value, "a parsed value re-serializes to its own bytes");
  const auto again = parseMeta(serializeMeta(*meta));
  FUZZ_CHECK(again && again->size == meta->size && again->etag == meta->etag && again->headers == meta->headers &&
             again->validatedAtMs == meta->validatedAtMs);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > (1u << 20)) return 0;
  Input in(data, size);
  const std::uint8_t mode = in.u8();
  const std::string_view bytes = in.rest();
  const std::string fixedKey = encodeKey({"default", "bucket", "some/key", "", kMetaIndex});

  if ((mode & 1) == 0) {
    // As storeMeta writes it, then as lookupMeta reads it.
    Chunk written(fixedKey, bytes.size());
    if (!bytes.empty()) std::memcpy(written.value(), bytes.data(), bytes.size());
    written.seal(mode);
    AlignedBuffer copy(written.entrySize());
    std::memcpy(copy.data(), written.entryData(), written.entrySize());
    Chunk read(std::move(copy));
    FUZZ_CHECK(read.verify(fixedKey) == EntryStatus::Ok, "a sealed entry verifies");
    FUZZ_CHECK(read.valueSize() == bytes.size() && std::memcmp(read.value(), bytes.data(), bytes.size()) == 0);
    checkParsed(std::string_view(read.value(), read.valueSize()));
    checkParsed(bytes);
    return 0;
  }

  // A raw entry, as a disk read returns it: whole 4 KiB blocks.
  AlignedBuffer buf(bytes.size());
  if (buf.size() > 0) {
    std::memset(buf.data(), 0, buf.size());
    std::memcpy(buf.data(), bytes.data(), bytes.size());
  }
  // The key the entry names, when its header says where it is (else the fixed key).
  std::string expected = fixedKey;
  if (!(mode & 2) && bytes.size() >= kEntryHeaderSize) {
    std::uint32_t keyLen = 0;
    std::memcpy(&keyLen, bytes.data() + 4, sizeof keyLen);
    if (keyLen <= bytes.size() - kEntryHeaderSize) expected.assign(bytes.substr(kEntryHeaderSize, keyLen));
  }
  Chunk entry(std::move(buf));
  const EntryStatus st = entry.verify(expected);
  if (st == EntryStatus::Ok) {
    FUZZ_CHECK(entry.key() == expected);
    FUZZ_CHECK(kEntryHeaderSize + entry.key().size() + entry.valueSize() <= entry.entrySize(), "value inside the entry");
    checkParsed(std::string_view(entry.value(), entry.valueSize()));
  } else if (st == EntryStatus::KeyMismatch) {
    FUZZ_CHECK(entry.key() != expected);
  }
  return 0;
}

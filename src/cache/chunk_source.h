#pragma once
// Where the bytes of a chunk the cache lacks come from. The cache owns the fill (one downloader per
// chunk, its state machine, length checks, insertion, counters); a ChunkSource only fetches: given the
// object and the chunk, it writes the chunk's bytes into the sink the cache hands it and says how that
// went. The backend is the first source (s3api/backend_chunk_source.h); a peer cache would be a second.
// No upstream or HTTP types here.

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <memory>
#include <string>

#include "cache/fill.h"

namespace granary::cache {

/// One version of an object as the cache knows it: where it lives, which version (ETag, size, version
/// id) and how it is cut. Chunk and metadata keys are built from it here, never by callers.
struct ObjectId {
  std::string backend;    // the backend's id
  std::string bucket;     // its name at the backend
  std::string key;
  std::string versionId;  // a versioned read: every key includes it
  std::string etag;       // empty until the metadata is known
  std::uint64_t size = 0;
  std::uint64_t chunkSize = 0;

  std::uint32_t chunkCount() const { return static_cast<std::uint32_t>((size + chunkSize - 1) / chunkSize); }
  std::uint64_t chunkOffset(std::uint32_t index) const { return std::uint64_t{index} * chunkSize; }
  /// What the object's size implies for chunk `index`'s length.
  std::uint64_t chunkLength(std::uint32_t index) const;
  /// The cache key of chunk `index`. Its ETag and its size are both part of it: bytes of another
  /// version, even one a backend reports under the same ETag with another size (s3rver's non-atomic
  /// overwrite), can never be found for this one.
  std::string chunkKey(std::uint32_t index) const;
  /// The key of the object's metadata record (of this version id, if any; no ETag).
  std::string metaKey() const;
};

/// What to fetch: one chunk of one object version.
struct ChunkRequest {
  const ObjectId& object;
  std::uint32_t index = 0;
  std::uint64_t offset = 0;  // of the chunk's first byte in the object
  std::uint64_t length = 0;  // the chunk's length (what the object's size implies)
};

/// The buffer a source writes into: a fill's chunk. Bytes below the written mark are visible to readers
/// (on any thread) and must not change; bytes above it may be scratch.
class ChunkSink {
 public:
  explicit ChunkSink(Fill& fill) : fill_(fill) {}
  /// The chunk's bytes: room for size() bytes.
  char* data() { return fill_.chunk().value(); }
  std::uint64_t size() const { return fill_.chunk().valueSize(); }
  /// `n` more bytes are in place after those already written: readers may stream them now.
  void advance(std::size_t n) { fill_.advance(n); }
  std::uint64_t written() const { return fill_.ready(); }

  /// Provenance, for the cache's counters and admission. `n` of the bytes written came from a peer cache
  /// (not from the backend).
  void notePeerBytes(std::uint64_t n) { peerBytes_ += n; }
  std::uint64_t peerBytes() const { return peerBytes_; }
  /// The chunk is another node's to keep (this node is neither its owner nor its second choice): it goes
  /// to disk only once the admission sketch has seen it before, so a chunk read once on its way through
  /// never pushes out the chunks this node owns, while one read again and again stays near its readers.
  void markBorrowed() { borrowed_ = true; }
  bool borrowed() const { return borrowed_; }

 private:
  Fill& fill_;
  std::uint64_t peerBytes_ = 0;
  bool borrowed_ = false;
};

/// How a fetch ended.
enum class FetchOutcome : std::uint8_t {
  Ok,              // every byte of the chunk is in the sink
  Changed,         // the object is not this version any more at the source: its metadata must go
  LengthMismatch,  // the source holds another length for it (same ETag, other size): metadata must go
  Failed,          // no answer, an error, a short body: nothing learnt about the object
};

class ChunkSource {
 public:
  virtual ~ChunkSource() = default;
  /// Writes chunk `req.index` of `req.object` into `sink`, advancing it as bytes arrive. Runs on the
  /// cache thread's executor; the source must stay valid until it returns (the cache holds it).
  /// @return Ok only with sink.written() == req.length; Changed, LengthMismatch or Failed otherwise.
  virtual boost::asio::awaitable<FetchOutcome> fetch(const ChunkRequest& req, ChunkSink& sink) = 0;
};
using ChunkSourcePtr = std::shared_ptr<ChunkSource>;

}  // namespace granary::cache

#pragma once
// The write-back spool: objects (and deletes) acknowledged to clients before the backend has them.
// Each pending PUT is one data file in the spool directory; a journal of JSON lines records every
// operation once its data is durable (fsync of the data, then of the journal record) and every upload
// that finished. Replayed at start, so nothing acknowledged is lost to kill -9. The uploader (in s3api,
// which owns the backends) takes operations in order; a later write or delete of a key supersedes what
// is still pending for it.
//
// Blocking file work (fsync, journal appends, unlinks) runs on the spool's own thread, never on an I/O
// thread: callers' coroutines hop there and back.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace granary::cache {

struct PendingWrite {
  std::uint64_t seq = 0;
  bool isDelete = false;
  /// A write that went to the backend directly (a copy, a multipart upload, a PUT past capacity): it
  /// supersedes what is pending for its key and has nothing to upload itself.
  bool passThrough = false;
  std::uint32_t backend = 0;  // the backend's index (the caller's numbering)
  std::string bucket;         // at the backend
  std::string key;
  std::uint64_t size = 0;
  std::string etag;  // quoted, as the backend will assign it
  std::vector<std::pair<std::string, std::string>> headers;  // lower-case: content-type, x-amz-meta-*...
  std::int64_t createdMs = 0;
};
using PendingPtr = std::shared_ptr<const PendingWrite>;

struct WriteBackOptions {
  std::string dir;
  std::uint64_t capacity = 0;  // bytes of pending data; past it writes fall back to write-through
};

class WriteBackSpool {
 public:
  /// Opens (creating) the directory and replays its journal. Throws std::runtime_error when the
  /// directory cannot be used.
  explicit WriteBackSpool(WriteBackOptions opts);
  ~WriteBackSpool();
  WriteBackSpool(const WriteBackSpool&) = delete;
  WriteBackSpool& operator=(const WriteBackSpool&) = delete;

  /// A sequence number and `size` bytes of room for a new operation; nullopt when the spool is full
  /// (never for size 0).
  std::optional<std::uint64_t> reserve(std::uint64_t size);
  /// Gives back a reservation that will not be committed (the client's body failed its checks...).
  void release(std::uint64_t seq, std::uint64_t size);
  /// Where the data of operation `seq` is written.
  std::string dataPath(std::uint64_t seq) const;

  /// Makes `w` durable (its data file, then its journal record, both fsynced) and visible: from then on
  /// find() returns it. @return false if it could not be made durable (not visible).
  boost::asio::awaitable<bool> commit(PendingWrite w);

  /// The newest pending operation on a key, if any.
  PendingPtr find(std::uint32_t backend, const std::string& bucket, const std::string& key) const;
  /// The newest pending operation of every key under `prefix` of a bucket, in key order.
  std::vector<PendingPtr> list(std::uint32_t backend, const std::string& bucket, const std::string& prefix) const;

  /// The oldest operation still to upload (superseded ones are skipped and dropped); null when idle.
  /// It counts as uploading until complete() or failed().
  PendingPtr next();
  /// The upload of next()'s operation failed; it stays first in line.
  void failed(const PendingPtr& w);
  /// Whether an operation on this key is being uploaded right now.
  bool uploading(std::uint32_t backend, const std::string& bucket, const std::string& key) const;
  /// Opens operation `seq`'s data file on the spool's thread (O_CREAT|O_TRUNC when writing).
  /// @return the descriptor, or -1.
  boost::asio::awaitable<int> openData(std::uint64_t seq, bool write);
  /// The backend has `w`: records it, drops its data, and forgets it unless a newer operation on the key
  /// replaced it meanwhile.
  boost::asio::awaitable<void> complete(PendingPtr w);

  std::uint64_t pendingObjects() const;
  std::uint64_t pendingBytes() const;
  std::uint64_t capacity() const { return opts_.capacity; }
  const std::string& dir() const { return opts_.dir; }

 private:
  using Key = std::tuple<std::uint32_t, std::string, std::string>;
  void replay();
  void appendRecord(const std::string& line);  // on the spool thread
  boost::asio::awaitable<bool> makeDurable(PendingPtr p);   // on the spool thread
  boost::asio::awaitable<void> recordDone(PendingPtr w);    // on the spool thread
  static boost::asio::awaitable<int> openOnThread(std::string path, bool write);

  WriteBackOptions opts_;
  int journalFd_ = -1;
  boost::asio::thread_pool thread_{1};
  mutable std::mutex mu_;
  std::map<std::uint64_t, PendingPtr> queue_;  // by seq: what the uploader has still to do
  std::map<Key, PendingPtr> latest_;           // the newest operation per key
  PendingPtr uploading_;
  std::uint64_t nextSeq_ = 1;
  std::uint64_t reservedBytes_ = 0;  // committed and in-flight data
};

}  // namespace granary::cache

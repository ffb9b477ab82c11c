#pragma once
// The write-back spool: objects (and deletes) acknowledged to clients before the backend has them.
// Each pending PUT is one data file in the spool directory; a journal of JSON lines records every
// operation once its data is durable (fsync of the data, then of the journal record) and every upload
// that finished. Replayed at start, so nothing acknowledged is lost to kill -9. The uploader (in s3api,
// which owns the backends: s3api::WriteBackService) takes operations in order, several keys at once but
// one operation of a key at a time; a later write or delete of a key supersedes what is still pending
// for it.
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
#include <tuple>
#include <utility>
#include <vector>

namespace granary::cache {

/// One part of a multipart upload spooled by Granary: its own data file (numbered `seq`).
struct SpooledPart {
  std::uint32_t number = 0;
  std::uint64_t seq = 0;
  std::uint64_t size = 0;
  std::string etag;  // quoted MD5 of the part
  std::int64_t createdMs = 0;
};

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
  /// A multipart object: its data is these parts' files, in this order (`seq` has no data file then).
  std::vector<SpooledPart> parts;
};
using PendingPtr = std::shared_ptr<const PendingWrite>;

/// A multipart upload into a write-back bucket, open (parts still coming). Its parts are durable once
/// acknowledged; Complete turns it into one pending PUT, Abort drops it.
struct SpoolUpload {
  std::string id;
  std::uint32_t backend = 0;
  std::string bucket;  // at the backend
  std::string key;
  std::vector<std::pair<std::string, std::string>> headers;  // of the object, as for a PUT
  std::int64_t createdMs = 0;
  std::map<std::uint32_t, SpooledPart> parts;
};
using UploadPtr = std::shared_ptr<const SpoolUpload>;

struct WriteBackOptions {
  std::string dir;
  std::uint64_t capacity = 0;  // bytes of pending data; past it writes fall back to write-through
  /// The journal is rewritten as just the live records once it holds this many records and four times
  /// as many as are live (it grows by two records an operation otherwise).
  std::uint64_t compactAfter = 10'000;
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

  /// The oldest operation still to upload whose key has no upload in progress (superseded ones are
  /// skipped and dropped); null when there is none. It counts as uploading until complete() or failed(),
  /// so that two operations of one key never travel at once (a key's order is kept).
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

  // Multipart uploads (each step journaled before it is acknowledged).
  /// Records a new upload (its id chosen by the caller). @return false if it could not be made durable.
  boost::asio::awaitable<bool> beginUpload(SpoolUpload u);
  /// The open upload `id`, or null.
  UploadPtr findUpload(const std::string& id) const;
  /// The open uploads of a bucket whose keys start with `prefix`, by key then creation.
  std::vector<UploadPtr> uploads(std::uint32_t backend, const std::string& bucket, const std::string& prefix) const;
  /// Makes part `p` of upload `id` durable (its data written to dataPath(p.seq), space reserved) and
  /// visible; a part of the same number is replaced. @return false (and the part's space released) if it
  /// could not be made durable or the upload is gone.
  boost::asio::awaitable<bool> addPart(std::string id, SpooledPart p);
  /// Ends upload `id` as the pending write `w` (w.parts: the parts Complete named, taken from the upload);
  /// the parts it does not name are dropped. @return false if it could not be made durable.
  boost::asio::awaitable<bool> completeUpload(std::string id, PendingWrite w);
  /// Drops upload `id` and its parts. @return false if there is no such upload.
  boost::asio::awaitable<bool> abortUpload(std::string id);

  std::uint64_t pendingObjects() const;
  std::uint64_t pendingBytes() const;
  std::uint64_t openUploads() const;
  /// Records in the journal file now (tests and metrics).
  std::uint64_t journalRecords() const { return journalRecords_.load(); }
  /// Bytes reserved: pending writes, parts of open uploads, writes in progress.
  std::uint64_t usedBytes() const;
  std::uint64_t capacity() const { return opts_.capacity; }
  const std::string& dir() const { return opts_.dir; }

 private:
  using Key = std::tuple<std::uint32_t, std::string, std::string>;
  void replay();
  void appendRecord(const std::string& line);  // on the spool thread
  /// Writes `records` as the new journal (aside, fsynced, renamed over) and returns its descriptor,
  /// open for appending; -1 on failure (errno set, the old journal left in place).
  int writeJournal(const std::string& records) const;
  /// The live state as journal records (lock held); `count`: how many.
  std::string snapshotLocked(std::uint64_t& count) const;
  /// A mutation (journal record + in-memory change) starts / has ended; compaction waits for none.
  void beginMutation();
  void endMutation();
  void compactOnThread();
  boost::asio::awaitable<bool> makeDurable(PendingPtr p);   // on the spool thread
  boost::asio::awaitable<void> recordDone(PendingPtr w);    // on the spool thread
  boost::asio::awaitable<bool> appendOnThread(std::string line, std::uint64_t syncSeq);  // on the spool thread
  /// Frees the space and the data file of a part no longer wanted (lock held).
  void dropPartLocked(const SpooledPart& p);
  static boost::asio::awaitable<int> openOnThread(std::string path, bool write);

  WriteBackOptions opts_;
  int journalFd_ = -1;
  boost::asio::thread_pool thread_{1};
  mutable std::mutex mu_;
  std::map<std::uint64_t, PendingPtr> queue_;  // by seq: what the uploader has still to do
  std::map<Key, PendingPtr> latest_;           // the newest operation per key
  std::map<Key, PendingPtr> uploading_;        // the operations next() handed out, by key
  std::map<std::string, UploadPtr> uploads_;  // open multipart uploads by id
  std::uint64_t nextSeq_ = 1;
  std::uint64_t reservedBytes_ = 0;  // committed and in-flight data
  std::uint64_t inFlight_ = 0;       // mutations whose record may be written but not yet applied
  bool compactQueued_ = false;
  std::atomic<std::uint64_t> journalRecords_{0};
};

}  // namespace granary::cache

#pragma once
// Write-back as a service: the spool's front end (store a client's body, commit a PUT or a DELETE, note a
// write that went to the backend directly, multipart uploads held in the spool) and its uploader, which
// sends pending operations to the backends in the background. One instance per process, owned by main
// and shared by every handler thread.
//
// The uploader runs on the service's own thread with its own backend connections. It sends up to
// `uploadConcurrency` operations at once, never two of one key (cache::WriteBackSpool::next hands out a
// key's next operation only once its last one has landed, so a key's writes and deletes reach the
// backend in the order they were acknowledged). It sleeps until work arrives or a retry is due; requests
// that wait for a key's upload wait on that state too (StateSignal), never on a timer tick.
//
// Shutdown: stop() closes the gate (new work is refused from then on), waits for the front-end calls
// already inside and for the uploads in flight to end (each lands, or fails and stays pending), then
// closes the backend connections and joins the thread. What was acknowledged is in the spool's journal
// either way: an operation not yet uploaded is uploaded after the next start.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cache/chunk_cache.h"
#include "cache/writeback.h"
#include "common/buffer_pool.h"
#include "common/sigv4.h"
#include "s3api/bucket_map.h"
#include "s3api/result.h"
#include "s3api/state_signal.h"
#include "upstream/upstream.h"

namespace granary::s3api {

struct WriteBackServiceOptions {
  /// Operations uploaded at once ([cache] writeback_upload_concurrency), at least 1.
  std::size_t uploadConcurrency = 4;
  std::chrono::milliseconds retryFirst{200};   // the wait after a first failed upload, doubled per failure
  std::chrono::milliseconds retryMax{30'000};  // the longest wait between retries ([cache] writeback_retry_max)
  /// The longest a request waits for a key's upload (supersede(), waitUploaded()).
  std::chrono::milliseconds waitLimit{60'000};
  /// Once an operation reached its backend the cache drops what it holds for the key (it predates the
  /// write): its metadata key is made with `buckets`' backend ids. Null: no cache.
  cache::ChunkCache* cache = nullptr;
  std::shared_ptr<const BucketMap> buckets;
};

/// A key at a backend, as the spool names it.
struct SpoolKey {
  std::uint32_t backend = 0;
  std::string bucket;  // at the backend
  std::string key;
};

/// A client's body written to the spool, room reserved: not visible until committed.
struct SpooledData {
  std::uint64_t seq = 0;
  std::uint64_t size = 0;
  std::string etag;  // quoted MD5 of the bytes
};

class WriteBackService {
 public:
  using Upstreams = std::vector<std::unique_ptr<upstream::Upstream>>;
  /// Builds one upstream per backend (index = the spool's backend number) on the given executor.
  using UpstreamFactory = std::function<Upstreams(boost::asio::any_io_executor)>;
  using Clock = std::chrono::steady_clock;

  WriteBackService(std::shared_ptr<cache::WriteBackSpool> spool, WriteBackServiceOptions opts);
  /// Stops the service if it is still running.
  ~WriteBackService();
  WriteBackService(const WriteBackService&) = delete;
  WriteBackService& operator=(const WriteBackService&) = delete;

  // Lifecycle (main's thread).
  /// Starts the uploader on the service's own thread, with the upstreams `makeUpstreams` builds there.
  void start(const UpstreamFactory& makeUpstreams);
  /// Closes the gate and waits (blocking) for in-flight front-end calls and uploads to end; then closes
  /// the backend connections and joins the thread. Idempotent.
  void stop();
  /// New credentials for backend `backend` (SIGHUP), applied on the service's thread.
  void setBackendCredentials(std::size_t backend, sigv4::Credentials creds);
  /// False once stop() has begun: new work is refused.
  bool accepting() const { return !stopping_.load(); }

  // Front end (any thread; coroutines run on the caller's executor).
  /// Reserves `size` bytes and writes `body` there (exactly `size` bytes), hashing it.
  /// @return the data (to commit() or discard()); nullopt, with nothing read, when there is no room, the
  ///         data file cannot be created or the service is stopping (the caller writes through, or
  ///         answers SlowDown); IncompleteBody when the body failed or was
  ///         short (the caller may know the body's own error); InternalError when the spool could not
  ///         write.
  boost::asio::awaitable<S3Result<std::optional<SpooledData>>> storeData(upstream::BodySource& body, std::uint64_t size,
                                                                        BufferPool& buffers);
  /// Gives back data stored but not committed.
  void discard(const SpooledData& d);
  /// Makes a PUT (w.seq: its stored data's) or a DELETE (w.isDelete; w.seq 0: numbered here) durable and
  /// visible, and wakes the uploader. @return InternalError when it could not be made durable,
  /// ServiceUnavailable when stopping (a PUT's data is given back then).
  boost::asio::awaitable<S3Result<void>> commit(cache::PendingWrite w);
  /// A write of `k` is about to go to the backend directly (a copy, a write-through PUT, a multipart
  /// upload): what is pending for the key is superseded (journaled, so never uploaded after it), and an
  /// upload of the key already on its way is waited for (up to waitLimit) so that it lands first.
  /// Recorded even while stopping: it keeps an older pending write from landing over the new one.
  boost::asio::awaitable<void> supersede(SpoolKey k, std::int64_t nowMs);
  /// Waits until nothing is pending for `k` but a pass-through (the backend has what clients saw).
  /// @return false if that did not happen within waitLimit.
  boost::asio::awaitable<bool> waitUploaded(SpoolKey k);

  // Multipart uploads held in the spool (each step durable before it is acknowledged).
  /// @return InternalError when it could not be recorded, ServiceUnavailable when stopping.
  boost::asio::awaitable<S3Result<void>> beginUpload(cache::SpoolUpload u);
  /// Adds part `p` (its data stored by storeData) to upload `id`. @return NoSuchUpload when the upload is
  /// gone, InternalError when the part could not be made durable (its data is given back either way).
  boost::asio::awaitable<S3Result<void>> addPart(std::string id, cache::SpooledPart p);
  /// Ends upload `id` as the pending write `w` and wakes the uploader. @return NoSuchUpload when the upload
  /// is gone, InternalError when it could not be made durable, ServiceUnavailable when stopping.
  boost::asio::awaitable<S3Result<void>> completeUpload(std::string id, cache::PendingWrite w);
  /// Drops upload `id`. @return NoSuchUpload when there is no such upload.
  boost::asio::awaitable<S3Result<void>> abortUpload(std::string id);

  // What clients see of the spool (reads, listings, metrics).
  cache::PendingPtr find(std::uint32_t backend, const std::string& bucket, const std::string& key) const {
    return spool_->find(backend, bucket, key);
  }
  std::vector<cache::PendingPtr> list(std::uint32_t backend, const std::string& bucket, const std::string& prefix) const {
    return spool_->list(backend, bucket, prefix);
  }
  cache::UploadPtr findUpload(const std::string& id) const { return spool_->findUpload(id); }
  std::vector<cache::UploadPtr> uploads(std::uint32_t backend, const std::string& bucket, const std::string& prefix) const {
    return spool_->uploads(backend, bucket, prefix);
  }
  std::uint64_t pendingObjects() const { return spool_->pendingObjects(); }
  /// The spool itself (data files of pending objects, for serving them).
  cache::WriteBackSpool& spool() const { return *spool_; }
  const std::shared_ptr<cache::WriteBackSpool>& spoolPtr() const { return spool_; }

  /// Waits until nothing is pending nor uploading, or `deadline`. @return whether it became idle.
  boost::asio::awaitable<bool> waitIdle(Clock::time_point deadline);
  /// Uploads in flight right now (tests, metrics).
  std::size_t uploadsInFlight() const { return inFlight_.load(); }

 private:
  /// Counts a front-end call in (false: the gate is closed) and out.
  bool enter();
  void leave();
  boost::asio::awaitable<void> run();  // the uploader's scheduler, on the service's thread
  boost::asio::awaitable<void> uploadOne(cache::PendingPtr p);
  void uploadEnded(bool ok);
  // The backend side (writeback_upload.cpp), on the service's thread.
  boost::asio::awaitable<bool> upload(const cache::PendingWrite& w);
  boost::asio::awaitable<std::optional<std::string>> sendSpoolFile(upstream::Upstream& up, upstream::UpstreamRequest& r,
                                                                   std::uint64_t seq, std::uint64_t size);
  boost::asio::awaitable<bool> uploadMultipart(upstream::Upstream& up, const cache::PendingWrite& w);
  boost::asio::awaitable<std::string> createMultipart(upstream::Upstream& up, const cache::PendingWrite& w);
  boost::asio::awaitable<bool> completeMultipart(upstream::Upstream& up, const cache::PendingWrite& w,
                                                 const std::string& uploadId, std::string body);
  boost::asio::awaitable<void> abortMultipart(upstream::Upstream& up, const cache::PendingWrite& w,
                                              const std::string& uploadId);
  /// Copies `body` into data file `fd` (closed after), hashing it. @return S3Result as storeData's.
  boost::asio::awaitable<S3Result<std::uint64_t>> writeData(upstream::BodySource& body, int fd, std::string& md5Hex,
                                                           BufferPool& buffers);

  std::shared_ptr<cache::WriteBackSpool> spool_;
  WriteBackServiceOptions opts_;
  StateSignal signal_;  // notified whenever the spool's pending or uploading state, or the gate, changes
  std::atomic<bool> stopping_{false};
  std::atomic<std::size_t> entered_{0};   // front-end calls inside the gate
  std::atomic<std::size_t> inFlight_{0};  // uploads started and not ended
  // The service's thread and what only it touches.
  std::unique_ptr<boost::asio::io_context> ioc_;
  std::thread thread_;
  Upstreams upstreams_;
  Clock::time_point pausedUntil_{};  // after a failure: no new upload starts before this
  std::chrono::milliseconds backoff_{0};
  std::uint64_t failures_ = 0;       // failed attempts since the last upload that landed
};

}  // namespace granary::s3api

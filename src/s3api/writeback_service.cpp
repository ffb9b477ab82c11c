// The write-back service's front end, gate and upload scheduler (writeback_upload.cpp: the backend side).

#include "s3api/writeback_service.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_future.hpp>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>

#include "common/log_escape.h"
#include "s3api/exchange.h"

namespace granary::s3api {
namespace {

namespace asio = boost::asio;

/// Leaves the gate on every return path of a coroutine.
struct GateExit {
  std::function<void()> leave;
  ~GateExit() { leave(); }
};

// (Failures are made here and named in the coroutines: GCC 12 mishandles braced temporaries there.)
S3Failure stoppingFailure() { return S3Failure{S3Error::ServiceUnavailable, "Granary is shutting down.", {}}; }
S3Failure internalError(const char* message) { return S3Failure{S3Error::InternalError, message, {}}; }
S3Failure noSuchUpload(const std::string& id) { return S3Failure{S3Error::NoSuchUpload, {}, {{"UploadId", id}}}; }

}  // namespace

WriteBackService::WriteBackService(std::shared_ptr<cache::WriteBackSpool> spool, WriteBackServiceOptions opts)
    : spool_(std::move(spool)), opts_(std::move(opts)) {
  if (opts_.uploadConcurrency == 0) opts_.uploadConcurrency = 1;
  backoff_ = opts_.retryFirst;
}

WriteBackService::~WriteBackService() { stop(); }

void WriteBackService::start(const UpstreamFactory& makeUpstreams) {
  if (ioc_) return;
  ioc_ = std::make_unique<asio::io_context>(1);
  upstreams_ = makeUpstreams(ioc_->get_executor());
  asio::co_spawn(*ioc_, run(), asio::detached);
  thread_ = std::thread([this] {
    for (;;) {
      try {
        ioc_->run();
        break;
      } catch (const std::exception& e) {
        spdlog::error("write-back thread caught: {}", e.what());
      }
    }
  });
}

void WriteBackService::stop() {
  stopping_ = true;
  signal_.notify();  // the scheduler sees the gate closed and winds down
  if (thread_.joinable()) thread_.join();
  upstreams_.clear();  // (their sockets belong to ioc_, which outlives them)
  ioc_.reset();
}

void WriteBackService::setBackendCredentials(std::size_t backend, sigv4::Credentials creds) {
  if (!ioc_) return;
  asio::post(*ioc_, [this, backend, creds = std::move(creds)]() mutable {
    if (backend < upstreams_.size()) upstreams_[backend]->setCredentials(std::move(creds));
  });
}

bool WriteBackService::enter() {
  ++entered_;
  if (!stopping_) return true;
  leave();
  return false;
}

void WriteBackService::leave() {
  if (--entered_ == 0 && stopping_) signal_.notify();
}

// ---- front end ----

asio::awaitable<S3Result<std::optional<SpooledData>>> WriteBackService::storeData(upstream::BodySource& body,
                                                                                 std::uint64_t size,
                                                                                 BufferPool& buffers) {
  S3Result<std::optional<SpooledData>> result = std::optional<SpooledData>();  // (one named result: GCC 12)
  if (!enter()) co_return result;
  GateExit gate{[this] { leave(); }};
  const auto seq = spool_->reserve(size);
  if (!seq) co_return result;  // full: the caller says what happens instead
  const int fd = co_await spool_->openData(*seq, true);
  if (fd < 0) {
    spdlog::error("write-back: cannot create {}: {}", spool_->dataPath(*seq), std::strerror(errno));
    spool_->release(*seq, size);
    co_return result;  // (as good as full: the caller writes through or says SlowDown)
  }
  SpooledData d{*seq, size, {}};
  const S3Result<std::uint64_t> written = co_await writeData(body, fd, d.etag, buffers);
  if (!written || *written != size) {
    spool_->release(*seq, size);
    if (written) result = S3Failure{S3Error::IncompleteBody, {}, {}};
    else result = written.error();
    co_return result;
  }
  d.etag = "\"" + d.etag + "\"";
  result = std::optional<SpooledData>(std::move(d));
  co_return result;
}

void WriteBackService::discard(const SpooledData& d) { spool_->release(d.seq, d.size); }

asio::awaitable<S3Result<void>> WriteBackService::commit(cache::PendingWrite w) {
  if (!enter()) {
    if (w.seq != 0 && !w.isDelete) spool_->release(w.seq, w.size);
    const S3Result<void> refused = stoppingFailure();
    co_return refused;
  }
  GateExit gate{[this] { leave(); }};
  if (w.seq == 0) w.seq = *spool_->reserve(0);
  const bool isDelete = w.isDelete;
  const bool durable = co_await spool_->commit(std::move(w));  // (gives the room back when it fails)
  signal_.notify();
  S3Result<void> result;
  if (!durable)
    result = internalError(isDelete ? "The write-back spool could not record the delete."
                                    : "The write-back spool could not make the object durable.");
  co_return result;
}

asio::awaitable<void> WriteBackService::supersede(SpoolKey k, std::int64_t nowMs) {
  if (auto p = spool_->find(k.backend, k.bucket, k.key); p && !p->passThrough) {
    cache::PendingWrite w;
    w.seq = *spool_->reserve(0);
    w.passThrough = true;
    w.backend = k.backend;
    w.bucket = k.bucket;
    w.key = k.key;
    w.createdMs = nowMs;
    co_await spool_->commit(std::move(w));
    signal_.notify();
  }
  // An upload of the key already on its way must land before this write does.
  const auto landed = [&] { return !spool_->uploading(k.backend, k.bucket, k.key); };
  const auto deadline = Clock::now() + opts_.waitLimit;  // (named: GCC 12 coroutines)
  co_await signal_.waitUntil(landed, deadline);
}

asio::awaitable<bool> WriteBackService::waitUploaded(SpoolKey k) {
  const auto uploaded = [&] {
    const auto p = spool_->find(k.backend, k.bucket, k.key);
    return !p || p->passThrough;
  };
  const auto deadline = Clock::now() + opts_.waitLimit;  // (named: GCC 12 coroutines)
  co_return co_await signal_.waitUntil(uploaded, deadline);
}

asio::awaitable<S3Result<void>> WriteBackService::beginUpload(cache::SpoolUpload u) {
  S3Result<void> result = stoppingFailure();
  if (!enter()) co_return result;
  result = S3Result<void>();
  GateExit gate{[this] { leave(); }};
  if (!co_await spool_->beginUpload(std::move(u))) result = internalError("The write-back spool could not record the upload.");
  co_return result;
}

asio::awaitable<S3Result<void>> WriteBackService::addPart(std::string id, cache::SpooledPart p) {
  if (!enter()) {
    spool_->release(p.seq, p.size);
    const S3Result<void> refused = stoppingFailure();
    co_return refused;
  }
  GateExit gate{[this] { leave(); }};
  S3Result<void> result;
  if (co_await spool_->addPart(id, std::move(p))) co_return result;
  if (spool_->findUpload(id)) result = internalError("The write-back spool could not make the part durable.");
  else result = noSuchUpload(id);
  co_return result;
}

asio::awaitable<S3Result<void>> WriteBackService::completeUpload(std::string id, cache::PendingWrite w) {
  if (!enter()) {
    const S3Result<void> refused = stoppingFailure();
    co_return refused;
  }
  GateExit gate{[this] { leave(); }};
  if (w.seq == 0) w.seq = *spool_->reserve(0);
  const bool done = co_await spool_->completeUpload(id, std::move(w));
  signal_.notify();
  S3Result<void> result;
  if (done) co_return result;
  if (spool_->findUpload(id)) result = internalError("The write-back spool could not complete the upload.");
  else result = noSuchUpload(id);
  co_return result;
}

asio::awaitable<S3Result<void>> WriteBackService::abortUpload(std::string id) {
  // Not gated: dropping an upload adds no work (and frees room).
  S3Result<void> result;
  if (!co_await spool_->abortUpload(id)) result = noSuchUpload(id);
  co_return result;
}

asio::awaitable<bool> WriteBackService::waitIdle(Clock::time_point deadline) {
  const auto idle = [this] { return spool_->pendingObjects() == 0 && inFlight_ == 0; };  // (named: GCC 12)
  co_return co_await signal_.waitUntil(idle, deadline);
}

// ---- the uploader ----

asio::awaitable<void> WriteBackService::run() {
  const auto ex = co_await asio::this_coro::executor;
  while (!stopping_) {
    const std::uint64_t seen = signal_.generation();
    auto wake = Clock::time_point::max();  // until new work, an upload's end or stop()
    if (Clock::now() < pausedUntil_) {
      wake = pausedUntil_;  // a retry is due then
    } else {
      const std::uint64_t before = spool_->pendingObjects();
      while (inFlight_ < opts_.uploadConcurrency) {
        cache::PendingPtr p = spool_->next();
        if (!p) break;
        ++inFlight_;
        asio::co_spawn(ex, uploadOne(std::move(p)), asio::detached);
      }
      if (inFlight_ == 0 && spool_->pendingObjects() != before) {  // superseded ones dropped: maybe idle now
        signal_.notify();
        continue;
      }
    }
    co_await signal_.wait(seen, wake);
  }
  // The gate is closed: what is in flight reaches its end (landed, or failed and still pending).
  const auto drained = [this] { return inFlight_ == 0 && entered_ == 0; };  // (named: GCC 12 coroutines)
  const auto never = Clock::time_point::max();
  co_await signal_.waitUntil(drained, never);
  for (auto& u : upstreams_) u->shutdown();
}

asio::awaitable<void> WriteBackService::uploadOne(cache::PendingPtr p) {
  bool ok = p->passThrough;
  try {
    if (!ok) ok = co_await upload(*p);  // (not in ||: GCC 12 coroutines)
  } catch (const std::exception& e) {  // (the slot and the key must be given back whatever happened)
    spdlog::error("write-back: uploading /{}/{}: {}", logSafe(p->bucket), logSafe(p->key), e.what());
  }
  if (ok) {
    co_await spool_->complete(p);
    if (opts_.cache && opts_.cache->enabled() && opts_.buckets)
      opts_.cache->invalidateMeta(metaKeyOf(opts_.buckets->backendId(p->backend), p->bucket, p->key, {}));
  } else {
    spool_->failed(p);
  }
  uploadEnded(ok);
}

void WriteBackService::uploadEnded(bool ok) {
  if (ok) {
    if (failures_ > 0) spdlog::info("write-back: uploads resumed after {} failed attempts", failures_);
    failures_ = 0;
    backoff_ = opts_.retryFirst;
  } else {
    // A failure most likely means the backend is unwell: no new upload starts for a while (those in
    // flight go on), and the failed operation is first in line again then.
    if (++failures_ == 1 || failures_ % 10 == 0)
      spdlog::warn("write-back: {} pending ({} bytes); upload attempt {} failed, retrying in {} ms",
                   spool_->pendingObjects(), spool_->pendingBytes(), failures_, backoff_.count());
    if (Clock::now() >= pausedUntil_) {  // (uploads that fail together count as one round)
      pausedUntil_ = Clock::now() + backoff_;
      backoff_ = std::min<std::chrono::milliseconds>(backoff_ * 2, opts_.retryMax);
    }
  }
  --inFlight_;
  signal_.notify();
}

}  // namespace granary::s3api

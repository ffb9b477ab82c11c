#include "admin/cache_admin.h"
#include "admin/job_json.h"
#include "common/log_escape.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "s3api/multipart_tracker.h"

namespace granary::admin {
namespace {

using s3api::unquoteEtag;

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

namespace asio = boost::asio;
namespace json = boost::json;
using Clock = std::chrono::steady_clock;

/// A single-part upload's ETag is the MD5 of the object (32 hex digits); a multipart one has "-N".
bool isMd5Etag(std::string_view quoted) {
  const std::string etag = unquoteEtag(quoted);
  return etag.size() == 32 && std::all_of(etag.begin(), etag.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
}

}  // namespace

struct CacheAdmin::Job {
  std::string id;
  LoadRequest req;
  std::string state = "listing";  // listing, loading, verifying, done, failed, cancelled
  std::string error;
  bool cancelled = false;
  Clock::time_point started = Clock::now(), ended{};
  std::vector<AdminOps::ListedObject> objects;
  std::size_t nextObject = 0;
  unsigned running = 0;
  std::uint64_t objectsTotal = 0, bytesTotal = 0;
  std::uint64_t loaded = 0, skipped = 0, failed = 0, bytesLoaded = 0, bytesSkipped = 0;
  std::uint64_t verified = 0, verifyFailed = 0;
  std::vector<std::pair<std::string, std::string>> errors;  // the first few: key, why

  bool finished() const { return state == "done" || state == "failed" || state == "cancelled"; }
  void fail(const std::string& key, const std::string& why) {
    ++failed;
    if (errors.size() < 20) errors.emplace_back(key, why);
  }
  json::object toJson() const {
    const auto end = finished() ? ended : Clock::now();
    const double elapsed = std::chrono::duration<double>(end - started).count();
    const std::uint64_t done = loaded + skipped + failed;
    const std::uint64_t bytesDone = bytesLoaded + bytesSkipped;
    const double rate = elapsed > 0 ? static_cast<double>(bytesLoaded) / elapsed : 0;
    json::object o = jobJsonHead(id, "load", req.bucket, req.prefix, state, error);
    o["objects_total"] = objectsTotal;
    o["objects_done"] = done;
    o["objects_loaded"] = loaded;
    o["objects_skipped"] = skipped;
    o["objects_failed"] = failed;
    o["bytes_total"] = bytesTotal;
    o["bytes_done"] = bytesDone;
    o["bytes_loaded"] = bytesLoaded;
    o["bytes_skipped"] = bytesSkipped;
    o["verify"] = req.verify;
    o["objects_verified"] = verified;
    o["objects_verify_failed"] = verifyFailed;
    o["concurrency"] = req.concurrency;
    o["bytes_per_second_cap"] = req.bytesPerSecond;
    o["elapsed_seconds"] = elapsed;
    o["rate_bytes_per_second"] = rate;
    if (!finished() && state != "listing" && rate > 0 && bytesTotal >= bytesDone)
      o["eta_seconds"] = static_cast<double>(bytesTotal - bytesDone) / rate;
    json::array errs;
    for (const auto& [k, why] : errors) errs.push_back(json::object{{"key", k}, {"error", why}});
    o["errors"] = std::move(errs);
    return o;
  }
};

CacheAdmin::CacheAdmin(asio::any_io_executor ex, std::vector<AdminWorker> workers, cache::ChunkCache* cache,
                       std::vector<std::shared_ptr<RequestStats>> stats, std::shared_ptr<s3api::PrefetchTracker> tracker)
    : ex_(std::move(ex)), workers_(std::move(workers)), cache_(cache), stats_(std::move(stats)), tracker_(std::move(tracker)) {
  for (const auto& w : workers_) guards_.push_back(asio::prefer(w.ex, asio::execution::outstanding_work.tracked));
}

void CacheAdmin::shutdown() {
  stopping_ = true;
  // Released on the admin thread, after which no job step (they run there too) dispatches again; what is
  // in flight on an I/O thread keeps that thread running until it completes.
  asio::post(ex_, [this] { guards_.clear(); });
}

asio::awaitable<std::pair<std::vector<AdminOps::ListedObject>, std::string>> CacheAdmin::listAll(
    const std::string& bucket, const std::string& prefix, std::size_t max, std::shared_ptr<Job> progress,
    std::function<bool()> cancelled) {
  std::vector<AdminOps::ListedObject> all;
  std::string token;
  for (;;) {
    if (stopping_) co_return std::pair{std::move(all), std::string("shutting down")};
    if ((progress && progress->cancelled) || (cancelled && cancelled())) co_return std::pair{std::move(all), std::string("cancelled")};
    const AdminWorker& w = nextWorker();
    auto page = co_await asio::co_spawn(w.ex, w.handler->adminList(bucket, prefix, token), asio::use_awaitable);
    if (!page.error.empty()) co_return std::pair{std::move(all), std::move(page.error)};
    for (auto& o : page.objects) {
      if (all.size() >= max) break;
      if (progress) {
        ++progress->objectsTotal;
        progress->bytesTotal += o.size;
      }
      all.push_back(std::move(o));
    }
    if (page.nextToken.empty() || all.size() >= max) break;
    token = std::move(page.nextToken);
  }
  co_return std::pair{std::move(all), std::string()};
}

std::string CacheAdmin::startLoad(LoadRequest req) {
  for (const auto& [id, j] : jobs_)
    if (!j->finished() && j->req.bucket == req.bucket && j->req.prefix == req.prefix) return id;
  auto job = std::make_shared<Job>();
  job->id = "load-" + std::to_string(++jobCounter_);
  req.concurrency = std::clamp(req.concurrency, 1u, 256u);
  job->req = std::move(req);
  jobs_[job->id] = job;
  // Keep the last 50 finished jobs.
  while (jobs_.size() > 50) {
    auto victim = std::find_if(jobs_.begin(), jobs_.end(), [](const auto& kv) { return kv.second->finished(); });
    if (victim == jobs_.end()) break;
    jobs_.erase(victim);
  }
  spdlog::info("admin: load {} of s3://{}/{} started (concurrency {}, cap {} B/s{})", job->id, logSafe(job->req.bucket),
               logSafe(job->req.prefix), job->req.concurrency, job->req.bytesPerSecond, job->req.verify ? ", verify" : "");
  asio::co_spawn(ex_, runLoad(job), asio::detached);
  return job->id;
}

asio::awaitable<void> CacheAdmin::runLoad(std::shared_ptr<Job> job) {
  auto [objects, error] = co_await listAll(job->req.bucket, job->req.prefix, SIZE_MAX, job);
  if (!error.empty()) {
    job->state = job->cancelled ? "cancelled" : "failed";
    job->error = "listing s3://" + job->req.bucket + "/" + job->req.prefix + ": " + error;
    job->ended = Clock::now();
    spdlog::warn("admin: load {} failed: {}", job->id, logSafe(job->error));
    co_return;
  }
  job->objects = std::move(objects);
  job->state = "loading";
  auto limit = job->req.bytesPerSecond ? std::make_shared<RateLimiter>(job->req.bytesPerSecond) : nullptr;
  const unsigned n = std::min<unsigned>(job->req.concurrency, std::max<std::size_t>(1, job->objects.size()));
  job->running = n;
  for (unsigned i = 0; i < n; ++i) asio::co_spawn(ex_, loadWorker(job, limit), asio::detached);
}

asio::awaitable<void> CacheAdmin::loadWorker(std::shared_ptr<Job> job, std::shared_ptr<RateLimiter> limit) {
  while (job->nextObject < job->objects.size() && !job->cancelled && !stopping_) {
    const AdminOps::ListedObject& o = job->objects[job->nextObject++];
    const AdminWorker& w = nextWorker();
    auto have = co_await asio::co_spawn(w.ex, w.handler->adminCached(job->req.bucket, o.key), asio::use_awaitable);
    const bool fresh = have.complete() && unquoteEtag(have.etag) == unquoteEtag(o.etag);
    if (fresh) {
      ++job->skipped;
      job->bytesSkipped += o.size;
    } else {
      auto r = co_await asio::co_spawn(w.ex, w.handler->adminRead(job->req.bucket, o.key, false, limit), asio::use_awaitable);
      if (!r.error.empty()) {
        job->fail(o.key, r.error);
        continue;
      }
      ++job->loaded;
      job->bytesLoaded += r.bytes;
    }
    if (job->req.verify) {
      // Read it back: now every chunk must come from the cache, and the bytes must be the object's.
      const bool md5 = isMd5Etag(o.etag);
      auto r = co_await asio::co_spawn(w.ex, w.handler->adminRead(job->req.bucket, o.key, md5, nullptr), asio::use_awaitable);
      std::string why;
      if (!r.error.empty()) why = "verify: " + r.error;
      else if (r.bytes != o.size) why = "verify: read " + std::to_string(r.bytes) + " bytes, listed " + std::to_string(o.size);
      else if (md5 && lower(r.md5Hex) != lower(unquoteEtag(o.etag))) why = "verify: MD5 " + r.md5Hex + " is not the ETag " + o.etag;
      else if (!r.cacheStatus.empty() && r.cacheStatus != "hit") why = "verify: answered as " + r.cacheStatus + ", not from the cache";
      if (why.empty()) {
        ++job->verified;
      } else {
        ++job->verifyFailed;
        if (job->errors.size() < 20) job->errors.emplace_back(o.key, why);
        co_await asio::co_spawn(w.ex, w.handler->adminInvalidate(job->req.bucket, o.key), asio::use_awaitable);
      }
    }
  }
  if (--job->running == 0) {
    job->ended = Clock::now();
    job->state = job->cancelled ? "cancelled" : stopping_ ? "failed" : "done";
    if (stopping_ && !job->cancelled) job->error = "Granary is shutting down";
    spdlog::info("admin: load {} {}: {} objects loaded ({} bytes), {} already cached, {} failed{}", job->id,
                 job->state, job->loaded, job->bytesLoaded, job->skipped, job->failed,
                 job->req.verify ? ", " + std::to_string(job->verified) + " verified" : std::string());
  }
}

std::optional<json::object> CacheAdmin::job(const std::string& id) const {
  if (auto p = prefetchJobs_.find(id); p != prefetchJobs_.end()) return p->second->toJson();
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return std::nullopt;
  return it->second->toJson();
}

json::array CacheAdmin::jobs() const {
  json::array a;
  for (const auto& [id, j] : jobs_) a.push_back(j->toJson());
  for (const auto& [id, j] : prefetchJobs_) a.push_back(j->toJson());
  return a;
}

bool CacheAdmin::cancel(const std::string& id) {
  if (auto p = prefetchJobs_.find(id); p != prefetchJobs_.end()) {
    p->second->cancelled = true;
    if (auto t = p->second->wake.lock()) t->cancel();  // stops starting fetches now
    return true;
  }
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return false;
  it->second->cancelled = true;
  return true;
}

asio::awaitable<json::object> CacheAdmin::ls(std::string bucket, std::string prefix, std::size_t max) {
  json::object out;
  out["bucket"] = bucket;
  out["prefix"] = prefix;
  auto [objects, error] = co_await listAll(bucket, prefix, max);
  if (!error.empty()) {
    out["error"] = error;
    co_return out;
  }
  json::array items;
  std::uint64_t bytes = 0, cachedBytes = 0, full = 0, partial = 0;
  for (const auto& o : objects) {
    const AdminWorker& w = nextWorker();
    if (stopping_) break;
    auto have = co_await asio::co_spawn(w.ex, w.handler->adminCached(bucket, o.key), asio::use_awaitable);
    const bool current = have.known && unquoteEtag(have.etag) == unquoteEtag(o.etag);
    // Chunks of another version of the object are not "cached": reads will not use them.
    const std::uint64_t c = current ? have.cachedBytes : 0;
    const char* state = !have.known ? "none" : !current ? "stale" : have.complete() ? "full" : c ? "partial" : "metadata";
    if (current && have.complete()) ++full;
    else if (c) ++partial;
    bytes += o.size;
    cachedBytes += c;
    items.push_back(json::object{{"key", o.key}, {"size", o.size}, {"etag", o.etag}, {"cached_bytes", c},
                                 {"chunks", have.chunks}, {"cached_chunks", current ? have.cachedChunks : 0},
                                 {"state", state}});
  }
  out["objects"] = std::move(items);
  out["total_objects"] = objects.size();
  out["total_bytes"] = bytes;
  out["cached_bytes"] = cachedBytes;
  out["objects_full"] = full;
  out["objects_partial"] = partial;
  out["truncated"] = objects.size() >= max;
  co_return out;
}

asio::awaitable<json::object> CacheAdmin::invalidate(std::string bucket, std::string keyOrPrefix, bool asPrefix) {
  json::object out;
  out["bucket"] = bucket;
  out["prefix"] = keyOrPrefix;
  auto [objects, error] = co_await listAll(bucket, keyOrPrefix, SIZE_MAX);
  if (!error.empty()) out["listing_error"] = error;  // the exact key is still dropped below
  const bool exact = std::any_of(objects.begin(), objects.end(), [&](const auto& o) { return o.key == keyOrPrefix; });
  if (!keyOrPrefix.empty() && !asPrefix && (exact || objects.empty())) {
    objects.clear();
    objects.push_back({keyOrPrefix, 0, {}});  // that object (which may be gone at the backend, still cached)
  } else if (!keyOrPrefix.empty() && !exact) {
    objects.push_back({keyOrPrefix, 0, {}});
  }
  out["as_prefix"] = objects.size() > 1 || asPrefix;
  std::uint64_t dropped = 0, droppedBytes = 0;
  for (const auto& o : objects) {
    const AdminWorker& w = nextWorker();
    if (stopping_) break;
    auto had = co_await asio::co_spawn(w.ex, w.handler->adminInvalidate(bucket, o.key), asio::use_awaitable);
    if (had.known) {
      ++dropped;
      droppedBytes += had.cachedBytes;
    }
  }
  spdlog::info("admin: invalidated s3://{}/{}: {} objects cached ({} bytes) dropped", logSafe(bucket), logSafe(keyOrPrefix), dropped, droppedBytes);
  out["objects_listed"] = objects.size();
  out["objects_invalidated"] = dropped;
  out["bytes_invalidated"] = droppedBytes;
  co_return out;
}

json::object CacheAdmin::stats() const {
  json::object out;
  RequestStats::Snapshot req;
  for (const auto& s : stats_) s->addTo(req);
  std::uint64_t capacity = 0, used = 0;
  json::array dirs;
  if (cache_ && cache_->disk()) {
    const auto ds = cache_->disk()->index().stats();
    const auto status = cache_->disk()->status();
    for (std::size_t i = 0; i < status.size(); ++i) {
      const std::uint64_t u = i < ds.dirBytes.size() ? ds.dirBytes[i] : 0;
      capacity += status[i].capacity;
      used += u;
      dirs.push_back(json::object{{"path", status[i].path}, {"capacity_bytes", status[i].capacity}, {"used_bytes", u},
                                  {"up", !status[i].failed}});
    }
    out["disk_entries"] = ds.entries;
    out["disk_evictions"] = ds.evicted;
  }
  out["dirs"] = std::move(dirs);
  out["disk_capacity_bytes"] = capacity;
  out["disk_used_bytes"] = used;
  if (cache_ && cache_->ram()) {
    out["ram_capacity_bytes"] = cache_->ram()->capacity();
    out["ram_used_bytes"] = cache_->ram()->bytes();
  }
  if (cache_) {
    const auto& s = cache_->stats();
    out["chunk_hits_ram"] = s.ramHits.load();
    out["chunk_hits_disk"] = s.diskHits.load();
    out["chunk_misses"] = s.misses.load();
    out["bytes_from_ram"] = s.bytesFromRam.load();
    out["bytes_from_disk"] = s.bytesFromDisk.load();
    out["bytes_from_backend"] = s.bytesFromBackend.load();
    const double served = static_cast<double>(s.bytesFromCache.load() + s.bytesFromBackend.load());
    out["byte_hit_ratio"] = served > 0 ? static_cast<double>(s.bytesFromCache.load()) / served : 0.0;
  }
  const std::uint64_t hits = req.byCache["hit"], misses = req.byCache["miss"], partial = req.byCache["partial"];
  out["requests_hit"] = hits;
  out["requests_miss"] = misses;
  out["requests_partial"] = partial;
  out["request_hit_ratio"] = hits + misses + partial ? static_cast<double>(hits) / static_cast<double>(hits + misses + partial) : 0.0;
  std::vector<std::pair<std::string, RequestStats::BucketTotals>> buckets(req.byBucket.begin(), req.byBucket.end());
  std::sort(buckets.begin(), buckets.end(), [](const auto& a, const auto& b) { return a.second.bytesOut > b.second.bytesOut; });
  json::array top;
  for (std::size_t i = 0; i < buckets.size() && i < 10; ++i) {
    const auto& [name, b] = buckets[i];
    const std::uint64_t reads = b.hits + b.misses + b.partial;
    top.push_back(json::object{{"bucket", name}, {"requests", b.requests}, {"bytes_out", b.bytesOut},
                               {"hits", b.hits}, {"misses", b.misses}, {"partial", b.partial},
                               {"hit_ratio", reads ? static_cast<double>(b.hits) / static_cast<double>(reads) : 0.0}});
  }
  out["top_buckets"] = std::move(top);
  return out;
}

}  // namespace granary::admin

// CacheAdmin's prefetch jobs: fetch the keys of an order into the cache ahead of the reader (the highest
// position a client GET has read, s3api::PrefetchTracker), within a window of bytes and fetches in flight
// (s3api::PrefetchWindow). Each fetch is an internal GET through an I/O thread's handler, so a client
// read that overtakes the job joins its fill (the cache's single-flight fills) instead of fetching again.
// The job loop runs on the admin thread and wakes when a fetch completes, or every kTick to see where
// the reader is.

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/array.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "admin/cache_admin.h"
#include "admin/job_json.h"
#include "common/log_escape.h"

namespace granary::admin {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using Clock = std::chrono::steady_clock;
constexpr auto kTick = std::chrono::milliseconds(20);

std::string commonPrefix(const std::vector<std::string>& keys) {
  if (keys.empty()) return {};
  std::string_view p = keys.front();
  for (const auto& k : keys) {
    std::size_t n = 0;
    while (n < p.size() && n < k.size() && p[n] == k[n]) ++n;
    p = p.substr(0, n);
  }
  return std::string(p);
}

}  // namespace

std::pair<std::vector<std::string>, std::string> parsePrefetchKeys(std::string_view body, std::string_view prefix) {
  std::vector<std::string> keys;
  while (!body.empty()) {
    const auto nl = body.find('\n');
    std::string_view line = body.substr(0, nl);
    body = nl == std::string_view::npos ? std::string_view() : body.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    if (line.size() > kMaxPrefetchKeyBytes)
      return {{}, "key " + std::to_string(keys.size() + 1) + " is longer than " + std::to_string(kMaxPrefetchKeyBytes) + " bytes"};
    if (keys.size() >= kMaxPrefetchKeys) return {{}, "more than " + std::to_string(kMaxPrefetchKeys) + " keys"};
    if (!line.starts_with(prefix))
      return {{}, "key " + std::to_string(keys.size() + 1) + " is not under the prefix " + logSafe(prefix)};
    keys.emplace_back(line);
  }
  return {std::move(keys), {}};
}

json::object PrefetchJob::toJson() const {
  if (final) return *final;
  const auto end = finished() ? ended : Clock::now();
  const double elapsed = std::chrono::duration<double>(end - started).count();
  json::object o = jobJsonHead(id, "prefetch", req.bucket, req.prefix, state, error);
  const std::uint64_t total = order ? order->size() : 0;
  const std::uint64_t skipped = window ? window->skipped() : 0;
  o["objects_total"] = total;
  o["objects_done"] = fetched + cached + failed + skipped;
  o["objects_fetched"] = fetched;
  o["objects_cached"] = cached;                 // already cached: nothing fetched
  o["objects_passed"] = skipped;                // the reader got there first: not fetched by the job
  o["objects_failed"] = failed;
  o["bytes_total"] = bytesTotal;                // known from a listing only
  o["bytes_done"] = bytesFetched + bytesCached;
  o["bytes_fetched"] = bytesFetched;
  o["bytes_cached"] = bytesCached;
  o["reader_position"] = order ? order->reader() : -1;  // the highest position a client read; -1: none yet
  o["next_position"] = window ? window->cursor() : 0;   // the first position not started
  o["bytes_ahead"] = window ? window->bytesAhead() : 0;  // fetched or in flight ahead of the reader
  o["in_flight"] = window ? window->inFlight() : 0u;
  o["window_bytes"] = req.windowBytes;
  o["concurrency"] = req.concurrency;
  o["idle_seconds"] = std::chrono::duration<double>(req.idle).count();
  if (order) o["seconds_since_read"] = std::chrono::duration<double>(end - order->lastRead()).count();
  o["elapsed_seconds"] = elapsed;
  o["rate_bytes_per_second"] = elapsed > 0 ? static_cast<double>(bytesFetched) / elapsed : 0.0;
  json::array errs;
  for (const auto& [k, why] : errors) errs.push_back(json::object{{"key", k}, {"error", why}});
  o["errors"] = std::move(errs);
  return o;
}

bool CacheAdmin::prefetchSlotFree() const {
  if (!tracker_) return false;
  const auto running = std::count_if(prefetchJobs_.begin(), prefetchJobs_.end(), [](const auto& kv) { return !kv.second->finished(); });
  return static_cast<std::size_t>(running) < kMaxPrefetchJobsRunning;
}

std::optional<std::string> CacheAdmin::startPrefetch(PrefetchRequest req) {
  if (!prefetchSlotFree()) return std::nullopt;
  auto job = std::make_shared<PrefetchJob>();
  job->id = "prefetch-" + std::to_string(++prefetchCounter_);
  req.concurrency = std::clamp(req.concurrency, 1u, 256u);
  if (req.prefix.empty()) req.prefix = commonPrefix(req.keys);  // what a policy judges the job by
  job->req = std::move(req);
  prefetchJobs_[job->id] = job;
  while (prefetchJobs_.size() > 50) {  // keep the last 50 finished
    auto victim = std::find_if(prefetchJobs_.begin(), prefetchJobs_.end(), [](const auto& kv) { return kv.second->finished(); });
    if (victim == prefetchJobs_.end()) break;
    prefetchJobs_.erase(victim);
  }
  spdlog::info("admin: prefetch {} of s3://{}/{} started ({} keys{}, window {} B, concurrency {}, idle {} ms)", job->id,
               logSafe(job->req.bucket), logSafe(job->req.prefix), job->req.keys.size(),
               job->req.keys.empty() ? " given: the listing's order" : " in the given order", job->req.windowBytes,
               job->req.concurrency, job->req.idle.count());
  asio::co_spawn(ex_, runPrefetch(job), asio::detached);
  return job->id;
}

asio::awaitable<bool> CacheAdmin::preparePrefetch(std::shared_ptr<PrefetchJob> job) {
  std::vector<std::uint64_t> sizes;
  std::vector<std::string> keys = std::move(job->req.keys);
  job->req.keys.clear();
  if (keys.empty()) {
    job->state = "listing";
    // A DELETE during the listing ends it at the next page (a large prefix is up to 1,000 pages).
    // (Named, not temporaries in the co_await: GCC 12 coroutines.)
    std::shared_ptr<Job> noLoadJob;
    std::function<bool()> cancelled = [job] { return job->cancelled; };
    auto [objects, error] = co_await listAll(job->req.bucket, job->req.prefix, kMaxPrefetchKeys, noLoadJob, cancelled);
    if (job->cancelled) co_return false;  // (cancelled, not failed: no error)
    if (!error.empty()) {
      job->error = "listing s3://" + job->req.bucket + "/" + job->req.prefix + ": " + error;
      co_return false;
    }
    for (auto& o : objects) {
      sizes.push_back(o.size);
      job->bytesTotal += o.size;
      keys.push_back(std::move(o.key));
    }
  }
  job->order = std::make_shared<s3api::PrefetchOrder>(job->req.bucket, std::move(keys));
  job->window.emplace(job->order->size(), std::move(sizes), job->req.windowBytes, job->req.concurrency);
  co_return true;
}

asio::awaitable<void> CacheAdmin::runPrefetch(std::shared_ptr<PrefetchJob> job) {
  if (!co_await preparePrefetch(job)) {
    job->state = job->cancelled ? "cancelled" : "failed";
    job->ended = Clock::now();
    if (job->cancelled) spdlog::info("admin: prefetch {} cancelled while listing", job->id);
    else spdlog::warn("admin: prefetch {} failed: {}", job->id, logSafe(job->error));
    co_return;
  }
  // Created after the listing (which awaits the I/O threads): from here on this frame waits only on the
  // admin thread, so the timer dies with it when the admin io_context goes.
  auto wake = std::make_shared<asio::steady_timer>(ex_);
  job->wake = wake;
  tracker_->add(job->order);
  job->state = "prefetching";
  std::string outcome;
  s3api::PrefetchWindow& w = *job->window;
  while (outcome.empty()) {
    w.setReader(job->order->reader());
    if (job->cancelled) outcome = "cancelled";
    else if (stopping_) outcome = "failed";
    else if (w.done()) outcome = "done";
    else if (Clock::now() - job->order->lastRead() > job->req.idle) outcome = "idle-stopped";
    if (!outcome.empty()) break;
    while (auto position = w.next()) asio::co_spawn(ex_, prefetchOne(job, *position), asio::detached);
    wake->expires_after(kTick);
    co_await wake->async_wait(asio::as_tuple(asio::use_awaitable));
  }
  // What is in flight completes (a fill a client may be waiting on is not cut short); nothing new starts.
  // Not at shutdown: the loop would keep the admin thread alive; the fetches end with the I/O threads.
  while (w.inFlight() > 0 && !stopping_) {
    wake->expires_after(kTick);
    co_await wake->async_wait(asio::as_tuple(asio::use_awaitable));
  }
  tracker_->remove(job->order.get());
  if (outcome == "failed") job->error = "Granary is shutting down";
  job->state = outcome;
  job->ended = Clock::now();
  spdlog::info("admin: prefetch {} {}: {} objects fetched ({} bytes), {} already cached, {} passed by the reader, {} failed",
               job->id, job->state, job->fetched, job->bytesFetched, job->cached, w.skipped(), job->failed);
  if (w.inFlight() == 0) {  // (at shutdown, fetches still in flight hold the order's keys)
    job->final = job->toJson();
    job->window.reset();
    job->order.reset();
  }
}

asio::awaitable<void> CacheAdmin::prefetchOne(std::shared_ptr<PrefetchJob> job, std::size_t position) {
  const std::string& key = job->order->keys()[position];
  std::uint64_t bytes = 0;
  if (stopping_) {  // the I/O threads take no new work
    job->window->finished(position, 0);
    if (auto t = job->wake.lock()) t->cancel();
    co_return;
  }
  const AdminWorker& w = nextWorker();
  auto have = co_await asio::co_spawn(w.ex, w.handler->adminCached(job->req.bucket, key), asio::use_awaitable);
  if (have.complete()) {
    ++job->cached;
    bytes = have.size;
    job->bytesCached += bytes;
  } else if (!stopping_) {
    auto r = co_await asio::co_spawn(w.ex, w.handler->adminRead(job->req.bucket, key, false, nullptr), asio::use_awaitable);
    if (r.error.empty()) {
      ++job->fetched;
      bytes = r.bytes;
      job->bytesFetched += bytes;
    } else {
      job->fail(key, r.error);
    }
  }
  job->window->finished(position, bytes);
  if (auto t = job->wake.lock()) t->cancel();
}

}  // namespace granary::admin

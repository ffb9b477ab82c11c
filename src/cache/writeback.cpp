#include "cache/writeback.h"

#include <fcntl.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace granary::cache {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
namespace fs = std::filesystem;

std::string journalPath(const std::string& dir) { return dir + "/writeback.journal"; }

json::object toJson(const PendingWrite& w) {
  json::object o;
  o["op"] = w.isDelete ? "del" : w.passThrough ? "pass" : "put";
  o["seq"] = w.seq;
  o["backend"] = w.backend;
  o["bucket"] = w.bucket;
  o["key"] = w.key;
  o["size"] = w.size;
  o["etag"] = w.etag;
  o["ms"] = w.createdMs;
  json::array h;
  for (const auto& [k, v] : w.headers) h.push_back(json::array{json::string(k), json::string(v)});
  o["headers"] = std::move(h);
  return o;
}

std::optional<PendingWrite> fromJson(const json::object& o) {
  try {
    PendingWrite w;
    w.isDelete = o.at("op").as_string() == "del";
    w.passThrough = o.at("op").as_string() == "pass";
    w.seq = json::value_to<std::uint64_t>(o.at("seq"));
    w.backend = json::value_to<std::uint32_t>(o.at("backend"));
    w.bucket = json::value_to<std::string>(o.at("bucket"));
    w.key = json::value_to<std::string>(o.at("key"));
    w.size = json::value_to<std::uint64_t>(o.at("size"));
    w.etag = json::value_to<std::string>(o.at("etag"));
    w.createdMs = json::value_to<std::int64_t>(o.at("ms"));
    for (const auto& h : o.at("headers").as_array()) {
      const auto& pair = h.as_array();
      w.headers.emplace_back(json::value_to<std::string>(pair.at(0)), json::value_to<std::string>(pair.at(1)));
    }
    return w;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

bool writeAll(int fd, const std::string& s) {
  std::size_t done = 0;
  while (done < s.size()) {
    const ssize_t n = ::write(fd, s.data() + done, s.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  return true;
}

bool fsyncPath(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

WriteBackSpool::WriteBackSpool(WriteBackOptions opts) : opts_(std::move(opts)) {
  std::error_code ec;
  fs::create_directories(opts_.dir, ec);
  if (ec) throw std::runtime_error("write-back directory " + opts_.dir + ": " + ec.message());
  replay();
}

WriteBackSpool::~WriteBackSpool() {
  thread_.join();
  if (journalFd_ >= 0) ::close(journalFd_);
}

std::string WriteBackSpool::dataPath(std::uint64_t seq) const { return opts_.dir + "/" + std::to_string(seq) + ".data"; }

void WriteBackSpool::replay() {
  const auto t0 = std::chrono::steady_clock::now();
  std::map<std::uint64_t, PendingWrite> live;
  std::uint64_t maxSeq = 0;
  {
    std::ifstream in(journalPath(opts_.dir));
    std::string line;
    while (std::getline(in, line)) {
      boost::system::error_code jec;
      json::value v = json::parse(line, jec);
      if (jec || !v.is_object()) break;  // a torn last record (crash mid-append): the op was never acknowledged
      const auto& o = v.as_object();
      const auto* op = o.if_contains("op");
      if (!op || !op->is_string()) break;
      if (op->as_string() == "done") {
        if (const auto* s = o.if_contains("seq"); s && s->is_number()) live.erase(json::value_to<std::uint64_t>(*s));
        continue;
      }
      auto w = fromJson(o);
      if (!w) break;
      maxSeq = std::max(maxSeq, w->seq);
      live[w->seq] = std::move(*w);
    }
  }
  // Data files of operations never committed (a crash between the body and the journal) are garbage.
  for (const auto& e : fs::directory_iterator(opts_.dir)) {
    const std::string name = e.path().filename().string();
    if (!name.ends_with(".data")) continue;
    std::uint64_t seq = 0;
    try {
      seq = std::stoull(name);
    } catch (...) {
      continue;
    }
    maxSeq = std::max(maxSeq, seq);
    if (!live.count(seq)) fs::remove(e.path());
  }
  for (auto it = live.begin(); it != live.end();) {
    if (!it->second.isDelete && !it->second.passThrough && !fs::exists(dataPath(it->first))) {
      spdlog::error("write-back: the data of pending upload {} (/{}/{}) is missing from {}; dropping it", it->first,
                    it->second.bucket, it->second.key, opts_.dir);
      it = live.erase(it);
      continue;
    }
    ++it;
  }
  // Compact: the journal becomes exactly the live operations (written aside, fsynced, renamed over).
  const std::string tmp = journalPath(opts_.dir) + ".tmp";
  {
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw std::runtime_error("write-back: cannot write " + tmp + ": " + std::strerror(errno));
    std::string all;
    for (const auto& [seq, w] : live) all += json::serialize(toJson(w)) + "\n";
    const bool ok = writeAll(fd, all) && ::fsync(fd) == 0;
    ::close(fd);
    if (!ok) throw std::runtime_error("write-back: cannot write " + tmp + ": " + std::strerror(errno));
  }
  if (std::rename(tmp.c_str(), journalPath(opts_.dir).c_str()) != 0 || !fsyncPath(opts_.dir, O_RDONLY | O_DIRECTORY))
    throw std::runtime_error("write-back: cannot replace " + journalPath(opts_.dir) + ": " + std::strerror(errno));
  journalFd_ = ::open(journalPath(opts_.dir).c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (journalFd_ < 0) throw std::runtime_error("write-back: cannot open the journal: " + std::string(std::strerror(errno)));

  nextSeq_ = maxSeq + 1;
  for (auto& [seq, w] : live) {
    auto p = std::make_shared<const PendingWrite>(std::move(w));
    reservedBytes_ += p->size;
    queue_[seq] = p;
    latest_[Key{p->backend, p->bucket, p->key}] = p;  // in seq order: the newest wins
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  spdlog::info("write-back spool {}: {} pending operations ({} bytes) to upload, capacity {} bytes, replayed in {:.3f}s",
               opts_.dir, queue_.size(), reservedBytes_, opts_.capacity, secs);
}

std::optional<std::uint64_t> WriteBackSpool::reserve(std::uint64_t size) {
  std::lock_guard lk(mu_);
  // Deletes and pass-through records (size 0) always fit, even when a restart with a smaller capacity
  // replayed more pending bytes than it allows.
  if (size > 0 && reservedBytes_ + size > opts_.capacity) return std::nullopt;
  reservedBytes_ += size;
  return nextSeq_++;
}

void WriteBackSpool::release(std::uint64_t seq, std::uint64_t size) {
  {
    std::lock_guard lk(mu_);
    reservedBytes_ -= std::min(reservedBytes_, size);
  }
  asio::post(thread_, [path = dataPath(seq)] { ::unlink(path.c_str()); });
}

void WriteBackSpool::appendRecord(const std::string& line) {
  if (!writeAll(journalFd_, line + "\n") || ::fdatasync(journalFd_) != 0)
    throw std::runtime_error(std::string("write-back journal: ") + std::strerror(errno));
}

// (The spool-thread halves are coroutines taking their arguments by value, not capturing lambdas: a
// lambda's captures die with the lambda object, before the coroutine frame that refers to them.)
asio::awaitable<bool> WriteBackSpool::makeDurable(PendingPtr p) {
  try {
    if (!p->isDelete && !p->passThrough &&
        (!fsyncPath(dataPath(p->seq), O_RDONLY) || !fsyncPath(opts_.dir, O_RDONLY | O_DIRECTORY)))
      co_return false;
    appendRecord(json::serialize(toJson(*p)));
    co_return true;
  } catch (const std::exception& e) {
    spdlog::error("write-back: {}", e.what());
    co_return false;
  }
}

asio::awaitable<void> WriteBackSpool::recordDone(PendingPtr w) {
  try {
    appendRecord("{\"op\":\"done\",\"seq\":" + std::to_string(w->seq) + "}");
  } catch (const std::exception& e) {
    spdlog::error("write-back: {}", e.what());  // uploaded again after a restart: harmless
  }
  ::unlink(dataPath(w->seq).c_str());
  co_return;
}

asio::awaitable<int> WriteBackSpool::openOnThread(std::string path, bool write) {
  co_return ::open(path.c_str(), write ? (O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC) : (O_RDONLY | O_CLOEXEC), 0644);
}

asio::awaitable<bool> WriteBackSpool::commit(PendingWrite w) {
  auto p = std::make_shared<const PendingWrite>(std::move(w));
  const bool durable = co_await asio::co_spawn(thread_, makeDurable(p), asio::use_awaitable);
  if (!durable) {
    release(p->seq, p->size);
    co_return false;
  }
  std::lock_guard lk(mu_);
  queue_[p->seq] = p;
  auto& slot = latest_[Key{p->backend, p->bucket, p->key}];
  if (!slot || slot->seq < p->seq) slot = p;
  co_return true;
}

PendingPtr WriteBackSpool::find(std::uint32_t backend, const std::string& bucket, const std::string& key) const {
  std::lock_guard lk(mu_);
  auto it = latest_.find(Key{backend, bucket, key});
  return it == latest_.end() ? nullptr : it->second;
}

std::vector<PendingPtr> WriteBackSpool::list(std::uint32_t backend, const std::string& bucket,
                                             const std::string& prefix) const {
  std::lock_guard lk(mu_);
  std::vector<PendingPtr> out;
  for (auto it = latest_.lower_bound(Key{backend, bucket, prefix}); it != latest_.end(); ++it) {
    const auto& [b, bk, key] = it->first;
    if (b != backend || bk != bucket || !key.starts_with(prefix)) break;
    out.push_back(it->second);
  }
  return out;
}

PendingPtr WriteBackSpool::next() {
  std::lock_guard lk(mu_);
  while (!queue_.empty()) {
    PendingPtr p = queue_.begin()->second;
    auto it = latest_.find(Key{p->backend, p->bucket, p->key});
    if (it != latest_.end() && it->second == p) {
      uploading_ = p;
      return p;
    }
    // Superseded by a newer write or delete of its key: never uploaded.
    queue_.erase(queue_.begin());
    reservedBytes_ -= std::min(reservedBytes_, p->size);
    asio::co_spawn(thread_, recordDone(p), asio::detached);  // (a failure: dropped again at the next start)
  }
  return nullptr;
}

asio::awaitable<void> WriteBackSpool::complete(PendingPtr w) {
  co_await asio::co_spawn(thread_, recordDone(w), asio::use_awaitable);
  std::lock_guard lk(mu_);
  if (uploading_ == w) uploading_.reset();
  queue_.erase(w->seq);
  reservedBytes_ -= std::min(reservedBytes_, w->size);
  auto it = latest_.find(Key{w->backend, w->bucket, w->key});
  if (it != latest_.end() && it->second == w) latest_.erase(it);
}

void WriteBackSpool::failed(const PendingPtr& w) {
  std::lock_guard lk(mu_);
  if (uploading_ == w) uploading_.reset();
}

bool WriteBackSpool::uploading(std::uint32_t backend, const std::string& bucket, const std::string& key) const {
  std::lock_guard lk(mu_);
  return uploading_ && uploading_->backend == backend && uploading_->bucket == bucket && uploading_->key == key;
}

asio::awaitable<int> WriteBackSpool::openData(std::uint64_t seq, bool write) {
  co_return co_await asio::co_spawn(thread_, openOnThread(dataPath(seq), write), asio::use_awaitable);
}

std::uint64_t WriteBackSpool::pendingObjects() const {
  std::lock_guard lk(mu_);
  return queue_.size();
}

std::uint64_t WriteBackSpool::pendingBytes() const {
  std::lock_guard lk(mu_);
  std::uint64_t n = 0;
  for (const auto& [seq, p] : queue_) n += p->size;
  return n;
}

}  // namespace granary::cache

#include "cache/writeback.h"
#include "common/log_escape.h"

#include <fcntl.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <stdexcept>
#include <tuple>

namespace granary::cache {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
namespace fs = std::filesystem;

std::string journalPath(const std::string& dir) { return dir + "/writeback.journal"; }

/// Calls `end` when it goes out of scope (a coroutine's every return path).
template <class F>
struct AtExit {
  F end;
  ~AtExit() { end(); }
};
template <class F>
AtExit(F) -> AtExit<F>;  // (clang before 17 has no deduction for aggregates)

json::array headersJson(const std::vector<std::pair<std::string, std::string>>& headers) {
  json::array h;
  for (const auto& [k, v] : headers) h.push_back(json::array{json::string(k), json::string(v)});
  return h;
}

std::vector<std::pair<std::string, std::string>> headersFrom(const json::value& v) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& h : v.as_array()) {
    const auto& pair = h.as_array();
    out.emplace_back(json::value_to<std::string>(pair.at(0)), json::value_to<std::string>(pair.at(1)));
  }
  return out;
}

json::object partJson(const SpooledPart& p) {
  json::object o;
  o["n"] = p.number;
  o["seq"] = p.seq;
  o["size"] = p.size;
  o["etag"] = p.etag;
  o["ms"] = p.createdMs;
  return o;
}

SpooledPart partFrom(const json::object& o) {  // throws on a malformed record
  SpooledPart p;
  p.number = json::value_to<std::uint32_t>(o.at("n"));
  p.seq = json::value_to<std::uint64_t>(o.at("seq"));
  p.size = json::value_to<std::uint64_t>(o.at("size"));
  p.etag = json::value_to<std::string>(o.at("etag"));
  p.createdMs = json::value_to<std::int64_t>(o.at("ms"));
  return p;
}

json::object uploadJson(const SpoolUpload& u) {
  json::object o;
  o["op"] = "mpu";
  o["id"] = u.id;
  o["backend"] = u.backend;
  o["bucket"] = u.bucket;
  o["key"] = u.key;
  o["ms"] = u.createdMs;
  o["headers"] = headersJson(u.headers);
  return o;
}

std::optional<SpoolUpload> uploadFrom(const json::object& o) {
  try {
    SpoolUpload u;
    u.id = json::value_to<std::string>(o.at("id"));
    u.backend = json::value_to<std::uint32_t>(o.at("backend"));
    u.bucket = json::value_to<std::string>(o.at("bucket"));
    u.key = json::value_to<std::string>(o.at("key"));
    u.createdMs = json::value_to<std::int64_t>(o.at("ms"));
    u.headers = headersFrom(o.at("headers"));
    return u;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::string partRecord(const std::string& uploadId, const SpooledPart& p) {
  json::object o = partJson(p);
  o["op"] = "part";
  o["id"] = uploadId;
  return json::serialize(o);
}

std::string abortRecord(const std::string& uploadId) {
  json::object o;
  o["op"] = "abort";
  o["id"] = uploadId;
  return json::serialize(o);
}

json::object toJson(const PendingWrite& w, const std::string& uploadId = {}) {
  json::object o;
  o["op"] = w.isDelete ? "del" : w.passThrough ? "pass" : "put";
  o["seq"] = w.seq;
  o["backend"] = w.backend;
  o["bucket"] = w.bucket;
  o["key"] = w.key;
  o["size"] = w.size;
  o["etag"] = w.etag;
  o["ms"] = w.createdMs;
  o["headers"] = headersJson(w.headers);
  if (!w.parts.empty()) {
    json::array parts;
    for (const auto& p : w.parts) parts.push_back(partJson(p));
    o["parts"] = std::move(parts);
  }
  if (!uploadId.empty()) o["upload"] = uploadId;  // the multipart upload this write completed
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
    w.headers = headersFrom(o.at("headers"));
    if (const auto* parts = o.if_contains("parts"))
      for (const auto& p : parts->as_array()) w.parts.push_back(partFrom(p.as_object()));
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

/// What a journal holds: the operations still pending, the multipart uploads still open, the highest
/// sequence number it names.
struct Replayed {
  std::map<std::uint64_t, PendingWrite> live;
  std::map<std::string, SpoolUpload> open;  // multipart uploads not completed nor aborted
  std::uint64_t maxSeq = 0;
};

Replayed readJournal(const std::string& dir) {
  Replayed r;
  auto& live = r.live;
  auto& open = r.open;
  auto& maxSeq = r.maxSeq;
  {
    std::ifstream in(journalPath(dir));
    std::string line;
    while (std::getline(in, line)) {
      boost::system::error_code jec;
      json::value v = json::parse(line, jec);
      if (jec || !v.is_object()) break;  // a torn last record (crash mid-append): the op was never acknowledged
      const auto& o = v.as_object();
      const auto* op = o.if_contains("op");
      if (!op || !op->is_string()) break;
      if (op->as_string() == "done") {
        // A "done" naming no operation (no seq, or one that is not an unsigned integer: -1, 1.5) is
        // ignored; it must not throw out of the constructor (value_to throws on an inexact number).
        const auto* s = o.if_contains("seq");
        boost::system::error_code nec;
        const auto seq = s && s->is_number() ? s->to_number<std::uint64_t>(nec) : 0;
        if (s && s->is_number() && !nec) live.erase(seq);
        continue;
      }
      if (op->as_string() == "mpu") {
        auto u = uploadFrom(o);
        if (!u) break;
        open[u->id] = std::move(*u);
        continue;
      }
      if (op->as_string() == "part" || op->as_string() == "abort") {
        const auto* id = o.if_contains("id");
        if (!id || !id->is_string()) break;
        auto it = open.find(std::string(id->as_string()));
        if (op->as_string() == "abort") {
          if (it != open.end()) open.erase(it);
          continue;
        }
        try {
          SpooledPart part = partFrom(o);
          maxSeq = std::max(maxSeq, part.seq);
          if (it != open.end()) it->second.parts[part.number] = part;  // (a replaced part's file: orphan)
        } catch (const std::exception&) {
          break;
        }
        continue;
      }
      auto w = fromJson(o);
      if (!w) break;
      if (const auto* id = o.if_contains("upload"); id && id->is_string()) open.erase(std::string(id->as_string()));
      maxSeq = std::max(maxSeq, w->seq);
      for (const auto& p : w->parts) maxSeq = std::max(maxSeq, p.seq);
      live[w->seq] = std::move(*w);
    }
  }
  return r;
}

/// Deletes the data files no pending operation or open upload names (a crash between a body and its
/// journal record), and raises `r.maxSeq` past every data file's number.
void removeOrphanData(const std::string& dir, Replayed& r) {
  auto& live = r.live;
  auto& open = r.open;
  auto& maxSeq = r.maxSeq;
  std::set<std::uint64_t> dataFiles;  // the seqs whose data files are still wanted
  for (const auto& [seq, w] : live) {
    if (w.parts.empty()) dataFiles.insert(seq);
    for (const auto& p : w.parts) dataFiles.insert(p.seq);
  }
  for (const auto& [id, u] : open)
    for (const auto& [n, p] : u.parts) dataFiles.insert(p.seq);
  // Data files of operations never committed (a crash between the body and the journal) are garbage.
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (!name.ends_with(".data")) continue;
    std::uint64_t seq = 0;
    try {
      seq = std::stoull(name);
    } catch (...) {
      continue;
    }
    maxSeq = std::max(maxSeq, seq);
    if (!dataFiles.count(seq)) fs::remove(e.path());
  }
}

}  // namespace

WriteBackSpool::WriteBackSpool(WriteBackOptions opts) : opts_(std::move(opts)) {
  std::error_code ec;
  // A directory Granary creates is its own (0700): it holds object data not yet uploaded.
  if (fs::create_directories(opts_.dir, ec) && !ec) fs::permissions(opts_.dir, fs::perms::owner_all, ec);
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
  Replayed replayed = readJournal(opts_.dir);
  removeOrphanData(opts_.dir, replayed);
  auto& live = replayed.live;
  auto& open = replayed.open;
  const std::uint64_t maxSeq = replayed.maxSeq;
  for (auto it = live.begin(); it != live.end();) {
    const PendingWrite& w = it->second;
    bool missing = !w.isDelete && !w.passThrough && w.parts.empty() && !fs::exists(dataPath(it->first));
    for (const auto& p : w.parts) missing = missing || !fs::exists(dataPath(p.seq));
    if (missing) {
      spdlog::error("write-back: the data of pending upload {} (/{}/{}) is missing from {}; dropping it", it->first,
                    logSafe(it->second.bucket), logSafe(it->second.key), opts_.dir);
      it = live.erase(it);
      continue;
    }
    ++it;
  }
  nextSeq_ = maxSeq + 1;
  for (auto& [seq, w] : live) {
    auto p = std::make_shared<const PendingWrite>(std::move(w));
    reservedBytes_ += p->size;
    queue_[seq] = p;
    latest_[Key{p->backend, p->bucket, p->key}] = p;  // in seq order: the newest wins
  }
  for (auto& [id, u] : open) {
    for (const auto& [n, p] : u.parts) reservedBytes_ += p.size;
    uploads_[id] = std::make_shared<const SpoolUpload>(std::move(u));
  }
  // Compact: the journal becomes exactly the live records.
  std::uint64_t records = 0;
  const std::string all = snapshotLocked(records);  // (no other thread yet)
  journalFd_ = writeJournal(all);
  if (journalFd_ < 0)
    throw std::runtime_error("write-back: cannot rewrite " + journalPath(opts_.dir) + ": " + std::strerror(errno));
  journalRecords_ = records;
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  spdlog::info("write-back spool {}: {} pending operations and {} open multipart uploads ({} bytes), capacity {} bytes, "
               "replayed in {:.3f}s",
               opts_.dir, queue_.size(), uploads_.size(), reservedBytes_, opts_.capacity, secs);
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
  ++journalRecords_;
}

int WriteBackSpool::writeJournal(const std::string& records) const {
  const std::string tmp = journalPath(opts_.dir) + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  // The descriptor stays open across the rename: appends go on to the new journal.
  if (!writeAll(fd, records) || ::fsync(fd) != 0 || std::rename(tmp.c_str(), journalPath(opts_.dir).c_str()) != 0 ||
      !fsyncPath(opts_.dir, O_RDONLY | O_DIRECTORY)) {
    const int saved = errno;
    ::close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

std::string WriteBackSpool::snapshotLocked(std::uint64_t& count) const {
  std::string all;
  count = 0;
  for (const auto& [id, u] : uploads_) {
    all += json::serialize(uploadJson(*u)) + "\n";
    for (const auto& [n, p] : u->parts) all += partRecord(id, p) + "\n";
    count += 1 + u->parts.size();
  }
  for (const auto& [seq, w] : queue_) all += json::serialize(toJson(*w)) + "\n";
  count += queue_.size();
  return all;
}

void WriteBackSpool::beginMutation() {
  std::lock_guard lk(mu_);
  ++inFlight_;
}

void WriteBackSpool::endMutation() {
  std::lock_guard lk(mu_);
  --inFlight_;
  std::uint64_t live = queue_.size();
  for (const auto& [id, u] : uploads_) live += 1 + u->parts.size();
  const std::uint64_t records = journalRecords_.load();
  if (compactQueued_ || records < opts_.compactAfter || records < 4 * live) return;
  compactQueued_ = true;
  asio::post(thread_, [this] { compactOnThread(); });
}

void WriteBackSpool::compactOnThread() {
  // On the spool thread, where every record is appended: none is written meanwhile. A mutation between
  // its record and its in-memory change would be missing from the snapshot, so none may be in flight.
  std::string all;
  std::uint64_t count = 0;
  {
    std::lock_guard lk(mu_);
    compactQueued_ = false;
    if (inFlight_ > 0) return;  // the next mutation to end tries again
    all = snapshotLocked(count);
  }
  const std::uint64_t before = journalRecords_.load();
  const int fd = writeJournal(all);
  if (fd < 0) {
    spdlog::error("write-back: compacting {} failed: {}; the journal keeps growing", journalPath(opts_.dir),
                  std::strerror(errno));
    return;
  }
  ::close(journalFd_);
  journalFd_ = fd;
  journalRecords_ = count;
  spdlog::info("write-back: journal compacted from {} to {} records", before, count);
}

// (The spool-thread halves are coroutines taking their arguments by value, not capturing lambdas: a
// lambda's captures die with the lambda object, before the coroutine frame that refers to them.)
asio::awaitable<bool> WriteBackSpool::makeDurable(PendingPtr p) {
  try {
    if (!p->isDelete && !p->passThrough && p->parts.empty() &&
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
  for (const auto& p : w->parts) ::unlink(dataPath(p.seq).c_str());
  co_return;
}

asio::awaitable<bool> WriteBackSpool::appendOnThread(std::string line, std::uint64_t syncSeq) {
  try {
    if (syncSeq != 0 && (!fsyncPath(dataPath(syncSeq), O_RDONLY) || !fsyncPath(opts_.dir, O_RDONLY | O_DIRECTORY)))
      co_return false;
    appendRecord(line);
    co_return true;
  } catch (const std::exception& e) {
    spdlog::error("write-back: {}", e.what());
    co_return false;
  }
}

asio::awaitable<int> WriteBackSpool::openOnThread(std::string path, bool write) {
  co_return ::open(path.c_str(), write ? (O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC) : (O_RDONLY | O_CLOEXEC), 0600);
}

asio::awaitable<bool> WriteBackSpool::commit(PendingWrite w) {
  beginMutation();
  AtExit guard{[this] { endMutation(); }};
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
  for (auto q = queue_.begin(); q != queue_.end();) {
    PendingPtr p = q->second;
    Key key{p->backend, p->bucket, p->key};
    if (uploading_.count(key)) {  // this or an earlier operation of its key is on its way: it goes first
      ++q;
      continue;
    }
    auto it = latest_.find(key);
    if (it == latest_.end() || it->second != p) {
      // Superseded by a newer write or delete of its key: never uploaded.
      q = queue_.erase(q);
      reservedBytes_ -= std::min(reservedBytes_, p->size);
      asio::co_spawn(thread_, recordDone(p), asio::detached);  // (a failure: dropped again at the next start)
      continue;
    }
    uploading_.emplace(std::move(key), p);
    return p;
  }
  return nullptr;
}

asio::awaitable<void> WriteBackSpool::complete(PendingPtr w) {
  beginMutation();
  AtExit guard{[this] { endMutation(); }};
  co_await asio::co_spawn(thread_, recordDone(w), asio::use_awaitable);
  std::lock_guard lk(mu_);
  const Key key{w->backend, w->bucket, w->key};
  if (auto up = uploading_.find(key); up != uploading_.end() && up->second == w) uploading_.erase(up);
  queue_.erase(w->seq);
  reservedBytes_ -= std::min(reservedBytes_, w->size);
  auto it = latest_.find(key);
  if (it != latest_.end() && it->second == w) latest_.erase(it);
}

void WriteBackSpool::failed(const PendingPtr& w) {
  std::lock_guard lk(mu_);
  auto up = uploading_.find(Key{w->backend, w->bucket, w->key});
  if (up != uploading_.end() && up->second == w) uploading_.erase(up);
}

bool WriteBackSpool::uploading(std::uint32_t backend, const std::string& bucket, const std::string& key) const {
  std::lock_guard lk(mu_);
  return uploading_.count(Key{backend, bucket, key}) > 0;
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

namespace granary::cache {

std::uint64_t WriteBackSpool::openUploads() const {
  std::lock_guard lk(mu_);
  return uploads_.size();
}

std::uint64_t WriteBackSpool::usedBytes() const {
  std::lock_guard lk(mu_);
  return reservedBytes_;
}

void WriteBackSpool::dropPartLocked(const SpooledPart& p) {
  reservedBytes_ -= std::min(reservedBytes_, p.size);
  asio::post(thread_, [path = dataPath(p.seq)] { ::unlink(path.c_str()); });
}

asio::awaitable<bool> WriteBackSpool::beginUpload(SpoolUpload u) {
  beginMutation();
  AtExit guard{[this] { endMutation(); }};
  const std::string line = json::serialize(uploadJson(u));
  if (!co_await asio::co_spawn(thread_, appendOnThread(line, 0), asio::use_awaitable)) co_return false;
  std::lock_guard lk(mu_);
  const std::string id = u.id;
  uploads_[id] = std::make_shared<const SpoolUpload>(std::move(u));
  co_return true;
}

UploadPtr WriteBackSpool::findUpload(const std::string& id) const {
  std::lock_guard lk(mu_);
  auto it = uploads_.find(id);
  return it == uploads_.end() ? nullptr : it->second;
}

std::vector<UploadPtr> WriteBackSpool::uploads(std::uint32_t backend, const std::string& bucket,
                                               const std::string& prefix) const {
  std::vector<UploadPtr> out;
  {
    std::lock_guard lk(mu_);
    for (const auto& [id, u] : uploads_)
      if (u->backend == backend && u->bucket == bucket && u->key.starts_with(prefix)) out.push_back(u);
  }
  std::sort(out.begin(), out.end(), [](const UploadPtr& a, const UploadPtr& b) {
    return std::tie(a->key, a->createdMs, a->id) < std::tie(b->key, b->createdMs, b->id);
  });
  return out;
}

asio::awaitable<bool> WriteBackSpool::addPart(std::string id, SpooledPart p) {
  beginMutation();
  AtExit guard{[this] { endMutation(); }};
  bool durable = false;
  if (findUpload(id))  // (co_await kept out of &&: GCC 12 coroutines)
    durable = co_await asio::co_spawn(thread_, appendOnThread(partRecord(id, p), p.seq), asio::use_awaitable);
  std::lock_guard lk(mu_);
  auto it = uploads_.find(id);
  if (!durable || it == uploads_.end()) {  // (aborted or completed meanwhile: the record names a closed upload)
    dropPartLocked(p);
    co_return false;
  }
  auto u = std::make_shared<SpoolUpload>(*it->second);
  if (auto old = u->parts.find(p.number); old != u->parts.end()) dropPartLocked(old->second);
  u->parts[p.number] = std::move(p);
  it->second = std::move(u);
  co_return true;
}

asio::awaitable<bool> WriteBackSpool::completeUpload(std::string id, PendingWrite w) {
  beginMutation();
  AtExit guard{[this] { endMutation(); }};
  auto p = std::make_shared<const PendingWrite>(std::move(w));
  UploadPtr taken;
  {
    // Taken out first: a part arriving from now on finds no upload and is dropped.
    std::lock_guard lk(mu_);
    auto it = uploads_.find(id);
    if (it == uploads_.end()) co_return false;
    for (const auto& part : p->parts) {
      auto cur = it->second->parts.find(part.number);
      if (cur == it->second->parts.end() || cur->second.seq != part.seq) co_return false;  // replaced meanwhile
    }
    taken = it->second;
    uploads_.erase(it);
  }
  const std::string line = json::serialize(toJson(*p, id));
  if (!co_await asio::co_spawn(thread_, appendOnThread(line, 0), asio::use_awaitable)) {
    std::lock_guard lk(mu_);
    uploads_[id] = taken;
    co_return false;
  }
  std::lock_guard lk(mu_);
  std::set<std::uint64_t> kept;
  for (const auto& part : p->parts) kept.insert(part.seq);
  for (const auto& [n, part] : taken->parts)
    if (!kept.count(part.seq)) dropPartLocked(part);
  queue_[p->seq] = p;
  auto& slot = latest_[Key{p->backend, p->bucket, p->key}];
  if (!slot || slot->seq < p->seq) slot = p;
  co_return true;
}

asio::awaitable<bool> WriteBackSpool::abortUpload(std::string id) {
  beginMutation();
  AtExit guard{[this] { endMutation(); }};
  if (!findUpload(id)) co_return false;
  // Not durable is harmless: the upload comes back at a restart and can be aborted again.
  co_await asio::co_spawn(thread_, appendOnThread(abortRecord(id), 0), asio::use_awaitable);
  std::lock_guard lk(mu_);
  auto it = uploads_.find(id);
  if (it == uploads_.end()) co_return false;
  for (const auto& [n, part] : it->second->parts) dropPartLocked(part);
  uploads_.erase(it);
  co_return true;
}

}  // namespace granary::cache

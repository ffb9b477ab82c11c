#include "bench.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>
#include <pugixml.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <fstream>
#include <iostream>
#include <mutex>
#include <numeric>
#include <random>
#include <sstream>
#include <thread>

#include "common/crypto.h"
#include "upstream/http_upstream.h"

namespace granary::bench {
namespace {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
namespace json = boost::json;
using upstream::HttpUpstream;
using upstream::UpstreamRequest;
using Clock = std::chrono::steady_clock;

std::int64_t nowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct Object {
  std::string key;
  std::uint64_t size = 0;
};

/// Object contents: a 16 MiB pseudo-random block, read from an offset that depends on the object.
class Payload {
 public:
  explicit Payload(std::uint64_t seed) : block_(kSize, '\0') {
    std::mt19937_64 rng(seed);
    for (std::size_t i = 0; i < kSize; i += 8) {
      const std::uint64_t v = rng();
      std::memcpy(block_.data() + i, &v, 8);
    }
  }
  static constexpr std::size_t kSize = 16 << 20;
  const std::string& block() const { return block_; }

 private:
  std::string block_;
};

class GeneratedBody final : public upstream::BodySource {
 public:
  GeneratedBody(const Payload& p, std::uint64_t size, std::uint64_t salt)
      : p_(p), left_(size), pos_((salt * 7919 * 4096) % Payload::kSize) {}
  upstream::Awaitable<boost::system::result<std::size_t>> read(asio::mutable_buffer buf) override {
    started_ = true;
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>({buf.size(), left_, Payload::kSize - pos_}));
    std::memcpy(buf.data(), p_.block().data() + pos_, n);
    pos_ = (pos_ + n) % Payload::kSize;
    left_ -= n;
    co_return n;
  }
  bool started() const override { return started_; }

 private:
  const Payload& p_;
  std::uint64_t left_;
  std::size_t pos_;
  bool started_ = false;
};

enum class TaskKind { Get, Put, Stat, List, Delete, PartGet };
struct Task {
  TaskKind kind = TaskKind::Get;
  std::size_t index = 0;
};

struct Phase {
  enum class Kind { Prepare, Sequence, Timed, Deletes } kind = Kind::Timed;
  std::string category = "run";
  std::vector<std::size_t> order;  // Sequence: the objects, in the order they are read
  std::atomic<std::size_t> next{0};
  Clock::time_point deadline;
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> bytes{0}, ops{0};
  double wallSeconds = 0;
};

struct ThreadCtx {
  asio::io_context ioc{1};
  std::unique_ptr<HttpUpstream> up;
  std::vector<OpRecord> records;
  std::mt19937_64 rng;
  // Bodies nobody reads (GET, PUT answers) land here, from every worker of the thread at once.
  std::vector<char> sink = std::vector<char>(256 * 1024);
};

int cacheStatusOf(const upstream::ResponseHeader& h) {
  if (auto g = h["x-granary-cache"]; !g.empty()) return g == "hit" ? 1 : 0;
  if (auto n = h["x-cache-status"]; !n.empty()) return n == "HIT" ? 1 : 0;  // nginx's $upstream_cache_status
  return -1;
}

class Bench {
 public:
  explicit Bench(const Options& o) : o_(o), payload_(o.seed ? o.seed : std::random_device{}()) {}
  int run();

 private:
  template <class T>
  T sync(asio::awaitable<T> a) {
    auto& t = *threads_[0];
    auto f = asio::co_spawn(t.ioc, std::move(a), asio::use_future);
    t.ioc.run();
    t.ioc.restart();
    return f.get();
  }
  void runPhase(Phase& ph);
  asio::awaitable<void> worker(ThreadCtx& t, Phase& ph, std::uint32_t id);
  bool nextTask(ThreadCtx& t, Phase& ph, Task& task);
  std::size_t pick(ThreadCtx& t);
  std::uint64_t sizeFor(std::size_t index) const;
  OpRecord begin(std::uint32_t id, const char* op, const std::string& key, const Phase& ph) const;
  void end(ThreadCtx& t, Phase& ph, OpRecord& rec);

  asio::awaitable<void> doGet(ThreadCtx& t, Phase& ph, std::uint32_t id, std::size_t index, std::size_t part);
  asio::awaitable<void> doPut(ThreadCtx& t, Phase& ph, std::uint32_t id, std::size_t index);
  asio::awaitable<void> doStat(ThreadCtx& t, Phase& ph, std::uint32_t id, std::size_t index);
  asio::awaitable<void> doList(ThreadCtx& t, Phase& ph, std::uint32_t id);
  asio::awaitable<void> doDelete(ThreadCtx& t, Phase& ph, std::uint32_t id, std::size_t first);

  asio::awaitable<std::string> ensureBucket();
  asio::awaitable<std::string> listPrefix(std::vector<Object>& out);
  asio::awaitable<std::string> deleteKeys(std::vector<std::string> keys);
  asio::awaitable<std::string> prepareMultipart();
  void report(const std::vector<Phase*>& phases);

  Options o_;
  Payload payload_;
  std::vector<std::unique_ptr<ThreadCtx>> threads_;
  std::vector<Object> objects_;
  std::vector<std::uint8_t> alive_;  // mixed: deleted objects are not read until put again
  std::mutex aliveMu_;
  std::vector<double> zipfCdf_;
  std::vector<std::size_t> zipfRank_;  // rank -> object
  std::atomic<std::size_t> putCounter_{0};
  std::vector<std::string> listTokens_;  // per worker
  std::size_t partsCount_ = 0;
  std::mt19937_64 rng_;
};

std::uint64_t Bench::sizeFor(std::size_t index) const {
  if (!o_.randSize) return o_.objSize;
  // Warp's --obj.randsize: log2-distributed sizes up to obj.size (deterministic per object), from
  // --obj.minsize when given.
  std::mt19937_64 r(index * 2654435761u + 17);
  const double maxLog = std::log2(static_cast<double>(std::max<std::uint64_t>(o_.objSize, 2)));
  const double minLog = o_.minSize ? std::min(maxLog, std::log2(static_cast<double>(o_.minSize))) : 0;
  const double l = std::uniform_real_distribution<double>(minLog, maxLog)(r);
  return std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::exp2(l)));
}

std::size_t Bench::pick(ThreadCtx& t) {
  const std::size_t n = objects_.size();
  if (!zipfCdf_.empty()) {
    const double u = std::uniform_real_distribution<double>(0, 1)(t.rng);
    const auto it = std::lower_bound(zipfCdf_.begin(), zipfCdf_.end(), u);
    return zipfRank_[std::min<std::size_t>(static_cast<std::size_t>(it - zipfCdf_.begin()), n - 1)];
  }
  return t.rng() % n;
}

OpRecord Bench::begin(std::uint32_t id, const char* op, const std::string& key, const Phase& ph) const {
  OpRecord r;
  r.thread = id;
  r.op = op;
  r.key = key;
  r.category = ph.category;
  r.startNs = nowNs();
  return r;
}

void Bench::end(ThreadCtx& t, Phase& ph, OpRecord& rec) {
  rec.endNs = nowNs();
  if (rec.firstByteNs == 0) rec.firstByteNs = rec.endNs;
  if (rec.error.empty()) {
    ph.bytes += rec.bytes;
    ph.ops += 1;
  }
  t.records.push_back(std::move(rec));
}

bool Bench::nextTask(ThreadCtx& t, Phase& ph, Task& task) {
  if (ph.stop) return false;
  switch (ph.kind) {
    case Phase::Kind::Prepare: {
      const std::size_t i = ph.next++;
      task = {TaskKind::Put, i};
      return i < objects_.size();
    }
    case Phase::Kind::Sequence: {
      const std::size_t i = ph.next++;
      if (i >= ph.order.size()) return false;
      task = {TaskKind::Get, ph.order[i]};
      return true;
    }
    case Phase::Kind::Deletes: {
      const std::size_t i = ph.next.fetch_add(o_.batch);
      task = {TaskKind::Delete, i};
      return i < objects_.size();
    }
    case Phase::Kind::Timed:
      break;
  }
  if (Clock::now() >= ph.deadline) return false;
  if (o_.mode == "get") task = {TaskKind::Get, pick(t)};
  else if (o_.mode == "stat") task = {TaskKind::Stat, pick(t)};
  else if (o_.mode == "put") task = {TaskKind::Put, putCounter_++};
  else if (o_.mode == "list") task = {TaskKind::List, 0};
  else if (o_.mode == "multipart") task = {TaskKind::PartGet, 1 + t.rng() % partsCount_};
  else {  // mixed
    const double total = o_.getDistrib + o_.statDistrib + o_.putDistrib + o_.deleteDistrib;
    const double u = std::uniform_real_distribution<double>(0, total)(t.rng);
    std::size_t i = pick(t);
    std::lock_guard lk(aliveMu_);
    bool put = u >= o_.getDistrib + o_.statDistrib + o_.deleteDistrib;
    if (!put) {
      for (int tries = 0; tries < 16 && alive_[i] != 1; ++tries) i = pick(t);
      put = alive_[i] != 1;  // (nothing readable found: write one back instead)
    }
    if (!put && u < o_.getDistrib) {
      task = {TaskKind::Get, i};
    } else if (!put && u < o_.getDistrib + o_.statDistrib) {
      task = {TaskKind::Stat, i};
    } else if (!put) {
      alive_[i] = 0;
      task = {TaskKind::Delete, i};
    } else {
      // A PUT brings back a deleted object when there is one, so the pool stays about its size.
      const std::size_t n = alive_.size(), from = t.rng() % n;
      for (std::size_t k = 0; k < n; ++k)
        if (alive_[(from + k) % n] == 0) {
          i = (from + k) % n;
          break;
        }
      alive_[i] = 2;  // being written: readable once the PUT ends
      task = {TaskKind::Put, i};
    }
  }
  return true;
}

asio::awaitable<void> Bench::worker(ThreadCtx& t, Phase& ph, std::uint32_t id) {
  Task task;
  while (nextTask(t, ph, task)) {
    switch (task.kind) {
      case TaskKind::Get: co_await doGet(t, ph, id, task.index, 0); break;
      case TaskKind::PartGet: co_await doGet(t, ph, id, 0, task.index); break;
      case TaskKind::Put: co_await doPut(t, ph, id, task.index); break;
      case TaskKind::Stat: co_await doStat(t, ph, id, task.index); break;
      case TaskKind::List: co_await doList(t, ph, id); break;
      case TaskKind::Delete: co_await doDelete(t, ph, id, task.index); break;
    }
  }
}

asio::awaitable<void> Bench::doGet(ThreadCtx& t, Phase& ph, std::uint32_t id, std::size_t index, std::size_t part) {
  const Object& obj = objects_[index];
  OpRecord rec = begin(id, "GET", obj.key, ph);
  UpstreamRequest r;
  r.method = bhttp::verb::get;
  r.bucket = o_.bucket;
  r.key = obj.key;
  if (part > 0) r.query.emplace_back("partNumber", std::to_string(part));
  if (o_.range && obj.size > 1 && part == 0) {
    const std::uint64_t len = o_.rangeSize ? std::min(o_.rangeSize, obj.size) : 1 + t.rng() % obj.size;
    const std::uint64_t off = t.rng() % (obj.size - len + 1);
    r.headers.emplace_back("range", "bytes=" + std::to_string(off) + "-" + std::to_string(off + len - 1));
  }
  auto resp = co_await t.up->send(r);
  if (!resp) {
    rec.error = resp.error().message();
    end(t, ph, rec);
    co_return;
  }
  const unsigned status = (*resp)->header().result_int();
  rec.cache = cacheStatusOf((*resp)->header());
  for (;;) {
    auto n = co_await (*resp)->read(asio::buffer(t.sink));
    if (!n) {
      rec.error = "body: " + n.error().message();
      break;
    }
    if (*n == 0) break;
    if (rec.firstByteNs == 0) rec.firstByteNs = nowNs();
    rec.bytes += *n;
  }
  if (status != 200 && status != 206) rec.error = "HTTP " + std::to_string(status);
  end(t, ph, rec);
}

asio::awaitable<void> Bench::doPut(ThreadCtx& t, Phase& ph, std::uint32_t id, std::size_t index) {
  const bool fresh = o_.mode == "put" && ph.kind == Phase::Kind::Timed;
  const std::string key = fresh ? o_.prefix + "/put-" + std::to_string(index) : objects_[index].key;
  const std::uint64_t size = fresh ? sizeFor(index) : objects_[index].size;
  OpRecord rec = begin(id, "PUT", key, ph);
  GeneratedBody body(payload_, size, index);
  UpstreamRequest r;
  r.method = bhttp::verb::put;
  r.bucket = o_.bucket;
  r.key = key;
  r.contentLength = size;
  r.headers.emplace_back("content-type", "application/octet-stream");
  if (o_.sha256Payload) {
    Digest h(Digest::Kind::Sha256);
    GeneratedBody copy(payload_, size, index);
    std::vector<char> buf(1 << 20);
    for (;;) {
      auto n = co_await copy.read(asio::buffer(buf));
      if (!n || *n == 0) break;
      h.update(buf.data(), *n);
    }
    r.payloadHash = h.finishHex();
  } else {
    r.payloadHash = std::string(sigv4::kUnsignedPayload);
  }
  r.source = &body;
  auto resp = co_await t.up->send(r);
  rec.firstByteNs = nowNs();
  if (!resp) {
    rec.error = resp.error().message();
  } else {
    const unsigned status = (*resp)->header().result_int();
    for (;;) {
      auto n = co_await (*resp)->read(asio::buffer(t.sink));
      if (!n || *n == 0) break;
    }
    if (status != 200) rec.error = "HTTP " + std::to_string(status);
    else rec.bytes = size;
  }
  if (o_.mode == "mixed" && ph.kind == Phase::Kind::Timed) {
    std::lock_guard lk(aliveMu_);
    if (alive_[index] == 2) alive_[index] = 1;
  }
  end(t, ph, rec);
}

asio::awaitable<void> Bench::doStat(ThreadCtx& t, Phase& ph, std::uint32_t id, std::size_t index) {
  OpRecord rec = begin(id, "STAT", objects_[index].key, ph);
  UpstreamRequest r;
  r.method = bhttp::verb::head;
  r.bucket = o_.bucket;
  r.key = objects_[index].key;
  auto resp = co_await t.up->send(r);
  rec.firstByteNs = nowNs();
  if (!resp) {
    rec.error = resp.error().message();
  } else {
    rec.cache = cacheStatusOf((*resp)->header());
    const unsigned status = (*resp)->header().result_int();
    for (;;) {
      auto n = co_await (*resp)->read(asio::buffer(t.sink));
      if (!n || *n == 0) break;
    }
    if (status != 200) rec.error = "HTTP " + std::to_string(status);
  }
  end(t, ph, rec);
}

asio::awaitable<void> Bench::doList(ThreadCtx& t, Phase& ph, std::uint32_t id) {
  OpRecord rec = begin(id, "LIST", o_.prefix + "/", ph);
  UpstreamRequest r;
  r.method = bhttp::verb::get;
  r.bucket = o_.bucket;
  r.query = {{"list-type", "2"}, {"prefix", o_.prefix + "/"}, {"max-keys", std::to_string(o_.maxKeys)}};
  std::string& token = listTokens_[id];
  if (!token.empty()) r.query.emplace_back("continuation-token", token);
  auto resp = co_await t.up->send(r);
  rec.firstByteNs = nowNs();
  std::string body;
  if (!resp) {
    rec.error = resp.error().message();
    end(t, ph, rec);
    co_return;
  }
  const unsigned status = (*resp)->header().result_int();
  std::vector<char> buf(64 * 1024);  // (not the thread's shared sink: this body is read)
  for (;;) {
    auto n = co_await (*resp)->read(asio::buffer(buf));
    if (!n || *n == 0) break;
    body.append(buf.data(), *n);
  }
  pugi::xml_document doc;
  if (status != 200 || !doc.load_buffer(body.data(), body.size())) {
    rec.error = "HTTP " + std::to_string(status) + " " + doc.document_element().child_value("Code");
  } else {
    auto root = doc.document_element();
    rec.objects = 0;
    for (auto c = root.child("Contents"); c; c = c.next_sibling("Contents")) ++rec.objects;
    rec.bytes = body.size();
    token = std::string_view(root.child_value("IsTruncated")) == "true" ? root.child_value("NextContinuationToken") : "";
  }
  end(t, ph, rec);
}

/// The DeleteObjects body and its Content-MD5.
std::pair<std::string, std::string> deleteBody(const std::vector<std::string>& keys) {
  pugi::xml_document doc;
  auto root = doc.append_child("Delete");
  root.append_child("Quiet").text() = "true";
  for (const auto& k : keys) root.append_child("Object").append_child("Key").text() = k.c_str();
  std::ostringstream os;
  doc.save(os, "", pugi::format_raw);
  std::string xml = os.str();
  Digest d(Digest::Kind::Md5);
  d.update(xml);
  const std::string md5 = d.finish();
  return {xml, base64Encode(md5.data(), md5.size())};
}

asio::awaitable<void> Bench::doDelete(ThreadCtx& t, Phase& ph, std::uint32_t id, std::size_t first) {
  std::vector<std::string> keys;
  const std::size_t count = o_.mode == "mixed" ? 1 : std::min(o_.batch, objects_.size() - first);
  for (std::size_t i = first; i < first + count; ++i) keys.push_back(objects_[i].key);
  OpRecord rec = begin(id, "DELETE", keys.front(), ph);
  rec.objects = static_cast<std::uint32_t>(keys.size());
  UpstreamRequest r;
  r.bucket = o_.bucket;
  if (o_.mode == "mixed") {  // a single DeleteObject
    r.method = bhttp::verb::delete_;
    r.key = keys.front();
  } else {
    r.method = bhttp::verb::post;
    r.query = {{"delete", ""}};
    auto [xml, md5] = deleteBody(keys);
    r.headers.emplace_back("content-md5", md5);
    r.headers.emplace_back("content-type", "application/xml");
    r.payloadHash = sha256Hex(xml);
    r.contentLength = xml.size();
    r.bufferedBody = std::move(xml);
  }
  auto resp = co_await t.up->send(r);
  rec.firstByteNs = nowNs();
  if (!resp) {
    rec.error = resp.error().message();
  } else {
    const unsigned status = (*resp)->header().result_int();
    std::string body;
    std::vector<char> buf(16 * 1024);  // (not the thread's shared sink: this body is read)
    for (;;) {
      auto n = co_await (*resp)->read(asio::buffer(buf));
      if (!n || *n == 0) break;
      body.append(buf.data(), *n);
    }
    if (status != 200 && status != 204) rec.error = "HTTP " + std::to_string(status);
    else if (body.find("<Error>") != std::string::npos) rec.error = "DeleteObjects: some keys failed";
  }
  end(t, ph, rec);
}

/// A request with no body, sent from the setup (bucket, listing, cleanup): status and body.
asio::awaitable<std::pair<unsigned, std::string>> simple(HttpUpstream& up, UpstreamRequest& r) {
  auto resp = co_await up.send(r);
  if (!resp) co_return std::make_pair(0u, resp.error().message());
  std::string body;
  std::vector<char> buf(64 * 1024);
  for (;;) {
    auto n = co_await (*resp)->read(asio::buffer(buf));
    if (!n || *n == 0) break;
    body.append(buf.data(), *n);
  }
  co_return std::make_pair((*resp)->header().result_int(), std::move(body));
}

asio::awaitable<std::string> Bench::ensureBucket() {
  UpstreamRequest head;
  head.method = bhttp::verb::head;
  head.bucket = o_.bucket;
  auto [status, body] = co_await simple(*threads_[0]->up, head);
  if (status == 200) co_return std::string();
  if (status != 404) co_return "HEAD bucket " + o_.bucket + ": " + (status ? "HTTP " + std::to_string(status) : body);
  UpstreamRequest create;
  create.method = bhttp::verb::put;
  create.bucket = o_.bucket;
  auto [cstatus, cbody] = co_await simple(*threads_[0]->up, create);
  if (cstatus != 200) co_return "creating bucket " + o_.bucket + ": HTTP " + std::to_string(cstatus) + " " + cbody.substr(0, 300);
  co_return std::string();
}

asio::awaitable<std::string> Bench::listPrefix(std::vector<Object>& out) {
  std::string token;
  for (;;) {
    UpstreamRequest r;
    r.method = bhttp::verb::get;
    r.bucket = o_.bucket;
    r.query = {{"list-type", "2"}, {"prefix", o_.prefix.empty() ? std::string() : o_.prefix + "/"}, {"max-keys", "1000"}};
    if (!token.empty()) r.query.emplace_back("continuation-token", token);
    auto [status, body] = co_await simple(*threads_[0]->up, r);
    pugi::xml_document doc;
    if (status != 200 || !doc.load_buffer(body.data(), body.size()))
      co_return "listing " + o_.bucket + ": HTTP " + std::to_string(status) + " " + body.substr(0, 300);
    auto root = doc.document_element();
    for (auto c = root.child("Contents"); c; c = c.next_sibling("Contents"))
      out.push_back({c.child_value("Key"), std::strtoull(c.child_value("Size"), nullptr, 10)});
    if (std::string_view(root.child_value("IsTruncated")) != "true") break;
    token = root.child_value("NextContinuationToken");
  }
  co_return std::string();
}

asio::awaitable<std::string> Bench::deleteKeys(std::vector<std::string> keys) {
  for (std::size_t i = 0; i < keys.size(); i += 1000) {
    std::vector<std::string> batch(keys.begin() + static_cast<std::ptrdiff_t>(i),
                                   keys.begin() + static_cast<std::ptrdiff_t>(std::min(keys.size(), i + 1000)));
    auto [xml, md5] = deleteBody(batch);
    UpstreamRequest r;
    r.method = bhttp::verb::post;
    r.bucket = o_.bucket;
    r.query = {{"delete", ""}};
    r.headers.emplace_back("content-md5", md5);
    r.payloadHash = sha256Hex(xml);
    r.contentLength = xml.size();
    r.bufferedBody = std::move(xml);
    auto [status, body] = co_await simple(*threads_[0]->up, r);
    if (status != 200) co_return "cleanup: HTTP " + std::to_string(status) + " " + body.substr(0, 300);
  }
  co_return std::string();
}

asio::awaitable<std::string> Bench::prepareMultipart() {
  HttpUpstream& up = *threads_[0]->up;
  const std::string key = o_.prefix + "/multipart.bin";
  UpstreamRequest create;
  create.method = bhttp::verb::post;
  create.bucket = o_.bucket;
  create.key = key;
  create.query = {{"uploads", ""}};
  auto [cstatus, cbody] = co_await simple(up, create);
  pugi::xml_document doc;
  doc.load_buffer(cbody.data(), cbody.size());
  const std::string uploadId = doc.document_element().child_value("UploadId");
  if (cstatus != 200 || uploadId.empty()) co_return "CreateMultipartUpload: HTTP " + std::to_string(cstatus);
  pugi::xml_document complete;
  auto root = complete.append_child("CompleteMultipartUpload");
  for (std::size_t n = 1; n <= o_.parts; ++n) {
    GeneratedBody body(payload_, o_.partSize, n);
    UpstreamRequest r;
    r.method = bhttp::verb::put;
    r.bucket = o_.bucket;
    r.key = key;
    r.query = {{"partNumber", std::to_string(n)}, {"uploadId", uploadId}};
    r.contentLength = o_.partSize;
    r.payloadHash = std::string(sigv4::kUnsignedPayload);
    r.source = &body;
    auto resp = co_await up.send(r);
    if (!resp || (*resp)->header().result_int() != 200) co_return "UploadPart " + std::to_string(n) + " failed";
    const std::string etag((*resp)->header()[bhttp::field::etag]);
    std::vector<char> sink(4096);
    for (;;) {
      auto m = co_await (*resp)->read(asio::buffer(sink));
      if (!m || *m == 0) break;
    }
    auto p = root.append_child("Part");
    p.append_child("PartNumber").text() = std::to_string(n).c_str();
    p.append_child("ETag").text() = etag.c_str();
  }
  std::ostringstream os;
  complete.save(os, "", pugi::format_raw);
  UpstreamRequest done;
  done.method = bhttp::verb::post;
  done.bucket = o_.bucket;
  done.key = key;
  done.query = {{"uploadId", uploadId}};
  done.bufferedBody = os.str();
  done.contentLength = done.bufferedBody.size();
  done.payloadHash = sha256Hex(done.bufferedBody);
  auto [status, body] = co_await simple(up, done);
  if (status != 200 || body.find("CompleteMultipartUploadResult") == std::string::npos)
    co_return "CompleteMultipartUpload: HTTP " + std::to_string(status);
  objects_.push_back({key, o_.partSize * o_.parts});
  partsCount_ = o_.parts;
  co_return std::string();
}

void Bench::runPhase(Phase& ph) {
  const auto t0 = Clock::now();
  for (std::size_t w = 0; w < o_.concurrent; ++w) {
    auto& t = *threads_[w % threads_.size()];
    asio::co_spawn(t.ioc, worker(t, ph, static_cast<std::uint32_t>(w)), asio::detached);
  }
  std::vector<std::thread> running;
  for (auto& t : threads_) running.emplace_back([&ctx = *t] { ctx.ioc.run(); });
  if (ph.kind == Phase::Kind::Timed && o_.autoterm) {
    // Warp's autoterm: stop once the throughput of the last 7 one-second samples stays within ±pct.
    std::vector<double> rates;
    std::uint64_t lastBytes = 0, lastOps = 0;
    while (Clock::now() < ph.deadline && !ph.stop) {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      const std::uint64_t b = ph.bytes, n = ph.ops;
      rates.push_back(b > lastBytes ? static_cast<double>(b - lastBytes) : static_cast<double>(n - lastOps));
      lastBytes = b;
      lastOps = n;
      if (rates.size() < 7 || Clock::now() - t0 < o_.autotermDur) continue;
      const auto [lo, hi] = std::minmax_element(rates.end() - 7, rates.end());
      const double mean = std::accumulate(rates.end() - 7, rates.end(), 0.0) / 7;
      if (mean > 0 && (*hi - mean) / mean * 100 <= o_.autotermPct && (mean - *lo) / mean * 100 <= o_.autotermPct) {
        if (!o_.quiet) std::cerr << "autoterm: throughput stable for 7 s, stopping\n";
        ph.stop = true;
      }
    }
  }
  for (auto& th : running) th.join();
  for (auto& t : threads_) t->ioc.restart();
  ph.wallSeconds = std::chrono::duration<double>(Clock::now() - t0).count();
}

void Bench::report(const std::vector<Phase*>& phases) {
  std::vector<OpRecord> all;
  for (auto& t : threads_) {
    std::move(t->records.begin(), t->records.end(), std::back_inserter(all));
    t->records.clear();
  }
  std::sort(all.begin(), all.end(), [](const OpRecord& a, const OpRecord& b) { return a.startNs < b.startNs; });
  const auto summaries = summarize(all);
  for (const auto& s : summaries) {
    if (s.category == "prepare") continue;
    printReport(std::cout, s, o_.concurrent);
    std::cout << "\n";
  }
  if (o_.access == "epoch") {
    std::cout << "Epochs (every object once, in a new shuffled order each time):\n";
    for (const auto* ph : phases)
      for (const auto& s : summaries)
        if (s.category == ph->category && s.op == "GET")
          std::printf(" * %s: %.2f s wall, %.2f MiB/s, %.0f obj/s, hit ratio %.1f%%\n", ph->category.c_str(),
                      ph->wallSeconds, s.bytes / 1048576.0 / ph->wallSeconds, s.objects / ph->wallSeconds,
                      s.hits + s.misses ? 100.0 * static_cast<double>(s.hits) / static_cast<double>(s.hits + s.misses) : 0.0);
    std::fflush(stdout);
  }
  if (!o_.jsonFile.empty()) {
    json::array sums, phs;
    for (const auto& s : summaries) sums.push_back(s.json());
    for (const auto* ph : phases) phs.push_back(json::object{{"category", ph->category}, {"wall_seconds", ph->wallSeconds}});
    json::object doc{{"tool", "granary-bench"},
                     {"mode", o_.mode},
                     {"host", o_.host},
                     {"bucket", o_.bucket},
                     {"concurrency", o_.concurrent},
                     {"threads", o_.threads},
                     {"access", o_.access},
                     {"obj_size", o_.objSize},
                     {"objects", objects_.size()},
                     {"summaries", std::move(sums)},
                     {"phases", std::move(phs)}};
    std::ofstream(o_.jsonFile) << json::serialize(doc) << "\n";
  }
  if (!o_.csvFile.empty()) {
    std::ofstream f(o_.csvFile);
    writeTsv(f, all, o_.host);
  }
}

int Bench::run() {
  rng_.seed(o_.seed ? o_.seed : std::random_device{}());
  if (o_.prefix.empty()) {
    static const char kAlnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    for (int i = 0; i < 8; ++i) o_.prefix.push_back(kAlnum[rng_() % 36]);
  }
  const auto endpoint = upstream::parseEndpoint((o_.tls ? "https://" : "http://") + o_.host);
  if (!endpoint) {
    std::cerr << "granary-bench: --host " << o_.host << " is not HOST:PORT\n";
    return 2;
  }
  const std::size_t nThreads = std::max<std::size_t>(1, std::min(o_.threads, o_.concurrent));
  for (std::size_t i = 0; i < nThreads; ++i) {
    auto t = std::make_unique<ThreadCtx>();
    t->rng.seed(rng_());
    upstream::HttpUpstreamOptions uo;
    uo.endpoint = *endpoint;
    uo.region = o_.region;
    uo.credentials = {o_.accessKey, o_.secretKey, {}};
    uo.verifyTls = !o_.insecure;
    uo.pool.maxConnections = o_.concurrent / nThreads + 2;
    uo.pool.idleTimeout = std::chrono::seconds(30);
    uo.retry.maxAttempts = 1;  // a failure is counted, not hidden
    uo.readTimeout = std::chrono::seconds(120);
    t->up = std::make_unique<HttpUpstream>(t->ioc.get_executor(), uo);
    threads_.push_back(std::move(t));
  }
  listTokens_.resize(o_.concurrent);
  auto fail = [&](const std::string& why) {
    std::cerr << "granary-bench: " << why << "\n";
    for (auto& t : threads_) t->up->shutdown();
    return 1;
  };
  if (auto err = sync(ensureBucket()); !err.empty()) return fail(err);

  std::vector<std::unique_ptr<Phase>> owned;
  std::vector<Phase*> phases;
  auto phase = [&](Phase::Kind kind, std::string category) -> Phase& {
    owned.push_back(std::make_unique<Phase>());
    owned.back()->kind = kind;
    owned.back()->category = std::move(category);
    phases.push_back(owned.back().get());
    return *owned.back();
  };

  // Objects: listed, or written by a prepare phase (Warp's).
  const bool needsObjects = o_.mode != "put" && o_.mode != "multipart";
  if (o_.mode == "multipart") {
    if (!o_.quiet) std::cerr << "preparing: one object of " << o_.parts << " parts of " << o_.partSize << " bytes\n";
    if (auto err = sync(prepareMultipart()); !err.empty()) return fail(err);
  } else if (needsObjects && o_.listExisting) {
    if (auto err = sync(listPrefix(objects_)); !err.empty()) return fail(err);
    if (objects_.empty()) return fail("--list-existing: no objects under " + o_.bucket + "/" + o_.prefix + "/");
    if (!o_.quiet) std::cerr << "using " << objects_.size() << " existing objects\n";
  } else if (needsObjects) {
    char name[32];
    for (std::size_t i = 0; i < o_.objects; ++i) {
      std::snprintf(name, sizeof name, "/obj-%08zu", i);
      objects_.push_back({o_.prefix + name, sizeFor(i)});
    }
    if (!o_.quiet) std::cerr << "preparing: " << objects_.size() << " objects\n";
    Phase& prep = phase(Phase::Kind::Prepare, "prepare");
    runPhase(prep);
  }
  alive_.assign(objects_.size(), 1);
  if (o_.access.starts_with("zipf:")) {
    const double theta = std::strtod(o_.access.c_str() + 5, nullptr);
    zipfCdf_.resize(objects_.size());
    double sum = 0;
    for (std::size_t i = 0; i < objects_.size(); ++i) zipfCdf_[i] = sum += 1.0 / std::pow(static_cast<double>(i + 1), theta);
    for (auto& c : zipfCdf_) c /= sum;
    zipfRank_.resize(objects_.size());
    std::iota(zipfRank_.begin(), zipfRank_.end(), 0);
    std::shuffle(zipfRank_.begin(), zipfRank_.end(), rng_);
  }

  auto shuffled = [&] {
    std::vector<std::size_t> order(objects_.size());
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng_);
    return order;
  };
  if (o_.mode == "get" && o_.access == "epoch") {
    for (std::size_t e = 1; e <= o_.epochs; ++e) {
      Phase& ph = phase(Phase::Kind::Sequence, "epoch-" + std::to_string(e));
      ph.order = shuffled();
      runPhase(ph);
      if (!o_.quiet) std::cerr << ph.category << ": " << ph.wallSeconds << " s\n";
    }
  } else if (o_.mode == "delete") {
    Phase& ph = phase(Phase::Kind::Deletes, "run");
    runPhase(ph);
  } else {
    if (o_.coldPass && (o_.mode == "get" || o_.mode == "stat")) {
      Phase& cold = phase(Phase::Kind::Sequence, "cold");
      cold.order = shuffled();
      runPhase(cold);
    }
    Phase& ph = phase(Phase::Kind::Timed, o_.coldPass ? "warm" : "run");
    ph.deadline = Clock::now() + o_.duration;
    runPhase(ph);
  }
  report(phases);

  if (!o_.noClear && !o_.listExisting && o_.mode != "delete") {
    std::vector<Object> left;
    if (auto err = sync(listPrefix(left)); err.empty()) {
      std::vector<std::string> keys;
      for (auto& l : left) keys.push_back(std::move(l.key));
      if (auto derr = sync(deleteKeys(std::move(keys))); !derr.empty()) std::cerr << "granary-bench: " << derr << "\n";
    }
  }
  for (auto& t : threads_) t->up->shutdown();
  return 0;
}

}  // namespace

int runBench(const Options& o) {
  Bench b(o);
  return b.run();
}

}  // namespace granary::bench

// The write-back service against an in-memory backend (tests/support/recording_upstream.h): uploads run in
// parallel up to the configured bound, a key's operations never travel at once and land in the order
// they were acknowledged, a failed upload is retried, requests waiting on a key wake when its upload
// lands, and the shutdown gate refuses new work while what is in flight ends and what is pending stays
// in the journal.

#include <catch2/catch.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <filesystem>
#include <thread>

#include "s3api/writeback_service.h"
#include "support/recording_upstream.h"
#include "support/run_awaitable.h"
#include "support/temp_dir.h"

using namespace granary;
using namespace granary::s3api;
namespace asio = boost::asio;
namespace fs = std::filesystem;
using testing::RecordingUpstream;
using boost::beast::http::verb;

namespace {

using granary::test::TempDir;

/// (co_spawn wants a default-constructible result, which S3Result is not.)
template <class T>
asio::awaitable<std::optional<T>> wrapped(asio::awaitable<T> a) {
  co_return co_await std::move(a);
}

/// Runs a coroutine to its end on a fresh io_context of the test thread.
template <class T>
T run(asio::awaitable<T> a) {
  asio::io_context ioc;
  auto f = asio::co_spawn(ioc, wrapped(std::move(a)), asio::use_future);
  ioc.run();
  return *f.get();
}

void run(asio::awaitable<void> a) { granary::testing::runAwaitable(std::move(a)); }

class StringBody final : public upstream::BodySource {
 public:
  explicit StringBody(std::string s) : s_(std::move(s)) {}
  upstream::Awaitable<boost::system::result<std::size_t>> read(asio::mutable_buffer buf) override {
    const std::size_t n = std::min(buf.size(), s_.size() - at_);
    std::copy_n(s_.data() + at_, n, static_cast<char*>(buf.data()));
    at_ += n;
    co_return n;
  }
  bool started() const override { return at_ > 0; }

 private:
  std::string s_;
  std::size_t at_ = 0;
};

/// A service over a spool in a temporary directory, uploading to one RecordingUpstream (backend 0).
struct Fixture {
  TempDir dir;
  RecordingUpstream* fake = nullptr;  // owned by the service once started
  std::shared_ptr<WriteBackService> service;
  BufferPool buffers{64 * 1024, 4};

  explicit Fixture(std::size_t concurrency, bool start = true) {
    WriteBackServiceOptions o;
    o.uploadConcurrency = concurrency;
    o.retryFirst = std::chrono::milliseconds(5);
    o.retryMax = std::chrono::milliseconds(20);
    o.waitLimit = std::chrono::seconds(10);
    service = std::make_shared<WriteBackService>(
        std::make_shared<cache::WriteBackSpool>(cache::WriteBackOptions{dir.path.string(), 1 << 20}), o);
    if (start) this->start();
  }
  void start() {
    service->start([this](asio::any_io_executor) {
      auto f = std::make_unique<RecordingUpstream>();
      fake = f.get();
      WriteBackService::Upstreams ups;
      ups.push_back(std::move(f));
      return ups;
    });
  }
  /// A client's PUT, acknowledged (stored and committed).
  bool put(const std::string& key, const std::string& data) {
    StringBody body(data);
    auto stored = run(service->storeData(body, data.size(), buffers));
    if (!stored || !*stored) return false;
    cache::PendingWrite w;
    w.seq = (*stored)->seq;
    w.size = (*stored)->size;
    w.etag = (*stored)->etag;
    w.bucket = "b";
    w.key = key;
    return run(service->commit(std::move(w))).ok();
  }
  bool remove(const std::string& key) {
    cache::PendingWrite w;
    w.isDelete = true;
    w.bucket = "b";
    w.key = key;
    return run(service->commit(std::move(w))).ok();
  }
  bool idle() {
    return run(service->waitIdle(WriteBackService::Clock::now() + std::chrono::seconds(10)));
  }
};

std::vector<std::string> requestsOf(const std::vector<RecordingUpstream::Request>& all, const std::string& key) {
  std::vector<std::string> out;
  for (const auto& r : all)
    if (r.key == key) out.push_back((r.method == verb::delete_ ? "DELETE " : "PUT ") + r.body);
  return out;
}

}  // namespace

TEST_CASE("write-back service: uploads run in parallel up to the bound", "[s3api]") {
  Fixture f(3);
  for (int i = 0; i < 4; ++i) f.fake->hold("k" + std::to_string(i));  // the first uploads wait at the backend
  for (int i = 0; i < 10; ++i) REQUIRE(f.put("k" + std::to_string(i), "data " + std::to_string(i)));
  REQUIRE(f.fake->waitFor([](const RecordingUpstream& u) { return u.inFlightAll == 3; }));
  CHECK(f.service->uploadsInFlight() == 3);
  CHECK(f.fake->record().empty());  // every slot is taken: nothing else started
  for (int i = 0; i < 4; ++i) f.fake->release("k" + std::to_string(i));
  REQUIRE(f.idle());
  CHECK(f.fake->maxInFlight() == 3);
  const auto objects = f.fake->stored();
  REQUIRE(objects.size() == 10);
  for (int i = 0; i < 10; ++i) CHECK(objects.at("k" + std::to_string(i)) == "data " + std::to_string(i));
  CHECK(f.service->pendingObjects() == 0);
}

TEST_CASE("write-back service: a key's operations never travel at once and land in order", "[s3api]") {
  Fixture f(4);
  f.fake->hold("k");
  REQUIRE(f.put("k", "v1"));
  REQUIRE(f.fake->waitFor([](const RecordingUpstream& u) { return u.inFlightAll == 1; }));
  // While v1 is on its way: a newer write (superseded at once by the delete), the delete, another key.
  REQUIRE(f.put("k", "v2"));
  REQUIRE(f.remove("k"));
  REQUIRE(f.put("other", "o"));
  REQUIRE(f.fake->waitFor([](const RecordingUpstream& u) { return u.objects.count("other") == 1; }));
  CHECK(f.service->find(0, "b", "k")->isDelete);  // clients see the delete meanwhile
  f.fake->release("k");
  REQUIRE(f.idle());
  CHECK(requestsOf(f.fake->record(), "k") == std::vector<std::string>{"PUT v1", "DELETE "});
  CHECK(f.fake->maxInFlightOf("k") == 1);
  CHECK(f.fake->stored().count("k") == 0);
}

TEST_CASE("write-back service: a failed upload is retried and its key's order kept", "[s3api]") {
  Fixture f(2);
  f.fake->failNext(3);
  REQUIRE(f.put("a", "a1"));
  REQUIRE(f.put("b", "b1"));
  REQUIRE(f.idle());
  REQUIRE(f.put("a", "a2"));
  REQUIRE(f.idle());
  const auto all = f.fake->record();
  CHECK(std::count_if(all.begin(), all.end(), [](const auto& r) { return !r.ok; }) == 3);
  std::vector<std::string> landed;
  for (const auto& r : all)
    if (r.ok && r.key == "a") landed.push_back(r.body);
  CHECK(landed == std::vector<std::string>{"a1", "a2"});
  CHECK(f.fake->stored() == std::map<std::string, std::string>{{"a", "a2"}, {"b", "b1"}});
}

TEST_CASE("write-back service: waits wake when the key's upload lands", "[s3api]") {
  Fixture f(2);
  f.fake->hold("k");
  REQUIRE(f.put("k", "v1"));
  REQUIRE(f.fake->waitFor([](const RecordingUpstream& u) { return u.inFlightAll == 1; }));
  std::thread releaser([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    f.fake->release("k");
  });
  // A write-through of the key: what is pending is superseded, and the upload in flight lands first.
  const auto t0 = std::chrono::steady_clock::now();
  run(f.service->supersede(SpoolKey{0, "b", "k"}, 0));
  const auto waited = std::chrono::steady_clock::now() - t0;
  releaser.join();
  CHECK(f.fake->record().size() == 1);  // it had landed when supersede returned
  CHECK(waited < std::chrono::seconds(5));
  const auto now = f.service->find(0, "b", "k");  // the pass-through, unless the uploader already took it
  CHECK((now == nullptr || now->passThrough));
  CHECK(run(f.service->waitUploaded(SpoolKey{0, "b", "k"})));  // a pass-through counts as uploaded
  REQUIRE(f.idle());
}

TEST_CASE("write-back service: the shutdown gate refuses new work; what is pending stays", "[s3api]") {
  TempDir keep;
  std::string spoolDir;
  {
    Fixture f(1);
    spoolDir = f.dir.path.string();
    f.fake->hold("slow");
    REQUIRE(f.put("slow", "in flight"));
    REQUIRE(f.fake->waitFor([](const RecordingUpstream& u) { return u.inFlightAll == 1; }));
    REQUIRE(f.put("queued", "not started"));  // concurrency 1: waits behind "slow"
    std::thread releaser([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      f.fake->release("slow");
    });
    f.service->stop();  // returns once the upload in flight has ended
    releaser.join();
    CHECK(f.service->uploadsInFlight() == 0);
    CHECK_FALSE(f.service->accepting());
    // The gate is closed: nothing new is taken.
    StringBody body("late");
    auto stored = run(f.service->storeData(body, 4, f.buffers));
    REQUIRE(stored.ok());
    CHECK_FALSE(stored->has_value());
    cache::PendingWrite w;
    w.isDelete = true;
    w.bucket = "b";
    w.key = "late";
    auto committed = run(f.service->commit(std::move(w)));
    REQUIRE_FALSE(committed.ok());
    CHECK(committed.error().error == S3Error::ServiceUnavailable);
    CHECK(f.service->find(0, "b", "slow") == nullptr);  // landed before stop() returned
    CHECK(f.service->find(0, "b", "queued") != nullptr);
    // The spool outlives this service: a new one (the next start) finds "queued" in the journal.
    fs::copy(spoolDir, keep.path, fs::copy_options::recursive);
  }
  cache::WriteBackSpool again(cache::WriteBackOptions{keep.path.string(), 1 << 20});
  CHECK(again.pendingObjects() == 1);
  REQUIRE(again.find(0, "b", "queued") != nullptr);
}

TEST_CASE("write-back service: a spooled multipart object is uploaded as the same parts", "[s3api]") {
  Fixture f(2);
  cache::SpoolUpload u;
  u.id = "granary-wb-1";
  u.bucket = "b";
  u.key = "mp";
  REQUIRE(run(f.service->beginUpload(u)).ok());
  for (std::uint32_t n = 1; n <= 2; ++n) {
    StringBody body("part " + std::to_string(n));
    auto stored = run(f.service->storeData(body, 6, f.buffers));
    REQUIRE((stored.ok() && stored->has_value()));
    cache::SpooledPart p{n, (*stored)->seq, 6, (*stored)->etag, 0};
    REQUIRE(run(f.service->addPart(u.id, p)).ok());
  }
  const auto open = f.service->findUpload(u.id);
  cache::PendingWrite w;
  w.bucket = "b";
  w.key = "mp";
  w.size = 12;
  w.etag = "\"x-2\"";
  for (const auto& [n, p] : open->parts) w.parts.push_back(p);
  REQUIRE(run(f.service->completeUpload(u.id, w)).ok());
  REQUIRE(f.idle());
  const auto all = f.fake->record();
  REQUIRE(all.size() == 4);  // create, part 1, part 2, complete
  CHECK(all[0].method == verb::post);
  CHECK(all[1].body == "part 1");
  CHECK(all[2].body == "part 2");
  CHECK(all[3].body.find("<PartNumber>2</PartNumber>") != std::string::npos);
  CHECK(run(f.service->abortUpload("granary-wb-none")).error().error == S3Error::NoSuchUpload);
}

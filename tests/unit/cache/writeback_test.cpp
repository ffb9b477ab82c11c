// The write-back spool on a real directory: durable commits survive a restart (a new spool replays the
// journal), completed and superseded operations do not, a torn last journal line and orphan data files
// are dropped, and the capacity bounds reservations.

#include <catch2/catch.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <filesystem>
#include <fstream>

#include "cache/writeback.h"

using namespace granary::cache;
namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("granary-wb-test-" + std::to_string(::getpid()) + "-" +
                                               std::to_string(std::rand()));
  ~TempDir() { fs::remove_all(path); }
};

template <class T>
T run(asio::awaitable<T> a) {
  asio::io_context ioc;
  auto f = asio::co_spawn(ioc, std::move(a), asio::use_future);
  ioc.run();
  return f.get();
}

void runVoid(asio::awaitable<void> a) {
  asio::io_context ioc;
  asio::co_spawn(ioc, std::move(a), asio::detached);
  ioc.run();
}

PendingWrite put(WriteBackSpool& s, const std::string& key, const std::string& data) {
  PendingWrite w;
  w.seq = *s.reserve(data.size());
  w.bucket = "b";
  w.key = key;
  w.size = data.size();
  w.etag = "\"e-" + key + "\"";
  w.headers = {{"content-type", "text/plain"}};
  std::ofstream(s.dataPath(w.seq), std::ios::binary) << data;
  return w;
}

}  // namespace

TEST_CASE("write-back spool: commits survive a restart, completed ones do not", "[cache]") {
  TempDir dir;
  std::uint64_t doneSeq = 0;
  {
    WriteBackSpool s({dir.path.string(), 1 << 20});
    REQUIRE(run(s.commit(put(s, "a", "alpha"))));
    REQUIRE(run(s.commit(put(s, "b", "beta"))));
    PendingWrite del;
    del.seq = *s.reserve(0);
    del.isDelete = true;
    del.bucket = "b";
    del.key = "c";
    REQUIRE(run(s.commit(del)));
    auto first = s.next();
    REQUIRE(first);
    CHECK(first->key == "a");
    doneSeq = first->seq;
    runVoid(s.complete(first));
    CHECK(s.pendingObjects() == 2);
  }
  WriteBackSpool s({dir.path.string(), 1 << 20});
  CHECK(s.pendingObjects() == 2);
  CHECK_FALSE(s.find(0, "b", "a"));
  auto b = s.find(0, "b", "b");
  REQUIRE(b);
  CHECK(b->etag == "\"e-b\"");
  CHECK(b->headers == std::vector<std::pair<std::string, std::string>>{{"content-type", "text/plain"}});
  CHECK(s.find(0, "b", "c")->isDelete);
  CHECK_FALSE(fs::exists(s.dataPath(doneSeq)));
  CHECK(s.list(0, "b", "").size() == 2);
}

TEST_CASE("write-back spool: deletes fit even when a smaller capacity replayed more pending bytes", "[cache]") {
  TempDir dir;
  {
    WriteBackSpool s({dir.path.string(), 100});
    REQUIRE(run(s.commit(put(s, "big", std::string(80, 'x')))));
  }
  WriteBackSpool s({dir.path.string(), 50});  // restarted with less room than is pending
  CHECK(s.pendingBytes() == 80);
  CHECK_FALSE(s.reserve(1).has_value());
  CHECK(s.reserve(0).has_value());
}

TEST_CASE("write-back spool: a newer operation on a key supersedes the pending one", "[cache]") {
  TempDir dir;
  WriteBackSpool s({dir.path.string(), 1 << 20});
  auto v1 = put(s, "k", "one");
  auto v2 = put(s, "k", "two!");
  REQUIRE(run(s.commit(v1)));
  REQUIRE(run(s.commit(v2)));
  CHECK(s.find(0, "b", "k")->size == 4);
  auto next = s.next();  // v1 is skipped: only the newest operation on a key is uploaded
  REQUIRE(next);
  CHECK(next->seq == v2.seq);
  CHECK(s.uploading(0, "b", "k"));
  s.failed(next);
  CHECK_FALSE(s.uploading(0, "b", "k"));
  CHECK(s.pendingObjects() == 1);
}

TEST_CASE("write-back spool: torn journal tail and orphan data are dropped, capacity bounds", "[cache]") {
  TempDir dir;
  std::uint64_t orphan = 0;
  {
    WriteBackSpool s({dir.path.string(), 10});
    REQUIRE(run(s.commit(put(s, "a", "12345"))));
    CHECK_FALSE(s.reserve(6).has_value());  // 5 + 6 > 10
    orphan = put(s, "never-committed", "xx").seq;  // its data file exists, its record never did
  }
  std::ofstream(dir.path / "writeback.journal", std::ios::app) << "{\"op\":\"put\",\"seq\":99,\"bu";
  WriteBackSpool s({dir.path.string(), 10});
  CHECK(s.pendingObjects() == 1);

  CHECK(s.pendingBytes() == 5);
  CHECK_FALSE(fs::exists(s.dataPath(orphan)));
  CHECK(s.reserve(5).has_value());
}

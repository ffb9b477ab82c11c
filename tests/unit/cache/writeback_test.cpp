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
#include <thread>

#include "cache/writeback.h"
#include "support/run_awaitable.h"
#include "support/temp_dir.h"

using namespace granary::cache;
namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace {

using granary::test::TempDir;

template <class T>
T run(asio::awaitable<T> a) {
  return granary::testing::runAwaitable(std::move(a));
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
    run(s.complete(first));
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

namespace {

SpooledPart part(WriteBackSpool& s, std::uint32_t n, const std::string& data) {
  SpooledPart p;
  p.number = n;
  p.seq = *s.reserve(data.size());
  p.size = data.size();
  p.etag = "\"p" + std::to_string(n) + "-" + data + "\"";
  std::ofstream(s.dataPath(p.seq), std::ios::binary) << data;
  return p;
}

SpoolUpload upload(const std::string& id, const std::string& key) {
  SpoolUpload u;
  u.id = id;
  u.bucket = "b";
  u.key = key;
  u.headers = {{"x-amz-meta-a", "1"}};
  return u;
}

}  // namespace

TEST_CASE("write-back spool: multipart parts are durable, survive a restart, and complete into one write", "[cache]") {
  TempDir dir;
  std::uint64_t replaced = 0;
  {
    WriteBackSpool s({dir.path.string(), 1000});
    REQUIRE(run(s.beginUpload(upload("u1", "big"))));
    REQUIRE(run(s.beginUpload(upload("u2", "gone"))));
    auto first = part(s, 1, "aaaa");
    replaced = first.seq;
    REQUIRE(run(s.addPart("u1", first)));
    REQUIRE(run(s.addPart("u1", part(s, 1, "AAAAA"))));  // part 1 again: the first one's data goes
    REQUIRE(run(s.addPart("u1", part(s, 2, "bb"))));
    REQUIRE(run(s.addPart("u1", part(s, 3, "ccc"))));
    REQUIRE(run(s.addPart("u2", part(s, 1, "zz"))));
    REQUIRE(run(s.abortUpload("u2")));
    CHECK_FALSE(run(s.abortUpload("u2")));
    CHECK_FALSE(run(s.addPart("nope", part(s, 1, "x"))));  // no such upload: refused, its space given back
    CHECK(s.uploads(0, "b", "").size() == 1);
  }
  WriteBackSpool s({dir.path.string(), 1000});  // kill -9 here: the open upload and its parts come back
  CHECK_FALSE(fs::exists(s.dataPath(replaced)));
  auto u = s.findUpload("u1");
  REQUIRE(u);
  CHECK_FALSE(s.findUpload("u2"));
  REQUIRE(u->parts.size() == 3);
  CHECK(u->parts.at(1).size == 5);
  CHECK(u->headers == std::vector<std::pair<std::string, std::string>>{{"x-amz-meta-a", "1"}});
  CHECK_FALSE(s.reserve(1000 - 10 + 1).has_value());  // the parts (5 + 2 + 3) still hold their space

  PendingWrite w;
  w.seq = *s.reserve(0);
  w.bucket = "b";
  w.key = "big";
  w.etag = "\"x-2\"";
  w.parts = {u->parts.at(1), u->parts.at(2)};  // part 3 not named by Complete
  w.size = 7;
  REQUIRE(run(s.completeUpload("u1", w)));
  CHECK_FALSE(s.findUpload("u1"));
  CHECK(s.find(0, "b", "big")->parts.size() == 2);
  CHECK(s.pendingBytes() == 7);
  auto next = s.next();
  REQUIRE(next);
  CHECK(next->seq == w.seq);
  run(s.complete(next));  // uploaded: every part's data goes
  CHECK(s.pendingObjects() == 0);
  CHECK(s.reserve(1000).has_value());
  s.release(0, 1000);
  WriteBackSpool again({dir.path.string(), 1000});
  CHECK(again.pendingObjects() == 0);
  CHECK_FALSE(again.findUpload("u1"));
  for (const auto& e : fs::directory_iterator(dir.path)) CHECK_FALSE(e.path().string().ends_with(".data"));
}

TEST_CASE("write-back spool: a completed multipart write survives a restart", "[cache]") {
  TempDir dir;
  std::vector<std::uint64_t> seqs;
  {
    WriteBackSpool s({dir.path.string(), 1000});
    REQUIRE(run(s.beginUpload(upload("u", "k"))));
    auto p1 = part(s, 1, "one");
    auto p2 = part(s, 2, "two");
    REQUIRE(run(s.addPart("u", p1)));
    REQUIRE(run(s.addPart("u", p2)));
    PendingWrite w;
    w.seq = *s.reserve(0);
    w.bucket = "b";
    w.key = "k";
    w.etag = "\"m-2\"";
    w.parts = {p1, p2};
    w.size = 6;
    REQUIRE(run(s.completeUpload("u", w)));
    seqs = {p1.seq, p2.seq};
  }
  WriteBackSpool s({dir.path.string(), 1000});
  CHECK_FALSE(s.findUpload("u"));
  auto p = s.find(0, "b", "k");
  REQUIRE(p);
  REQUIRE(p->parts.size() == 2);
  CHECK(p->parts[0].seq == seqs[0]);
  CHECK(p->parts[1].number == 2);
  CHECK(p->etag == "\"m-2\"");
  CHECK(fs::exists(s.dataPath(seqs[0])));
  CHECK(fs::exists(s.dataPath(seqs[1])));
  CHECK(s.pendingBytes() == 6);
}

TEST_CASE("write-back spool: the journal is compacted while running, and replays the same state", "[cache]") {
  TempDir dir;
  {
    WriteBackOptions o{dir.path.string(), 1 << 20};
    o.compactAfter = 20;
    WriteBackSpool s(o);
    for (int i = 0; i < 30; ++i) {
      REQUIRE(run(s.commit(put(s, "k" + std::to_string(i % 5), "v" + std::to_string(i)))));
      if (i % 5 == 4)  // the uploader catches up now and then: done records pile up
        while (auto p = s.next()) run(s.complete(p));
    }
    REQUIRE(run(s.commit(put(s, "last", "pending"))));
    REQUIRE(run(s.beginUpload(upload("u", "mp"))));
    REQUIRE(run(s.addPart("u", part(s, 1, "p1"))));
    // Without compaction: 31 puts + 30 done + 2 = 63 records. With it, a few live ones and what followed.
    // Compaction runs on the spool's thread after the mutation that called for it: allow it time to.
    for (int i = 0; i < 500 && s.journalRecords() >= 30; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    CHECK(s.journalRecords() < 30);
  }
  WriteBackSpool s({dir.path.string(), 1 << 20});
  CHECK(s.pendingObjects() == 1);
  REQUIRE(s.find(0, "b", "last"));
  CHECK_FALSE(s.find(0, "b", "k0"));
  REQUIRE(s.findUpload("u"));
  CHECK(s.findUpload("u")->parts.size() == 1);
}

// Found by fuzzing (tests/fuzz/corpus/writeback_journal/seed-done-negative, seed-done-fraction): a "done"
// record whose seq is not an unsigned integer made boost::json throw out of the replay, so the spool
// (and Granary) could not start.
TEST_CASE("write-back spool: a done record with a seq that is not an unsigned integer is ignored", "[cache]") {
  TempDir dir;
  {
    WriteBackSpool s({dir.path.string(), 100});
    REQUIRE(run(s.commit(put(s, "a", "12345"))));
  }
  std::ofstream(dir.path / "writeback.journal", std::ios::app)
      << "{\"op\":\"done\",\"seq\":-1}\n{\"op\":\"done\",\"seq\":1.5}\n{\"op\":\"done\",\"seq\":1e300}\n"
      << "{\"op\":\"done\",\"seq\":\"1\"}\n";
  WriteBackSpool s({dir.path.string(), 100});
  CHECK(s.pendingObjects() == 1);
  CHECK(s.find(0, "b", "a"));
}

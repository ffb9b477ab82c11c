// Prefetch in the loader's order: the window (which position to fetch next, within bytes and fetches in
// flight ahead of the reader) and the tracker (client reads move the reader; the jobs' orders by bucket).

#include <catch2/catch.hpp>

#include <thread>

#include "s3api/prefetch_tracker.h"
#include "s3api/prefetch_window.h"

using namespace granary::s3api;

namespace {
/// Starts every position the window allows now.
std::vector<std::size_t> drain(PrefetchWindow& w) {
  std::vector<std::size_t> started;
  while (auto i = w.next()) started.push_back(*i);
  return started;
}
}  // namespace

TEST_CASE("prefetch window: known sizes, bytes bound ahead of the reader", "[s3api][prefetch]") {
  // Ten objects of 100 bytes, a window of 350 bytes, 8 fetches at once: 3 start (400 would pass 350).
  PrefetchWindow w(10, std::vector<std::uint64_t>(10, 100), 350, 8);
  CHECK(drain(w) == std::vector<std::size_t>{0, 1, 2});
  CHECK(w.bytesAhead() == 300);
  CHECK(w.inFlight() == 3);
  w.finished(0, 100);
  w.finished(1, 100);
  w.finished(2, 100);
  CHECK(w.next() == std::nullopt);  // completed, but still ahead of a reader that has read nothing
  CHECK(w.bytesAhead() == 300);
  w.setReader(0);  // the reader read position 0: 100 bytes leave the window
  CHECK(w.bytesAhead() == 200);
  CHECK(drain(w) == std::vector<std::size_t>{3});
  w.setReader(2);
  CHECK(drain(w) == std::vector<std::size_t>{4, 5});
  CHECK(w.bytesAhead() == 300);
  w.setReader(1);  // lower: ignored
  CHECK(w.reader() == 2);
  CHECK(w.bytesAhead() == 300);
}

TEST_CASE("prefetch window: concurrency bounds the fetches in flight", "[s3api][prefetch]") {
  PrefetchWindow w(10, std::vector<std::uint64_t>(10, 1), 1'000'000, 2);
  CHECK(drain(w) == std::vector<std::size_t>{0, 1});
  w.finished(1, 1);
  CHECK(drain(w) == std::vector<std::size_t>{2});
  CHECK(w.inFlight() == 2);
}

TEST_CASE("prefetch window: a reader that overtakes skips what it read; the end", "[s3api][prefetch]") {
  PrefetchWindow w(6, std::vector<std::uint64_t>(6, 10), 20, 4);
  CHECK(drain(w) == std::vector<std::size_t>{0, 1});
  w.setReader(3);  // read 0..3 itself (0 and 1 joined the fills in flight)
  CHECK(w.bytesAhead() == 0);
  CHECK(drain(w) == std::vector<std::size_t>{4, 5});
  CHECK(w.skipped() == 2);  // 2 and 3
  CHECK_FALSE(w.done());
  w.finished(0, 10);  // behind the reader: nothing ahead changes
  w.finished(1, 10);
  CHECK(w.bytesAhead() == 20);
  w.finished(4, 10);
  w.finished(5, 10);
  CHECK(w.done());
  w.setReader(100);  // past the end: clamped
  CHECK(w.reader() == 5);
  CHECK(w.bytesAhead() == 0);
}

TEST_CASE("prefetch window: an object larger than the window still goes, one at a time", "[s3api][prefetch]") {
  PrefetchWindow w(3, {500, 500, 500}, 100, 8);
  CHECK(drain(w) == std::vector<std::size_t>{0});  // the next the reader needs
  w.finished(0, 500);
  CHECK(w.next() == std::nullopt);
  w.setReader(0);
  CHECK(drain(w) == std::vector<std::size_t>{1});
}

TEST_CASE("prefetch window: unknown sizes: one fetch first, then the mean, then the real size", "[s3api][prefetch]") {
  PrefetchWindow w(20, {}, 1000, 4);
  CHECK(drain(w) == std::vector<std::size_t>{0});  // nothing measured yet: one at a time
  w.finished(0, 100);  // the mean is now 100
  CHECK(w.bytesAhead() == 100);
  CHECK(drain(w) == std::vector<std::size_t>{1, 2, 3, 4});  // 4 in flight: the concurrency
  CHECK(w.bytesAhead() == 500);
  w.finished(1, 0);  // a failed fetch holds nothing
  CHECK(w.bytesAhead() == 400);
  w.finished(2, 400);  // larger than estimated: the real size counts
  CHECK(w.bytesAhead() == 700);
  w.setReader(1);  // 0 (100) and 1 (0) leave
  CHECK(w.bytesAhead() == 600);
  // The mean is (100 + 400) / 2 = 250: 600 + 250 fits in 1000, then 850 + 250 does not.
  CHECK(drain(w) == std::vector<std::size_t>{5});
  CHECK(w.bytesAhead() == 850);
}

TEST_CASE("prefetch order: reader position is the highest index read, first position of a repeated key",
          "[s3api][prefetch]") {
  PrefetchOrder o("b", {"k0", "k1", "k2", "k1", "k4"});
  CHECK(o.size() == 5);
  CHECK(o.indexOf("k1") == 1);
  CHECK(o.indexOf("nope") == -1);
  CHECK(o.reader() == -1);
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(o.noteRead("k2", t0 + std::chrono::seconds(5)));
  CHECK(o.reader() == 2);
  CHECK(o.noteRead("k0", t0 + std::chrono::seconds(6)));
  CHECK(o.reader() == 2);  // a maximum
  CHECK(o.lastRead() == t0 + std::chrono::seconds(6));
  CHECK_FALSE(o.noteRead("other", t0 + std::chrono::seconds(9)));
  CHECK(o.lastRead() == t0 + std::chrono::seconds(6));  // a key outside the order is no read of it
}

TEST_CASE("prefetch tracker: reads reach the orders of their bucket only; removed orders are left",
          "[s3api][prefetch]") {
  PrefetchTracker t;
  t.noteRead("b", "k1");  // no job: nothing to do
  CHECK(t.active() == 0);
  auto a = std::make_shared<PrefetchOrder>("b", std::vector<std::string>{"k0", "k1", "k2"});
  auto other = std::make_shared<PrefetchOrder>("c", std::vector<std::string>{"k0", "k1", "k2"});
  t.add(a);
  t.add(other);
  CHECK(t.active() == 2);
  t.noteRead("b", "k1");
  CHECK(a->reader() == 1);
  CHECK(other->reader() == -1);
  t.remove(a.get());
  CHECK(t.active() == 1);
  t.noteRead("b", "k2");
  CHECK(a->reader() == 1);
  t.remove(other.get());
  CHECK(t.active() == 0);
}

TEST_CASE("prefetch tracker: reads from several threads leave the maximum", "[s3api][prefetch]") {
  PrefetchTracker t;
  std::vector<std::string> keys;
  for (int i = 0; i < 1000; ++i) keys.push_back("k" + std::to_string(i));
  auto o = std::make_shared<PrefetchOrder>("b", keys);
  t.add(o);
  std::vector<std::thread> threads;
  for (int n = 0; n < 4; ++n)
    threads.emplace_back([&, n] {
      for (int i = n; i < 1000; i += 4) t.noteRead("b", keys[static_cast<std::size_t>(i)]);
    });
  for (auto& th : threads) th.join();
  CHECK(o->reader() == 999);
}

// Weighted rendezvous ranking (MemberSet::rank): shares follow weights, a join or a leave moves only the
// keys it wins or held, exclusion, and only Active members own.
#include <catch2/catch.hpp>

#include <map>
#include <string>

#include "cluster/member_set.h"

using namespace granary::cluster;

namespace {
Member member(std::string id, double weight = 1.0, MemberState state = MemberState::Active) {
  Member m;
  m.id = id;
  m.address = "127.0.0.1:" + std::to_string(9100 + id.size());
  m.weight = weight;
  m.state = state;
  return m;
}

std::string key(int i) { return "backend/bucket/object-" + std::to_string(i) + "/etag/0"; }

std::map<std::string, int> owners(const MemberSet& s, int n) {
  std::map<std::string, int> out;
  for (int i = 0; i < n; ++i) ++out[s.rank(key(i), 1).at(0)->id];
  return out;
}
}  // namespace

TEST_CASE("rank: deterministic, distinct, at most k, best first", "[unit]") {
  MemberSet s({member("a"), member("b"), member("c")}, "a");
  for (int i = 0; i < 100; ++i) {
    auto r = s.rank(key(i), 2);
    REQUIRE(r.size() == 2);
    CHECK(r[0]->id != r[1]->id);
    auto again = s.rank(key(i), 3);
    REQUIRE(again.size() == 3);
    CHECK(again[0] == r[0]);
    CHECK(again[1] == r[1]);
  }
  CHECK(s.rank(key(1), 10).size() == 3);
  CHECK(s.rank(key(1), 0).empty());
  CHECK(MemberSet({}, "a").rank(key(1), 2).empty());
}

TEST_CASE("rank: the order of members given does not matter", "[unit]") {
  MemberSet s1({member("a"), member("b"), member("c")}, "a");
  MemberSet s2({member("c"), member("a"), member("b")}, "b");
  for (int i = 0; i < 200; ++i) CHECK(s1.rank(key(i), 1)[0]->id == s2.rank(key(i), 1)[0]->id);
}

TEST_CASE("rank: equal weights share keys evenly", "[unit]") {
  MemberSet s({member("a"), member("b"), member("c"), member("d")}, "a");
  const int n = 40000;
  for (const auto& [id, count] : owners(s, n)) CHECK(count == Approx(n / 4).epsilon(0.05));
}

TEST_CASE("rank: a member with twice the weight owns twice the keys", "[unit]") {
  MemberSet s({member("a", 2.0), member("b"), member("c", 1.0)}, "a");
  const int n = 40000;
  auto o = owners(s, n);
  CHECK(o["a"] == Approx(n / 2).epsilon(0.05));
  CHECK(o["b"] == Approx(n / 4).epsilon(0.06));
  CHECK(o["c"] == Approx(n / 4).epsilon(0.06));
}

TEST_CASE("rank: a joining member takes only keys it wins, about 1/(n+1), and from everyone", "[unit]") {
  MemberSet before({member("a"), member("b"), member("c")}, "a");
  MemberSet after({member("a"), member("b"), member("c"), member("d")}, "a");
  const int n = 20000;
  int moved = 0;
  std::map<std::string, int> from;
  for (int i = 0; i < n; ++i) {
    const auto* was = before.rank(key(i), 1)[0];
    const auto* now = after.rank(key(i), 1)[0];
    if (was->id != now->id) {
      CHECK(now->id == "d");  // nothing moves between the old members
      ++moved;
      ++from[was->id];
    }
  }
  CHECK(moved == Approx(n / 4).epsilon(0.06));
  CHECK(from.size() == 3);
}

TEST_CASE("rank: a leaving member's keys go to the others; nothing else moves", "[unit]") {
  MemberSet before({member("a"), member("b"), member("c"), member("d")}, "a");
  MemberSet after({member("a"), member("b"), member("d")}, "a");
  for (int i = 0; i < 10000; ++i) {
    const auto was = before.rank(key(i), 2);
    const auto* now = after.rank(key(i), 1)[0];
    if (was[0]->id != "c") CHECK(now->id == was[0]->id);
    else CHECK(now->id == was[1]->id);  // the second choice takes over: it is the previous rank 1
  }
}

TEST_CASE("rank: a weight change moves keys only toward or away from that member", "[unit]") {
  MemberSet before({member("a"), member("b"), member("c")}, "a");
  MemberSet after({member("a"), member("b", 3.0), member("c")}, "a");
  for (int i = 0; i < 10000; ++i) {
    const auto* was = before.rank(key(i), 1)[0];
    const auto* now = after.rank(key(i), 1)[0];
    if (was->id != now->id) CHECK(now->id == "b");
  }
}

TEST_CASE("rank: excluded members are skipped (a lazy join's previous owner)", "[unit]") {
  MemberSet with({member("a"), member("b"), member("c"), member("d")}, "d");
  MemberSet without({member("a"), member("b"), member("c")}, "d");
  for (int i = 0; i < 2000; ++i) {
    const auto r = with.rank(key(i), 2, {"d"});
    REQUIRE(r.size() == 2);
    for (const auto* m : r) CHECK(m->id != "d");
    CHECK(r[0]->id == without.rank(key(i), 1)[0]->id);
  }
  CHECK(with.rank(key(1), 4, {"a", "b", "c", "d"}).empty());
}

TEST_CASE("rank: Joining and Draining members never own", "[unit]") {
  MemberSet s({member("a"), member("b", 1.0, MemberState::Joining), member("c", 1.0, MemberState::Draining),
               member("d")},
              "b");
  for (int i = 0; i < 2000; ++i) {
    const auto r = s.rank(key(i), 4);
    REQUIRE(r.size() == 2);
    for (const auto* m : r) CHECK((m->id == "a" || m->id == "d"));
  }
  MemberSet none({member("b", 1.0, MemberState::Joining), member("c", 1.0, MemberState::Draining)}, "b");
  CHECK(none.rank(key(1), 2).empty());
}

TEST_CASE("rank: zero weight owns nothing", "[unit]") {
  MemberSet s({member("a"), member("z", 0.0)}, "a");
  for (int i = 0; i < 500; ++i) {
    const auto r = s.rank(key(i), 2);
    REQUIRE(r.size() == 1);
    CHECK(r[0]->id == "a");
  }
}

TEST_CASE("MemberSet: find, self, revision; parseStaticMembers", "[unit]") {
  MemberSet s({member("b"), member("a")}, "a", 42);
  CHECK(s.members().front().id == "a");
  CHECK(s.find("b") != nullptr);
  CHECK(s.find("x") == nullptr);
  CHECK(s.self() == "a");
  CHECK(s.revision() == 42);
  auto m = parseStaticMembers({"n0=127.0.0.1:9100", "n1=127.0.0.1:9101"});
  REQUIRE(m.size() == 2);
  CHECK(m[1].id == "n1");
  CHECK(m[1].address == "127.0.0.1:9101");
  CHECK(m[1].state == MemberState::Active);
  CHECK_THROWS_AS(parseStaticMembers({"n0"}), std::invalid_argument);
  CHECK_THROWS_AS(parseStaticMembers({"=127.0.0.1:1"}), std::invalid_argument);
  CHECK_THROWS_AS(parseStaticMembers({"n0="}), std::invalid_argument);
  MemberState st;
  CHECK(parseMemberState("draining", st));
  CHECK(st == MemberState::Draining);
  CHECK_FALSE(parseMemberState("gone", st));
  CHECK(name(MemberState::Joining) == "joining");
}

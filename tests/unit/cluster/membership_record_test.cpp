// A member's record in etcd (JSON write and parse) and the etcd gateway's encodings (base64, range ends,
// int64-as-string fields, watch messages).
#include <catch2/catch.hpp>

#include <boost/json.hpp>

#include <string>
#include <vector>

#include "cluster/etcd_client.h"
#include "cluster/membership_record.h"

using namespace granary::cluster;

TEST_CASE("record: written and read back", "[unit]") {
  Member m;
  m.id = "gpu-07.rack3";
  m.address = "10.0.0.7:9100";
  m.weight = 2.5;
  m.state = MemberState::Draining;
  m.registeredMs = 1764262800123;
  m.chunks = 1200;
  m.bytes = 5'000'000'000'000ULL;
  m.peerBytesServed = 7;
  m.peerBytesFetched = 9;
  const std::string text = recordJson(m);
  auto v = boost::json::parse(text).as_object();
  for (const char* f : {"id", "address", "weight", "state", "since", "chunks", "bytes", "peer_bytes_served",
                        "peer_bytes_fetched"})
    CHECK(v.contains(f));
  CHECK(v["state"].as_string() == "draining");

  Member back;
  back.leaseId = 77;  // from etcd, not the record: left alone
  std::string error;
  REQUIRE(parseRecord(text, "gpu-07.rack3", back, error));
  CHECK(back.id == m.id);
  CHECK(back.address == m.address);
  CHECK(back.weight == 2.5);
  CHECK(back.state == MemberState::Draining);
  CHECK(back.registeredMs == m.registeredMs);
  CHECK(back.chunks == 1200);
  CHECK(back.bytes == m.bytes);
  CHECK(back.peerBytesServed == 7);
  CHECK(back.peerBytesFetched == 9);
  CHECK(back.leaseId == 77);
}

TEST_CASE("record: defaults for absent optional fields", "[unit]") {
  Member m;
  std::string error;
  REQUIRE(parseRecord(R"({"id":"n1","address":"127.0.0.1:1"})", "", m, error));
  CHECK(m.weight == 1.0);
  CHECK(m.state == MemberState::Active);
  CHECK(m.chunks == 0);
  CHECK(m.registeredMs == 0);
}

TEST_CASE("record: malformed records are refused with a reason", "[unit]") {
  const char* bad[] = {
      "", "[]", "{", R"({"address":"a:1"})", R"({"id":"n1"})", R"({"id":"n 1","address":"a:1"})",
      R"({"id":"n1","address":""})", R"({"id":"n1","address":"a:1","state":"gone"})",
      R"({"id":"n1","address":"a:1","weight":"x"})", R"({"id":"n1","address":"a:1","weight":0})",
      R"({"id":"n1","address":"a:1","weight":1000})", R"({"id":"n1","address":"a:1","chunks":-1})",
      R"({"id":"n1","address":"a:1","bytes":"12"})", R"({"id":5,"address":"a:1"})",
      // an address that is not HOST:PORT, or carries control bytes (Host header, admin output)
      R"({"id":"n1","address":"a"})", R"({"id":"n1","address":"a:"})", R"({"id":"n1","address":":1"})",
      R"({"id":"n1","address":"a:1x"})", R"({"id":"n1","address":"a\r\nX-Evil: 1:9100"})",
      R"({"id":"n1","address":"\u001b]0;pwned\u0007:9100"})", R"({"id":"n1","address":"a b:1"})"};
  for (const char* text : bad) {
    Member m;
    std::string error;
    INFO(text);
    CHECK_FALSE(parseRecord(text, "", m, error));
    CHECK_FALSE(error.empty());
  }
  Member m;
  std::string error;
  CHECK_FALSE(parseRecord(R"({"id":"n1","address":"a:1"})", "n2", m, error));  // the key names another node
}

TEST_CASE("record: addresses a peer request can use", "[unit]") {
  for (const char* a : {"10.0.0.7:9100", "gpu-07.example:9100", "[::1]:9100", "node_1:1"}) {
    Member m;
    std::string error;
    INFO(a);
    CHECK(parseRecord(std::string(R"({"id":"n1","address":")") + a + "\"}", "", m, error));
  }
}

TEST_CASE("record: keys and node ids", "[unit]") {
  CHECK(membersPrefix("prod") == "/granary/clusters/prod/members/");
  CHECK(memberKey("prod", "n1") == "/granary/clusters/prod/members/n1");
  CHECK(validNodeId("a-b_c.9"));
  CHECK_FALSE(validNodeId(""));
  CHECK_FALSE(validNodeId("a/b"));
  CHECK_FALSE(validNodeId(std::string(129, 'a')));
}

TEST_CASE("etcd: base64 round trips and refuses garbage", "[unit]") {
  const std::vector<std::string> samples{"", "f", "fo", "foo", "foob", "fooba", "foobar", std::string("\0\xff\x10", 3)};
  for (const auto& s : samples) {
    std::string back;
    REQUIRE(base64Decode(base64Encode(s), back));
    CHECK(back == s);
  }
  CHECK(base64Encode("foobar") == "Zm9vYmFy");
  CHECK(base64Encode("fo") == "Zm8=");
  std::string out;
  CHECK_FALSE(base64Decode("Zm9v!", out));
  CHECK_FALSE(base64Decode("Z", out));
}

TEST_CASE("etcd: prefix range end", "[unit]") {
  CHECK(prefixEnd("/a/") == "/a0");
  CHECK(prefixEnd("ab") == "ac");
  CHECK(prefixEnd(std::string("a\xff", 2)) == "b");
  CHECK(prefixEnd("") == std::string(1, '\0'));
}

TEST_CASE("etcd: int64 fields as strings or numbers", "[unit]") {
  auto v = boost::json::parse(R"({"ID":"7587881234567890123","TTL":10,"bad":"x"})");
  CHECK(jsonInt(v, "ID") == 7587881234567890123LL);
  CHECK(jsonInt(v, "TTL") == 10);
  CHECK(jsonInt(v, "bad", -1) == -1);
  CHECK(jsonInt(v, "absent", 3) == 3);
}

TEST_CASE("etcd: watch messages", "[unit]") {
  WatchBatch b;
  std::string error;
  REQUIRE(parseWatchMessage(R"({"result":{"header":{"revision":"3"},"created":true}})", b, error));
  CHECK(b.created);
  CHECK(b.revision == 3);
  const std::string events =
      R"({"result":{"header":{"revision":"9"},"events":[{"kv":{"key":"L2EvYg==","mod_revision":"8","value":"eA==","lease":"42"}},)"
      R"({"type":"DELETE","kv":{"key":"L2EvYw==","mod_revision":"9"}}]}})";
  REQUIRE(parseWatchMessage(events, b, error));
  REQUIRE(b.events.size() == 2);
  CHECK(b.events[0].put);
  CHECK(b.events[0].kv.key == "/a/b");
  CHECK(b.events[0].kv.value == "x");
  CHECK(b.events[0].kv.lease == 42);
  CHECK(b.events[0].kv.modRevision == 8);
  CHECK_FALSE(b.events[1].put);
  CHECK(b.events[1].kv.key == "/a/c");
  REQUIRE(parseWatchMessage(R"({"result":{"header":{"revision":"20"},"canceled":true,"compact_revision":"15"}})", b, error));
  CHECK(b.canceled);
  CHECK(b.compactRevision == 15);
  CHECK_FALSE(parseWatchMessage(R"({"error":{"message":"boom"}})", b, error));
  CHECK_FALSE(parseWatchMessage("not json", b, error));
  CHECK_FALSE(parseWatchMessage(R"({"result":{"events":[{"kv":{"key":"!!"}}]}})", b, error));
}

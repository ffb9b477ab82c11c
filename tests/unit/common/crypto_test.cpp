#include "common/crypto.h"

#include <catch2/catch.hpp>

using namespace granary;

TEST_CASE("sealed tokens: open with their context only, URL-safe, tamper-evident", "[unit][crypto]") {
  const std::string plain = "team-b/hidden key/\xe2\x82\xac";
  const std::string t = sealToken(plain, "bucket\nmarker");
  CHECK(t.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == std::string::npos);
  CHECK(t.find("team") == std::string::npos);
  CHECK(openToken(t, "bucket\nmarker") == plain);
  CHECK_FALSE(openToken(t, "other\nmarker"));
  CHECK_FALSE(openToken(t, "bucket\ncontinuation-token"));
  CHECK(sealToken(plain, "bucket\nmarker") != t);  // a fresh IV each time
  std::string tampered = t;
  tampered[tampered.size() / 2] = tampered[tampered.size() / 2] == 'A' ? 'B' : 'A';
  CHECK_FALSE(openToken(tampered, "bucket\nmarker"));
  CHECK_FALSE(openToken(t.substr(0, 10), "bucket\nmarker"));
  CHECK_FALSE(openToken("", "bucket\nmarker"));
  CHECK_FALSE(openToken("not base64!", "bucket\nmarker"));
  CHECK(openToken(sealToken("", "c"), "c") == std::string());
  // Lengths are padded: keys of 12 and 40 bytes give tokens of one length.
  CHECK(sealToken(std::string(12, 'k'), "c").size() == sealToken(std::string(40, 'k'), "c").size());
  CHECK(openToken(sealToken(std::string(1024, 'k'), "c"), "c") == std::string(1024, 'k'));
}

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

TEST_CASE("SHA-256 and HMAC-SHA256: the standard vectors, and a key with its pads hashed once", "[unit][crypto]") {
  CHECK(sha256Hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(sha256Hex("") == kEmptySha256Hex);
  // RFC 4231, test cases 1 (a short key), 2 (a short key and message) and 6 (a key longer than a block).
  const std::string k1(20, '\x0b');
  CHECK(toHex(hmacSha256(k1, "Hi There")) == "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  CHECK(toHex(hmacSha256(std::string_view("Jefe"), "what do ya want for nothing?")) ==
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  const std::string k6(131, '\xaa');
  const std::string m6 = "Test Using Larger Than Block-Size Key - Hash Key First";
  CHECK(toHex(hmacSha256(k6, m6)) == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  const HmacSha256Key once(k6.data(), k6.size());
  CHECK(toHex(once.sign(m6)) == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  CHECK(toHex(once.sign(m6)) == toHex(once.sign(m6)));  // signing leaves the key's state as it was
  const HmacSha256Key copy = once;
  CHECK(copy.sign("Hi There") == hmacSha256(k6, "Hi There"));
  CHECK(HmacSha256Key(k1.data(), k1.size()).sign("Hi There") == hmacSha256(k1, "Hi There"));
  // Messages across block boundaries match the one-shot form.
  for (std::size_t n : {0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 1000}) {
    const std::string m(n, 'm');
    CHECK(once.sign(m) == hmacSha256(k6, m));
  }
}

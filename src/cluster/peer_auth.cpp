#include "cluster/peer_auth.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <charconv>
#include <stdexcept>

#include "common/crypto.h"

namespace granary::cluster {
namespace {

bool isLowerHex(std::string_view s) {
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

bool validNode(std::string_view s) {
  if (s.empty() || s.size() > 255) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_' ||
          c == '.'))
      return false;
  return true;
}

}  // namespace

std::string peerSignature(std::string_view secret, std::string_view method, std::string_view target,
                          std::string_view node, std::string_view date, std::string_view nonce, std::string_view hop) {
  std::string s;
  s.reserve(method.size() + target.size() + node.size() + date.size() + nonce.size() + hop.size() + 5);
  s.append(method).append("\n").append(target).append("\n").append(node).append("\n");
  s.append(date).append("\n").append(nonce).append("\n").append(hop);
  return toHex(hmacSha256(secret, s));
}

std::string newPeerNonce() {
  unsigned char b[16];
  if (RAND_bytes(b, sizeof b) != 1) throw std::runtime_error("RAND_bytes failed");
  return toHex(b, sizeof b);
}

std::vector<std::pair<std::string, std::string>> signPeerRequest(std::string_view secret, std::string_view node,
                                                                 std::string_view method, std::string_view target,
                                                                 std::int64_t nowMs) {
  std::string date = std::to_string(nowMs), nonce = newPeerNonce();
  std::string sig = peerSignature(secret, method, target, node, date, nonce, "1");
  std::vector<std::pair<std::string, std::string>> h;
  h.emplace_back(kPeerNodeHeader, node);
  h.emplace_back(kPeerDateHeader, std::move(date));
  h.emplace_back(kPeerNonceHeader, std::move(nonce));
  h.emplace_back(kPeerHopHeader, "1");
  h.emplace_back(kPeerSignatureHeader, std::move(sig));
  return h;
}

std::string_view name(PeerAuthResult r) {
  switch (r) {
    case PeerAuthResult::Ok: return "ok";
    case PeerAuthResult::Signature: return "signature";
    case PeerAuthResult::Expired: return "expired";
    case PeerAuthResult::Replay: return "replay";
    case PeerAuthResult::Malformed: return "malformed";
  }
  return "malformed";
}

PeerVerifier::PeerVerifier(std::string secret, std::chrono::milliseconds window, std::size_t maxNonces)
    : secret_(std::move(secret)), windowMs_(window.count()), maxNonces_(maxNonces == 0 ? 1 : maxNonces) {}

PeerAuthResult PeerVerifier::verify(std::string_view method, std::string_view target, const PeerCredentials& c,
                                    std::int64_t nowMs) {
  std::int64_t date = 0;
  const auto [end, ec] = std::from_chars(c.date.data(), c.date.data() + c.date.size(), date);
  if (ec != std::errc{} || end != c.date.data() + c.date.size() || c.date.empty() || c.date.size() > 19 ||
      c.date[0] == '-')
    return PeerAuthResult::Malformed;
  if (!validNode(c.node) || c.nonce.size() != 32 || !isLowerHex(c.nonce) || c.hop != "1" ||
      c.signature.size() != 64 || !isLowerHex(c.signature))
    return PeerAuthResult::Malformed;
  const std::string want = peerSignature(secret_, method, target, c.node, c.date, c.nonce, c.hop);
  if (CRYPTO_memcmp(want.data(), c.signature.data(), want.size()) != 0) return PeerAuthResult::Signature;
  if (date < nowMs - windowMs_ || date > nowMs + windowMs_) return PeerAuthResult::Expired;
  std::lock_guard lk(m_);
  prune(nowMs);
  if (date <= floorMs_) return PeerAuthResult::Replay;
  std::string nonce(c.nonce);
  if (!seen_.insert(nonce).second) return PeerAuthResult::Replay;
  byDate_.emplace(date, std::move(nonce));
  while (seen_.size() > maxNonces_) {
    auto oldest = byDate_.begin();
    floorMs_ = std::max(floorMs_, oldest->first);
    seen_.erase(oldest->second);
    byDate_.erase(oldest);
  }
  return PeerAuthResult::Ok;
}

void PeerVerifier::prune(std::int64_t nowMs) {
  // A nonce dated before the window can never be accepted again: forget it.
  while (!byDate_.empty() && byDate_.begin()->first < nowMs - windowMs_) {
    seen_.erase(byDate_.begin()->second);
    byDate_.erase(byDate_.begin());
  }
}

std::size_t PeerVerifier::remembered() const {
  std::lock_guard lk(m_);
  return seen_.size();
}

}  // namespace granary::cluster

#pragma once
// Authentication of the peer protocol (requests one Granary node makes of another's peer port): every
// request carries its sender's node id, the time it was made (unix ms), a 128-bit random nonce, the hop
// marker and an HMAC-SHA256 over all of them with the cluster's shared secret:
//
//   x-granary-signature = hex HMAC-SHA256(secret, METHOD \n TARGET \n NODE \n DATE \n NONCE \n HOP)
//
// The receiver refuses a wrong MAC (constant-time compare), a date outside the window, and a nonce it has
// seen within the window (a bounded replay cache). Pure: no sockets, the clock is a parameter.

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

namespace granary::cluster {

inline constexpr std::string_view kPeerNodeHeader = "x-granary-node";
inline constexpr std::string_view kPeerDateHeader = "x-granary-date";
inline constexpr std::string_view kPeerNonceHeader = "x-granary-nonce";
inline constexpr std::string_view kPeerHopHeader = "x-granary-hop";
inline constexpr std::string_view kPeerSignatureHeader = "x-granary-signature";

/// What a peer request carries to authenticate itself (the header values as received).
struct PeerCredentials {
  std::string_view node, date, nonce, hop, signature;
};

/// The signature of a peer request: lower-case hex HMAC-SHA256 of the string to sign.
std::string peerSignature(std::string_view secret, std::string_view method, std::string_view target,
                          std::string_view node, std::string_view date, std::string_view nonce, std::string_view hop);

/// A fresh 128-bit nonce as 32 lower-case hex digits (from the OS's random source).
std::string newPeerNonce();

/// The headers (lower-case names) a request of `method` for `target` ("/path?query") sent now carries.
std::vector<std::pair<std::string, std::string>> signPeerRequest(std::string_view secret, std::string_view node,
                                                                 std::string_view method, std::string_view target,
                                                                 std::int64_t nowMs);

enum class PeerAuthResult : std::uint8_t { Ok, Signature, Expired, Replay, Malformed };
std::string_view name(PeerAuthResult r);

/// The receiving side: checks requests and remembers their nonces. Thread-safe (one per process, shared
/// by the peer port's threads).
class PeerVerifier {
 public:
  /// @param window accepted difference between a request's date and this node's clock, either way; a
  ///        nonce is remembered for as long as its date is within it.
  /// @param maxNonces the replay cache's bound. When it is full the oldest nonce goes, and from then on
  ///        nothing dated at or before it is accepted (as a replay): the cache never forgets a nonce it
  ///        would still accept.
  PeerVerifier(std::string secret, std::chrono::milliseconds window, std::size_t maxNonces = 1 << 18);

  /// Malformed (a header missing or ill-formed, hop not "1"), Signature, Expired, Replay, or Ok (and the
  /// nonce is remembered).
  PeerAuthResult verify(std::string_view method, std::string_view target, const PeerCredentials& c,
                        std::int64_t nowMs);

  std::size_t remembered() const;

 private:
  void prune(std::int64_t nowMs);  // under m_

  std::string secret_;
  std::int64_t windowMs_;
  std::size_t maxNonces_;
  mutable std::mutex m_;
  std::unordered_set<std::string> seen_;              // guarded by m_
  std::multimap<std::int64_t, std::string> byDate_;  // guarded by m_: the same nonces by their date
  std::int64_t floorMs_ = INT64_MIN;                  // guarded by m_: dates at or below it are refused
};

}  // namespace granary::cluster

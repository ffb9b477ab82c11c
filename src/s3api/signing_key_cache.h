#pragma once
// The SigV4 signing keys a verifier derived last. A signing key depends on (secret, date, region,
// service) and so changes once a day per credential: keeping the last few spares the four HMACs of its
// derivation, and the hashing of its HMAC pads, on nearly every request. One cache per I/O thread
// (no locks). The secret itself is part of what is matched, so a key table reloaded with a new secret
// for the same access key never finds the old secret's key.

#include <array>
#include <cstddef>
#include <string>
#include <string_view>

#include "common/crypto.h"
#include "common/sigv4.h"

namespace granary::s3api {

class SigningKeyCache {
 public:
  static constexpr std::size_t kSlots = 8;

  struct Entry {
    Sha256Digest key{};
    HmacSha256Key hmac{key};
  };

  /// The signing key of (secret, date, region, service): a cached one, or derived now (and then
  /// replacing the oldest of kSlots entries). The reference stays valid until the next call.
  const Entry& get(std::string_view secret, std::string_view date, std::string_view region, std::string_view service) {
    for (const auto& s : slots_)
      if (s.used && s.date == date && s.secret == secret && s.region == region && s.service == service) return s.entry;
    ++derivations_;
    Slot& s = slots_[next_++ % kSlots];
    s.used = true;
    s.secret.assign(secret);
    s.date.assign(date);
    s.region.assign(region);
    s.service.assign(service);
    s.entry.key = sigv4::signingKey(secret, date, region, service);
    s.entry.hmac = HmacSha256Key(s.entry.key);
    return s.entry;
  }

  /// Keys derived so far (misses): for tests.
  std::size_t derivations() const { return derivations_; }

 private:
  struct Slot {
    bool used = false;
    std::string secret, date, region, service;
    Entry entry;
  };
  std::array<Slot, kSlots> slots_{};
  std::size_t next_ = 0;
  std::size_t derivations_ = 0;
};

}  // namespace granary::s3api

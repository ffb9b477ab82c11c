#pragma once
// Hashing helpers over OpenSSL 3's EVP API: SHA-256 (one-shot and incremental), HMAC-SHA256, MD5, hex, base64.

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace granary {

using Sha256Digest = std::array<std::uint8_t, 32>;

/// Lower-case hex of a byte range.
std::string toHex(const void* data, std::size_t size);
inline std::string toHex(const Sha256Digest& d) { return toHex(d.data(), d.size()); }

/// Standard base64 (with padding).
std::string base64Encode(const void* data, std::size_t size);

Sha256Digest sha256(std::string_view data);
std::string sha256Hex(std::string_view data);
/// An HMAC-SHA256 key with its inner and outer pads hashed once, for a key that signs many messages (a
/// SigV4 signing key): each signature then hashes only the message and one outer block.
class HmacSha256Key {
 public:
  HmacSha256Key(const void* key, std::size_t keySize);
  explicit HmacSha256Key(const Sha256Digest& key) : HmacSha256Key(key.data(), key.size()) {}
  ~HmacSha256Key();
  HmacSha256Key(const HmacSha256Key&) = default;
  HmacSha256Key& operator=(const HmacSha256Key&) = default;
  Sha256Digest sign(std::string_view data) const;

  using State = std::array<std::uint64_t, 16>;  // a SHA256_CTX (112 bytes), kept opaque here

 private:
  State inner_{}, outer_{};
};

Sha256Digest hmacSha256(const void* key, std::size_t keySize, std::string_view data);
inline Sha256Digest hmacSha256(std::string_view key, std::string_view data) {
  return hmacSha256(key.data(), key.size(), data);
}
inline Sha256Digest hmacSha256(const Sha256Digest& key, std::string_view data) {
  return hmacSha256(key.data(), key.size(), data);
}

/// Base64 HMAC-SHA1: the signature of AWS Signature Version 2.
std::string hmacSha1Base64(std::string_view key, std::string_view data);

/// Seals `plain` (AES-256-GCM under a key drawn at start-up, `context` authenticated with it) as URL-safe
/// text ([A-Za-z0-9_-]): an opaque token that only this process can open, e.g. a listing position that
/// must not name a key.
std::string sealToken(std::string_view plain, std::string_view context);
/// The plain text of a token sealToken made with the same context, or nullopt.
std::optional<std::string> openToken(std::string_view sealed, std::string_view context);

/// Hex SHA-256 of the empty string, the payload hash of every body-less request.
inline constexpr std::string_view kEmptySha256Hex =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Incremental digest (SHA-256, SHA-1 or MD5) for bodies that stream through.
class Digest {
 public:
  enum class Kind { Sha256, Sha1, Md5 };
  explicit Digest(Kind kind = Kind::Sha256);
  ~Digest();
  Digest(Digest&&) noexcept;
  Digest& operator=(Digest&&) noexcept;
  void update(const void* data, std::size_t size);
  void update(std::string_view s) { update(s.data(), s.size()); }
  /// Finishes and returns the raw digest bytes; the object is reset for reuse.
  std::string finish();
  std::string finishHex();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  Kind kind_;
};

/// Constant-time comparison of two strings of equal length (false when lengths differ).
bool constantTimeEquals(std::string_view a, std::string_view b);

}  // namespace granary

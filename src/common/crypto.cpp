#include "common/crypto.h"

// SHA-256's low-level interface (deprecated in OpenSSL 3, still shipped): no provider fetch, no heap, a
// plain struct that can be copied. The EVP one-shots fetch the algorithm and allocate contexts on every
// call, which cost more than hashing the few hundred bytes of a SigV4 canonical request.
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <cstring>
#include <stdexcept>

namespace granary {

std::string toHex(const void* data, std::size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  const auto* p = static_cast<const std::uint8_t*>(data);
  std::string out(size * 2, '\0');
  for (std::size_t i = 0; i < size; ++i) {
    out[2 * i] = kDigits[p[i] >> 4];
    out[2 * i + 1] = kDigits[p[i] & 0xf];
  }
  return out;
}

std::string base64Encode(const void* data, std::size_t size) {
  std::string out(4 * ((size + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          static_cast<const unsigned char*>(data), static_cast<int>(size));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

Sha256Digest sha256(std::string_view data) {
  Sha256Digest d{};
  SHA256_CTX c;
  SHA256_Init(&c);
  SHA256_Update(&c, data.data(), data.size());
  SHA256_Final(d.data(), &c);
  return d;
}

std::string sha256Hex(std::string_view data) { return toHex(sha256(data)); }

static_assert(sizeof(SHA256_CTX) <= sizeof(HmacSha256Key::State), "HmacSha256Key::State holds a SHA256_CTX");

HmacSha256Key::HmacSha256Key(const void* key, std::size_t keySize) {
  unsigned char block[SHA256_CBLOCK] = {};
  if (keySize > SHA256_CBLOCK) {
    SHA256(static_cast<const unsigned char*>(key), keySize, block);
  } else if (keySize > 0) {
    std::memcpy(block, key, keySize);
  }
  unsigned char pad[SHA256_CBLOCK];
  for (std::size_t i = 0; i < SHA256_CBLOCK; ++i) pad[i] = block[i] ^ 0x36;
  SHA256_CTX c;
  SHA256_Init(&c);
  SHA256_Update(&c, pad, sizeof pad);
  std::memcpy(inner_.data(), &c, sizeof c);
  for (std::size_t i = 0; i < SHA256_CBLOCK; ++i) pad[i] = block[i] ^ 0x5c;
  SHA256_Init(&c);
  SHA256_Update(&c, pad, sizeof pad);
  std::memcpy(outer_.data(), &c, sizeof c);
  OPENSSL_cleanse(&c, sizeof c);
  OPENSSL_cleanse(block, sizeof block);
  OPENSSL_cleanse(pad, sizeof pad);
}

HmacSha256Key::~HmacSha256Key() {
  OPENSSL_cleanse(inner_.data(), sizeof inner_);
  OPENSSL_cleanse(outer_.data(), sizeof outer_);
}

Sha256Digest HmacSha256Key::sign(std::string_view data) const {
  SHA256_CTX c;
  std::memcpy(&c, inner_.data(), sizeof c);
  Sha256Digest d{};
  SHA256_Update(&c, data.data(), data.size());
  SHA256_Final(d.data(), &c);
  std::memcpy(&c, outer_.data(), sizeof c);
  SHA256_Update(&c, d.data(), d.size());
  SHA256_Final(d.data(), &c);
  return d;
}

Sha256Digest hmacSha256(const void* key, std::size_t keySize, std::string_view data) {
  return HmacSha256Key(key, keySize).sign(data);
}

std::string hmacSha1Base64(std::string_view key, std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha1(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), md, &len);
  return base64Encode(md, len);
}

struct Digest::Impl {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~Impl() { EVP_MD_CTX_free(ctx); }
};

namespace {
const EVP_MD* mdOf(Digest::Kind k) {
  switch (k) {
    case Digest::Kind::Sha256: return EVP_sha256();
    case Digest::Kind::Sha1: return EVP_sha1();
    case Digest::Kind::Md5: return EVP_md5();
  }
  return EVP_sha256();
}
}  // namespace

Digest::Digest(Kind kind) : impl_(std::make_unique<Impl>()), kind_(kind) {
  if (impl_->ctx == nullptr || EVP_DigestInit_ex(impl_->ctx, mdOf(kind), nullptr) != 1) {
    throw std::runtime_error("EVP_DigestInit_ex failed");
  }
}
Digest::~Digest() = default;
Digest::Digest(Digest&&) noexcept = default;
Digest& Digest::operator=(Digest&&) noexcept = default;

void Digest::update(const void* data, std::size_t size) { EVP_DigestUpdate(impl_->ctx, data, size); }

std::string Digest::finish() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(impl_->ctx, md, &len);
  EVP_DigestInit_ex(impl_->ctx, mdOf(kind_), nullptr);
  return std::string(reinterpret_cast<char*>(md), len);
}

std::string Digest::finishHex() {
  auto raw = finish();
  return toHex(raw.data(), raw.size());
}

bool constantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace granary

namespace granary {
namespace {
constexpr std::size_t kIv = 12, kTag = 16;
constexpr char kB64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

const std::array<unsigned char, 32>& tokenKey() {
  static const std::array<unsigned char, 32> key = [] {
    std::array<unsigned char, 32> k{};
    if (RAND_bytes(k.data(), static_cast<int>(k.size())) != 1) throw std::runtime_error("RAND_bytes failed");
    return k;
  }();
  return key;
}

std::string b64url(const unsigned char* p, std::size_t n) {
  std::string out;
  out.reserve((n * 4 + 2) / 3);
  std::uint32_t acc = 0;
  int bits = 0;
  for (std::size_t i = 0; i < n; ++i) {
    acc = (acc << 8) | p[i];
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kB64Url[(acc >> bits) & 63]);
    }
  }
  if (bits > 0) out.push_back(kB64Url[(acc << (6 - bits)) & 63]);
  return out;
}

std::optional<std::string> unb64url(std::string_view s) {
  std::string out;
  out.reserve(s.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : s) {
    const char* at = std::strchr(kB64Url, c);
    if (c == 0 || !at) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(at - kB64Url);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

struct CipherCtx {
  EVP_CIPHER_CTX* p = EVP_CIPHER_CTX_new();
  ~CipherCtx() { EVP_CIPHER_CTX_free(p); }
};
}  // namespace

std::string sealToken(std::string_view text, std::string_view context) {
  // Padded to a multiple of 64 bytes behind a 2-byte length, so a token's length tells little of the
  // length of what it holds.
  if (text.size() > 0xffff) throw std::invalid_argument("sealToken: more than 64 KiB");
  std::string padded;
  padded.reserve(((text.size() + 2 + 63) / 64) * 64);
  padded.push_back(static_cast<char>(text.size() >> 8));
  padded.push_back(static_cast<char>(text.size() & 0xff));
  padded.append(text);
  padded.resize(((padded.size() + 63) / 64) * 64, '\0');
  const std::string_view plain = padded;
  std::string buf(kIv + plain.size() + kTag, '\0');
  auto* out = reinterpret_cast<unsigned char*>(buf.data());
  if (RAND_bytes(out, kIv) != 1) throw std::runtime_error("RAND_bytes failed");
  CipherCtx c;
  int len = 0;
  if (!c.p || EVP_EncryptInit_ex(c.p, EVP_aes_256_gcm(), nullptr, tokenKey().data(), out) != 1 ||
      EVP_EncryptUpdate(c.p, nullptr, &len, reinterpret_cast<const unsigned char*>(context.data()),
                        static_cast<int>(context.size())) != 1 ||
      EVP_EncryptUpdate(c.p, out + kIv, &len, reinterpret_cast<const unsigned char*>(plain.data()),
                        static_cast<int>(plain.size())) != 1 ||
      EVP_EncryptFinal_ex(c.p, out + kIv + len, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(c.p, EVP_CTRL_GCM_GET_TAG, kTag, out + kIv + plain.size()) != 1)
    throw std::runtime_error("AES-GCM failed");
  return b64url(out, buf.size());
}

std::optional<std::string> openToken(std::string_view sealed, std::string_view context) {
  auto raw = unb64url(sealed);
  if (!raw || raw->size() < kIv + kTag) return std::nullopt;
  const auto* in = reinterpret_cast<const unsigned char*>(raw->data());
  const std::size_t n = raw->size() - kIv - kTag;
  std::string plain(n, '\0');
  CipherCtx c;
  int len = 0;
  std::array<unsigned char, kTag> tag{};
  std::memcpy(tag.data(), in + kIv + n, kTag);
  if (!c.p || EVP_DecryptInit_ex(c.p, EVP_aes_256_gcm(), nullptr, tokenKey().data(), in) != 1 ||
      EVP_DecryptUpdate(c.p, nullptr, &len, reinterpret_cast<const unsigned char*>(context.data()),
                        static_cast<int>(context.size())) != 1 ||
      EVP_DecryptUpdate(c.p, reinterpret_cast<unsigned char*>(plain.data()), &len, in + kIv, static_cast<int>(n)) != 1 ||
      EVP_CIPHER_CTX_ctrl(c.p, EVP_CTRL_GCM_SET_TAG, kTag, tag.data()) != 1 ||
      EVP_DecryptFinal_ex(c.p, reinterpret_cast<unsigned char*>(plain.data()) + len, &len) != 1)
    return std::nullopt;
  if (plain.size() < 2) return std::nullopt;
  const std::size_t size = (static_cast<std::size_t>(static_cast<unsigned char>(plain[0])) << 8) |
                           static_cast<unsigned char>(plain[1]);
  if (size > plain.size() - 2) return std::nullopt;
  return plain.substr(2, size);
}

}  // namespace granary

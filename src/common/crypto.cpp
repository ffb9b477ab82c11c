#include "common/crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

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
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), d.data(), &len, EVP_sha256(), nullptr);
  return d;
}

std::string sha256Hex(std::string_view data) { return toHex(sha256(data)); }

Sha256Digest hmacSha256(const void* key, std::size_t keySize, std::string_view data) {
  Sha256Digest d{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key, static_cast<int>(keySize),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), d.data(), &len);
  return d;
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

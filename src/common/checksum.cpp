#include "common/checksum.h"

#include <array>

namespace granary {
namespace {

/// Reflected CRC tables for slicing-by-8: table[k][b] is the CRC of byte b followed by k zero bytes.
template <class T, T Poly>
struct CrcTables {
  std::array<std::array<T, 256>, 8> t{};
  constexpr CrcTables() {
    for (unsigned b = 0; b < 256; ++b) {
      T c = static_cast<T>(b);
      for (int i = 0; i < 8; ++i) c = (c & 1) ? static_cast<T>((c >> 1) ^ Poly) : static_cast<T>(c >> 1);
      t[0][b] = c;
    }
    for (unsigned b = 0; b < 256; ++b)
      for (int k = 1; k < 8; ++k) t[k][b] = static_cast<T>((t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xff]);
  }
};

// CRC-32 (ISO-HDLC, as zlib), CRC-32C (Castagnoli), CRC-64/NVME: reflected polynomials.
constexpr CrcTables<std::uint32_t, 0xEDB88320u> kCrc32{};
constexpr CrcTables<std::uint32_t, 0x82F63B78u> kCrc32c{};
constexpr CrcTables<std::uint64_t, 0x9A6C9329AC4BC9B5ull> kCrc64Nvme{};

template <class T, T Poly>
T crcUpdate(const CrcTables<T, Poly>& tb, T crc, const unsigned char* p, std::size_t n) {
  const auto& t = tb.t;
  while (n >= 8) {
    // Little-endian word at a time; the top bytes of a 32-bit CRC are zero when T is 32 bits.
    std::uint64_t w = 0;
    for (int i = 7; i >= 0; --i) w = (w << 8) | p[i];
    w ^= static_cast<std::uint64_t>(crc);
    crc = static_cast<T>(t[7][w & 0xff] ^ t[6][(w >> 8) & 0xff] ^ t[5][(w >> 16) & 0xff] ^ t[4][(w >> 24) & 0xff] ^
                         t[3][(w >> 32) & 0xff] ^ t[2][(w >> 40) & 0xff] ^ t[1][(w >> 48) & 0xff] ^ t[0][w >> 56]);
    p += 8;
    n -= 8;
  }
  while (n--) crc = static_cast<T>((crc >> 8) ^ t[0][(crc ^ *p++) & 0xff]);
  return crc;
}

std::string bigEndian(std::uint64_t v, int bytes) {
  std::string out(static_cast<std::size_t>(bytes), '\0');
  for (int i = bytes - 1; i >= 0; --i, v >>= 8) out[static_cast<std::size_t>(i)] = static_cast<char>(v & 0xff);
  return out;
}

}  // namespace

std::optional<ChecksumAlgorithm> checksumFromHeader(std::string_view n) {
  if (n == "x-amz-checksum-crc32") return ChecksumAlgorithm::Crc32;
  if (n == "x-amz-checksum-crc32c") return ChecksumAlgorithm::Crc32c;
  if (n == "x-amz-checksum-crc64nvme") return ChecksumAlgorithm::Crc64Nvme;
  if (n == "x-amz-checksum-sha1") return ChecksumAlgorithm::Sha1;
  if (n == "x-amz-checksum-sha256") return ChecksumAlgorithm::Sha256;
  return std::nullopt;
}

std::string_view checksumName(ChecksumAlgorithm a) {
  switch (a) {
    case ChecksumAlgorithm::Crc32: return "CRC32";
    case ChecksumAlgorithm::Crc32c: return "CRC32C";
    case ChecksumAlgorithm::Crc64Nvme: return "CRC64NVME";
    case ChecksumAlgorithm::Sha1: return "SHA1";
    case ChecksumAlgorithm::Sha256: return "SHA256";
    case ChecksumAlgorithm::Md5: return "MD5";
  }
  return "?";
}

Checksum::Checksum(ChecksumAlgorithm a) : alg_(a) {
  if (a == ChecksumAlgorithm::Sha1) digest_.emplace(Digest::Kind::Sha1);
  if (a == ChecksumAlgorithm::Sha256) digest_.emplace(Digest::Kind::Sha256);
  if (a == ChecksumAlgorithm::Md5) digest_.emplace(Digest::Kind::Md5);
  crc_ = a == ChecksumAlgorithm::Crc64Nvme ? ~0ull : 0xFFFFFFFFull;
}

void Checksum::update(const void* data, std::size_t size) {
  const auto* p = static_cast<const unsigned char*>(data);
  switch (alg_) {
    case ChecksumAlgorithm::Crc32:
      crc_ = crcUpdate(kCrc32, static_cast<std::uint32_t>(crc_), p, size);
      break;
    case ChecksumAlgorithm::Crc32c:
      crc_ = crcUpdate(kCrc32c, static_cast<std::uint32_t>(crc_), p, size);
      break;
    case ChecksumAlgorithm::Crc64Nvme:
      crc_ = crcUpdate(kCrc64Nvme, crc_, p, size);
      break;
    default:
      digest_->update(data, size);
  }
}

std::string Checksum::finishBase64() {
  std::string raw;
  switch (alg_) {
    case ChecksumAlgorithm::Crc32:
    case ChecksumAlgorithm::Crc32c:
      raw = bigEndian(~crc_ & 0xFFFFFFFFull, 4);
      break;
    case ChecksumAlgorithm::Crc64Nvme:
      raw = bigEndian(~crc_, 8);
      break;
    default:
      raw = digest_->finish();
  }
  return base64Encode(raw.data(), raw.size());
}

bool isBase64Of(std::string_view b64, std::size_t bytes) {
  const std::size_t want = (bytes + 2) / 3 * 4;
  if (b64.size() != want) return false;
  std::size_t pad = bytes % 3 == 0 ? 0 : 3 - bytes % 3;
  for (std::size_t i = 0; i < b64.size(); ++i) {
    const char c = b64[i];
    const bool alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
    if (i >= b64.size() - pad ? c != '=' : !alnum) return false;
  }
  return true;
}

}  // namespace granary

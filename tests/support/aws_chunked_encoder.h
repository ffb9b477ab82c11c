#pragma once
// Test helper: encodes a payload as aws-chunked the way SDKs do, signing chunks (and a trailer) with the
// SigV4 primitives. Used to drive the decoder; the AWS worked example pins the primitives themselves.

#include <string>

#include "common/sigv4.h"

namespace granary::testing {

struct ChunkSigning {
  Sha256Digest key{};
  std::string scope;
  std::string amzDate;
  std::string seed;
};

/// `signing` null = unsigned chunks. `trailer` non-empty = trailer lines "name:value" (signed when signing).
inline std::string encodeAwsChunked(const std::string& payload, std::size_t chunkSize, const ChunkSigning* signing,
                                    const sigv4::HeaderList& trailer = {}) {
  std::string out, prev = signing ? signing->seed : "";
  auto header = [&](std::string_view data) {
    char hex[32];
    std::snprintf(hex, sizeof hex, "%zx", data.size());
    std::string h = hex;
    if (signing) {
      auto sts = sigv4::chunkStringToSign(signing->amzDate, signing->scope, prev, sha256Hex(data));
      prev = sigv4::signatureHex(signing->key, sts);
      h += ";chunk-signature=" + prev;
    }
    return h + "\r\n";
  };
  for (std::size_t off = 0; off < payload.size(); off += chunkSize) {
    std::string_view data = std::string_view(payload).substr(off, chunkSize);
    out += header(data);
    out.append(data);
    out += "\r\n";
  }
  out += header({});
  if (!trailer.empty()) {
    std::string canonical;
    for (const auto& [k, v] : trailer) {
      out += k + ":" + v + "\r\n";
      canonical += k + ":" + v + "\n";
    }
    if (signing) {
      auto sts = sigv4::trailerStringToSign(signing->amzDate, signing->scope, prev, sha256Hex(canonical));
      out += "x-amz-trailer-signature:" + sigv4::signatureHex(signing->key, sts) + "\r\n";
    }
  }
  out += "\r\n";
  return out;
}

}  // namespace granary::testing

#pragma once
// AWS Signature Version 4 primitives, as small pure steps (the model is Envoy's sigv4_signer_impl).
// Both the verifier (s3api) and the signer (upstream, bench) are built from these.

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/crypto.h"
#include "common/uri.h"

namespace granary::sigv4 {

inline constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";
inline constexpr std::string_view kUnsignedPayload = "UNSIGNED-PAYLOAD";
inline constexpr std::string_view kStreamingPayload = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
inline constexpr std::string_view kStreamingPayloadTrailer = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
inline constexpr std::string_view kStreamingUnsignedTrailer = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";

/// (lower-case name, value) pairs.
using HeaderList = std::vector<std::pair<std::string, std::string>>;

/// Trims a header value and collapses runs of spaces to one, as the canonical form requires.
std::string canonicalHeaderValue(std::string_view value);

/// Builds "name:value\n" lines for the given signed header names (sorted, lower-case), joining repeated
/// headers with ','. Names missing from `headers` produce "name:\n".
std::string canonicalHeaders(const HeaderList& headers, const std::vector<std::string>& signedNames);

/// canonicalHeaders, appended to `out` (the verifier builds its canonical request in one reused buffer).
void appendCanonicalHeaders(std::string& out, const HeaderList& headers, const std::vector<std::string_view>& signedNames);
/// "a;b;c" from sorted names.
std::string joinSignedHeaders(const std::vector<std::string>& names);

/// The canonical URI of an S3 request: the decoded path re-encoded segment by segment (no
/// normalisation of "//" or ".."; S3 does none). `decodedPath` starts with '/'.
inline std::string canonicalUri(std::string_view decodedPath) { return uriEncode(decodedPath, false); }

std::string canonicalRequest(std::string_view method, std::string_view canonicalUri,
                             std::string_view canonicalQuery, std::string_view canonicalHeadersBlock,
                             std::string_view signedHeaders, std::string_view payloadHash);

/// "YYYYMMDD/region/service/aws4_request"
std::string credentialScope(std::string_view date, std::string_view region, std::string_view service);

std::string stringToSign(std::string_view amzDate, std::string_view scope, std::string_view canonicalRequest);

Sha256Digest signingKey(std::string_view secret, std::string_view date, std::string_view region,
                        std::string_view service);

std::string signatureHex(const Sha256Digest& key, std::string_view stringToSign);
/// The same with the signing key's HMAC pads already hashed (a verifier's cached key).
std::string signatureHex(const HmacSha256Key& key, std::string_view stringToSign);

/// String to sign of one aws-chunked chunk, chained to the previous signature.
std::string chunkStringToSign(std::string_view amzDate, std::string_view scope, std::string_view previousSignature,
                              std::string_view chunkSha256Hex);

/// String to sign of the trailing headers of STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER.
std::string trailerStringToSign(std::string_view amzDate, std::string_view scope, std::string_view previousSignature,
                                std::string_view trailerSha256Hex);

struct Credentials {
  std::string accessKey;
  std::string secretKey;
  std::string sessionToken;  // empty when none
};

/// Signs outgoing S3 requests. Caches the derived signing key per day. Not thread-safe: one per thread.
class RequestSigner {
 public:
  RequestSigner(Credentials creds, std::string region, std::string service = "s3");

  /// Adds x-amz-date, x-amz-content-sha256, x-amz-security-token (if any) and Authorization to
  /// `headers` (which must already hold "host"); every header in `headers` is signed.
  /// @param encodedPath the path exactly as it goes on the wire (already uriEncode'd).
  /// @param as other credentials to sign with than the signer's own (null: its own).
  void sign(std::string_view method, std::string_view encodedPath, const QueryParams& query, HeaderList& headers,
            std::string_view payloadHash, std::chrono::system_clock::time_point now, const Credentials* as = nullptr);

  /// Returns the query parameters of a presigned URL (X-Amz-*), signing only "host".
  QueryParams presign(std::string_view method, std::string_view encodedPath, QueryParams query,
                      std::string_view host, std::chrono::seconds expires,
                      std::chrono::system_clock::time_point now);

  const Credentials& credentials() const { return creds_; }
  const std::string& region() const { return region_; }
  void setCredentials(Credentials creds) { creds_ = std::move(creds); keyDate_.clear(); }

 private:
  const Sha256Digest& keyFor(std::string_view date);

  Credentials creds_;
  std::string region_;
  std::string service_;
  std::string keyDate_;
  Sha256Digest key_{};
};

}  // namespace granary::sigv4

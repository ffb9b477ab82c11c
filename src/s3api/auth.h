#pragma once
// Verifies a client's SigV4 signature (Authorization header or presigned query) against Granary's own
// key table. Pure: no I/O, the clock is a parameter.

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/sigv4.h"
#include "s3api/errors.h"
#include "s3api/policy.h"

namespace granary::s3api {

/// What Granary knows of one client key.
struct ClientKey {
  std::string secret;
  /// What the key may do; null = everything (a key configured without a policy).
  PolicyPtr policy;
  /// Tenant mode: the key's own backend credentials, which sign every request made for it (null = the
  /// backend's). Cached bytes reach such a key only once the backend let these credentials read them.
  std::shared_ptr<const sigv4::Credentials> backendCredentials;
};

/// Access key -> client key. Immutable once built; replaced whole on reload.
class KeyTable {
 public:
  void add(std::string accessKey, std::string secret) { add(std::move(accessKey), ClientKey{std::move(secret), {}, {}}); }
  void add(std::string accessKey, ClientKey key) {
    if (key.backendCredentials) tenants_ = true;
    keys_[std::move(accessKey)] = std::move(key);
  }
  const std::string* secretFor(std::string_view accessKey) const {
    const ClientKey* k = find(accessKey);
    return k ? &k->secret : nullptr;
  }
  const ClientKey* find(std::string_view accessKey) const {
    auto it = keys_.find(std::string(accessKey));
    return it == keys_.end() ? nullptr : &it->second;
  }
  std::size_t size() const { return keys_.size(); }
  /// Some key signs with its own backend credentials: every cache hit is checked against the backend.
  bool hasTenants() const { return tenants_; }

 private:
  std::unordered_map<std::string, ClientKey> keys_;
  bool tenants_ = false;
};

/// How the request body is protected (x-amz-content-sha256).
enum class PayloadMode {
  Sha256,                    // hex SHA-256 of the whole body, checked as it streams
  Unsigned,                  // UNSIGNED-PAYLOAD (and every presigned or anonymous request)
  StreamingSigned,           // STREAMING-AWS4-HMAC-SHA256-PAYLOAD: aws-chunked, each chunk signed
  StreamingSignedTrailer,    // ...-PAYLOAD-TRAILER: signed chunks plus a signed trailer
  StreamingUnsignedTrailer,  // STREAMING-UNSIGNED-PAYLOAD-TRAILER: aws-chunked, unsigned, trailer
};

struct AuthInput {
  std::string_view method;
  std::string_view rawPath;
  std::string_view decodedPath;
  const QueryParams* query = nullptr;
  const sigv4::HeaderList* headers = nullptr;  // lower-case names as received
  std::chrono::system_clock::time_point now;
  std::string_view bucket;     // for SigV2's canonical resource
  bool virtualHosted = false;  // SigV2 puts "/bucket" in front of a virtual-hosted path
};

struct AuthOptions {
  bool allowAnonymous = false;
  std::chrono::seconds maxSkew{15 * 60};
  /// The regions a SigV4 credential scope may name (the first is the one errors say is expected);
  /// empty = any.
  std::vector<std::string> regions;
};

struct VerifiedAuth {
  bool anonymous = false;
  bool presigned = false;
  std::string accessKey;
  PayloadMode payload = PayloadMode::Unsigned;
  std::string payloadHash;  // the hex hash when payload == Sha256
  // What aws-chunked chunk signatures chain from.
  Sha256Digest signingKey{};
  std::string scope;
  std::string amzDate;
  std::string seedSignature;
};

struct AuthResult {
  std::optional<S3Failure> failure;  // set = reject with this error
  VerifiedAuth auth;
};

/// Verifies the request's signature (SigV4; SigV2 too, since SDKs still presign with it by default).
/// As S3 does, a SigV4 signature (header or presigned) covers every x-amz-* header present: one that
/// is not among the signed headers is AccessDenied (with <HeadersNotSigned>). SigV2 covers them by
/// construction (all x-amz-* headers are part of its string to sign).
/// Possible failures: AccessDenied (no credentials, expired presigned URL, host not signed, x-amz-*
/// headers not signed), InvalidAccessKeyId, SignatureDoesNotMatch, RequestTimeTooSkewed,
/// AuthorizationHeaderMalformed (also: a scope naming a region not served, or a service other than
/// s3), AuthorizationQueryParametersError (the same for presigned URLs), InvalidRequest (SigV2, missing
/// x-amz-content-sha256), InvalidArgument (bad x-amz-content-sha256 value).
AuthResult verifyRequest(const AuthInput& in, const KeyTable& keys, const AuthOptions& opts);

/// Case-sensitive lookup of a query parameter.
const std::string* findParam(const QueryParams& q, std::string_view name);
/// First value of a (lower-case) header, or nullptr.
const std::string* findHeader(const sigv4::HeaderList& h, std::string_view name);

/// Query parameters that belong to a presigned URL's signature, dropped when forwarding.
bool isPresignParam(std::string_view name);

}  // namespace granary::s3api

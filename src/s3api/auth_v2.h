#pragma once
// AWS Signature Version 2 (HMAC-SHA1), header ("AWS AK:sig") and query (AWSAccessKeyId, Expires,
// Signature) forms. Internal to s3api: verifyRequest dispatches here.

#include "s3api/auth.h"

namespace granary::s3api {

/// SigV2's StringToSign. `dateOrExpires` is the Date header (empty when x-amz-date is sent) or, for a
/// presigned URL, the Expires value.
std::string sigv2StringToSign(const AuthInput& in, std::string_view dateOrExpires);

AuthResult verifyV2Header(const AuthInput& in, std::string_view header, const KeyTable& keys, const AuthOptions& opts);
AuthResult verifyV2Query(const AuthInput& in, const KeyTable& keys);

}  // namespace granary::s3api

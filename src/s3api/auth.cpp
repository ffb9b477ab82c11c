#include "s3api/auth.h"

#include <algorithm>

#include "common/timeutil.h"
#include "s3api/auth_v2.h"
#include "s3api/signing_key_cache.h"

namespace granary::s3api {
namespace {

using namespace std::string_view_literals;

S3Failure fail(S3Error e, std::string msg = {}, ErrorFields extra = {}) {
  return S3Failure{e, std::move(msg), std::move(extra)};
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool isHex64(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
         });
}

struct Credential {
  std::string accessKey, date, region, service;
};

std::optional<Credential> parseCredential(std::string_view s) {
  // AK/YYYYMMDD/region/service/aws4_request; the access key itself never holds '/'.
  std::vector<std::string_view> parts;
  while (true) {
    auto slash = s.find('/');
    parts.push_back(s.substr(0, slash));
    if (slash == std::string_view::npos) break;
    s.remove_prefix(slash + 1);
  }
  if (parts.size() != 5 || parts[4] != "aws4_request" || parts[0].empty() || parts[1].size() != 8 ||
      parts[2].empty() || parts[3].empty())
    return std::nullopt;
  return Credential{std::string(parts[0]), std::string(parts[1]), std::string(parts[2]), std::string(parts[3])};
}

/// The names of SignedHeaders, as views into it.
std::vector<std::string_view> splitSignedHeaders(std::string_view s) {
  std::vector<std::string_view> out;
  out.reserve(static_cast<std::size_t>(std::count(s.begin(), s.end(), ';')) + 1);
  while (!s.empty()) {
    auto semi = s.find(';');
    out.push_back(s.substr(0, semi));
    if (semi == std::string_view::npos) break;
    s.remove_prefix(semi + 1);
  }
  return out;
}

/// The x-amz-* headers present but not signed, comma-separated ("" when all are signed). An unsigned
/// x-amz-* header would change what the request does (x-amz-copy-source turns a PUT into a copy)
/// without the key holder having asked for it.
std::string unsignedAmzHeaders(const sigv4::HeaderList& headers, const std::vector<std::string_view>& signedNames) {
  std::vector<std::string_view> missing;
  for (const auto& [name, value] : headers) {
    if (!name.starts_with("x-amz-")) continue;
    if (std::binary_search(signedNames.begin(), signedNames.end(), std::string_view(name))) continue;
    if (std::find(missing.begin(), missing.end(), name) == missing.end()) missing.push_back(name);
  }
  std::string out;
  for (const auto n : missing) {
    if (!out.empty()) out += ", ";
    out += n;
  }
  return out;
}

void appendHex(std::string& out, const Sha256Digest& d) {
  static constexpr char kDigits[] = "0123456789abcdef";
  for (const std::uint8_t b : d) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0xf]);
  }
}

/// The scope must name a region Granary serves and the service s3.
std::optional<S3Failure> checkScope(const Credential& cred, const AuthOptions& opts, S3Error kind,
                                    std::string_view what) {
  if (!opts.regions.empty() && std::find(opts.regions.begin(), opts.regions.end(), cred.region) == opts.regions.end())
    return fail(kind,
                std::string(what) + "; the region '" + cred.region + "' is wrong; expecting '" + opts.regions.front() + "'",
                {{"Region", opts.regions.front()}});
  if (cred.service != "s3")
    return fail(kind, std::string(what) + "; the service '" + cred.service + "' is wrong; expecting 's3'");
  return std::nullopt;
}

struct Claim {
  Credential cred;
  std::vector<std::string_view> signedHeaders;  // views into the request's SignedHeaders
  std::string_view signature;
  std::string amzDate;
  std::chrono::system_clock::time_point time;
};

/// The derived signing key of a credential changes once a day: each I/O thread keeps the last few it
/// derived (signing_key_cache.h).
const SigningKeyCache::Entry& cachedSigningKey(const std::string& secret, const Credential& cred) {
  thread_local SigningKeyCache cache;
  return cache.get(secret, cred.date, cred.region, cred.service);
}

/// The common tail of both forms: look the key up, build the canonical request, compare.
std::optional<S3Failure> checkSignature(const AuthInput& in, const KeyTable& keys, const Claim& c,
                                        const QueryParams& canonicalParams, std::string_view payloadHash,
                                        VerifiedAuth& out) {
  const std::string* secret = keys.secretFor(c.cred.accessKey);
  if (!secret) return fail(S3Error::InvalidAccessKeyId, {}, {{"AWSAccessKeyId", c.cred.accessKey}});
  if (std::find(c.signedHeaders.begin(), c.signedHeaders.end(), "host") == c.signedHeaders.end())
    return fail(S3Error::AccessDenied, "The host header must be signed.");
  if (!std::is_sorted(c.signedHeaders.begin(), c.signedHeaders.end()))
    return fail(S3Error::SignatureDoesNotMatch, "SignedHeaders must be sorted.");
  if (auto unsigned_ = unsignedAmzHeaders(*in.headers, c.signedHeaders); !unsigned_.empty())
    return fail(S3Error::AccessDenied, "There were headers present in the request which were not signed",
                {{"HeadersNotSigned", unsigned_}});

  const SigningKeyCache::Entry& key = cachedSigningKey(*secret, c.cred);
  // Built in buffers each I/O thread reuses: a request's canonical request, string to sign and scope
  // cost no allocation once the buffers have grown.
  thread_local std::string scope, uri, tail, creq, sts;
  scope.clear();
  scope.append(c.cred.date).append("/").append(c.cred.region).append("/").append(c.cred.service).append("/aws4_request");
  // The canonical request after its URI: the same for both URI candidates below.
  tail.clear();
  tail.push_back('\n');
  tail.append(canonicalQueryString(canonicalParams));
  tail.push_back('\n');
  sigv4::appendCanonicalHeaders(tail, *in.headers, c.signedHeaders);
  tail.push_back('\n');
  for (std::size_t i = 0; i < c.signedHeaders.size(); ++i) {
    if (i > 0) tail.push_back(';');
    tail.append(c.signedHeaders[i]);
  }
  tail.push_back('\n');
  tail.append(payloadHash);

  // The canonical URI is the path re-encoded by SigV4's rules; clients that encode differently (a raw
  // '~' vs "%7E", say) signed the path as they sent it, so that form is tried too.
  uri.clear();
  appendUriEncoded(uri, in.decodedPath, false);
  const int candidates = uri == in.rawPath ? 1 : 2;
  std::string firstCreq, firstSts;
  for (int i = 0; i < candidates; ++i) {
    creq.clear();
    creq.append(in.method).append("\n");
    if (i == 0) creq.append(uri);
    else creq.append(in.rawPath);
    creq.append(tail);
    sts.clear();
    sts.append(sigv4::kAlgorithm).append("\n").append(c.amzDate).append("\n").append(scope).append("\n");
    appendHex(sts, sha256(creq));
    std::string sig;  // (64 hex digits)
    sig.reserve(64);
    appendHex(sig, key.hmac.sign(sts));
    if (constantTimeEquals(sig, c.signature)) {
      out.accessKey = c.cred.accessKey;
      out.signingKey = key.key;
      out.scope = scope;
      out.amzDate = c.amzDate;
      out.seedSignature = c.signature;
      return std::nullopt;
    }
    if (i == 0) {
      firstCreq = creq;
      firstSts = sts;
    }
  }
  return fail(S3Error::SignatureDoesNotMatch, {},
              {{"AWSAccessKeyId", c.cred.accessKey},
               {"StringToSign", firstSts},
               {"SignatureProvided", std::string(c.signature)},
               {"CanonicalRequest", firstCreq}});
}

std::optional<S3Failure> payloadModeOf(std::string_view v, VerifiedAuth& out) {
  if (v == sigv4::kUnsignedPayload) out.payload = PayloadMode::Unsigned;
  else if (v == sigv4::kStreamingPayload) out.payload = PayloadMode::StreamingSigned;
  else if (v == sigv4::kStreamingPayloadTrailer) out.payload = PayloadMode::StreamingSignedTrailer;
  else if (v == sigv4::kStreamingUnsignedTrailer) out.payload = PayloadMode::StreamingUnsignedTrailer;
  else if (isHex64(v)) {
    out.payload = PayloadMode::Sha256;
    out.payloadHash = std::string(v);
    std::transform(out.payloadHash.begin(), out.payloadHash.end(), out.payloadHash.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  } else {
    return fail(S3Error::InvalidArgument,
                "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, "
                "STREAMING-UNSIGNED-PAYLOAD-TRAILER, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER or a valid "
                "sha256 value.");
  }
  return std::nullopt;
}

AuthResult verifyHeader(const AuthInput& in, std::string_view header, const KeyTable& keys, const AuthOptions& opts) {
  AuthResult r;
  if (header.substr(0, 4) == "AWS "sv) return verifyV2Header(in, header, keys, opts);
  if (header.substr(0, sigv4::kAlgorithm.size()) != sigv4::kAlgorithm)
    return {fail(S3Error::AuthorizationHeaderMalformed, "Unsupported authorization algorithm."), {}};

  Claim c;
  std::string_view credential, signedHeaders;  // (views into `header`)
  std::string_view rest = header.substr(sigv4::kAlgorithm.size());
  while (!rest.empty()) {
    auto comma = rest.find(',');
    std::string_view part = trim(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    auto eq = part.find('=');
    if (eq == std::string_view::npos) continue;
    auto name = part.substr(0, eq), value = part.substr(eq + 1);
    if (name == "Credential") credential = value;
    else if (name == "SignedHeaders") signedHeaders = value;
    else if (name == "Signature") c.signature = value;
  }
  auto cred = parseCredential(credential);
  if (!cred || signedHeaders.empty() || c.signature.empty())
    return {fail(S3Error::AuthorizationHeaderMalformed,
                 "The authorization header is malformed; it must carry Credential, SignedHeaders and Signature."),
            {}};
  c.cred = std::move(*cred);
  c.signedHeaders = splitSignedHeaders(signedHeaders);

  if (const auto* d = findHeader(*in.headers, "x-amz-date")) {
    auto t = parseAmzDate(*d);
    if (!t) return {fail(S3Error::AccessDenied, "AWS authentication requires a valid Date or x-amz-date header"), {}};
    c.time = *t;
    c.amzDate = *d;
  } else if (const auto* hd = findHeader(*in.headers, "date")) {
    auto t = parseHttpDate(*hd);
    if (!t) return {fail(S3Error::AccessDenied, "AWS authentication requires a valid Date or x-amz-date header"), {}};
    c.time = *t;
    c.amzDate = formatAmzDate(*t);
  } else {
    return {fail(S3Error::AccessDenied, "AWS authentication requires a valid Date or x-amz-date header"), {}};
  }
  const auto skew = in.now > c.time ? in.now - c.time : c.time - in.now;
  if (skew > opts.maxSkew)
    return {fail(S3Error::RequestTimeTooSkewed, {},
                 {{"RequestTime", c.amzDate}, {"ServerTime", formatAmzDate(in.now)},
                  {"MaxAllowedSkewMilliseconds", std::to_string(opts.maxSkew.count() * 1000)}}),
            {}};
  if (c.cred.date != c.amzDate.substr(0, 8))
    return {fail(S3Error::AuthorizationHeaderMalformed, "Invalid credential date. Date is not the same as X-Amz-Date."), {}};
  if (auto f = checkScope(c.cred, opts, S3Error::AuthorizationHeaderMalformed, "The authorization header is malformed"))
    return {f, {}};

  const auto* payload = findHeader(*in.headers, "x-amz-content-sha256");
  if (!payload) return {fail(S3Error::InvalidRequest, "Missing required header for this request: x-amz-content-sha256"), {}};
  if (auto f = payloadModeOf(*payload, r.auth)) return {f, {}};
  if (auto f = checkSignature(in, keys, c, *in.query, *payload, r.auth)) return {f, {}};
  return r;
}

AuthResult verifyPresigned(const AuthInput& in, const KeyTable& keys, const AuthOptions& opts) {
  const QueryParams& q = *in.query;
  const auto* alg = findParam(q, "X-Amz-Algorithm");
  if (!alg || *alg != sigv4::kAlgorithm)
    return {fail(S3Error::AuthorizationQueryParametersError, "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\""), {}};
  const auto* credential = findParam(q, "X-Amz-Credential");
  const auto* date = findParam(q, "X-Amz-Date");
  const auto* expires = findParam(q, "X-Amz-Expires");
  const auto* signedHeaders = findParam(q, "X-Amz-SignedHeaders");
  const auto* signature = findParam(q, "X-Amz-Signature");
  if (!credential || !date || !expires || !signedHeaders || !signature)
    return {fail(S3Error::AuthorizationQueryParametersError,
                 "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, "
                 "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters."),
            {}};
  Claim c;
  auto cred = parseCredential(*credential);
  if (!cred) return {fail(S3Error::AuthorizationQueryParametersError, "Error parsing the X-Amz-Credential parameter."), {}};
  c.cred = std::move(*cred);
  if (auto f = checkScope(c.cred, opts, S3Error::AuthorizationQueryParametersError,
                          "Error parsing the X-Amz-Credential parameter"))
    return {f, {}};
  auto t = parseAmzDate(*date);
  if (!t) return {fail(S3Error::AuthorizationQueryParametersError, "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\""), {}};
  c.time = *t;
  c.amzDate = *date;
  long long secs = -1;
  if (!expires->empty() && expires->size() < 10 && std::all_of(expires->begin(), expires->end(), ::isdigit))
    secs = std::stoll(*expires);
  if (secs < 1 || secs > 604800)
    return {fail(S3Error::AuthorizationQueryParametersError,
                 "X-Amz-Expires must be between 1 and 604800 seconds (one week)."),
            {}};
  if (c.cred.date != c.amzDate.substr(0, 8))
    return {fail(S3Error::AuthorizationQueryParametersError, "Invalid credential date. Date is not the same as X-Amz-Date."), {}};
  if (in.now > c.time + std::chrono::seconds(secs))
    return {fail(S3Error::AccessDenied, "Request has expired",
                 {{"X-Amz-Expires", *expires},
                  {"Expires", formatAmzDate(c.time + std::chrono::seconds(secs))},
                  {"ServerTime", formatAmzDate(in.now)}}),
            {}};
  if (c.time > in.now + std::chrono::minutes(15))
    return {fail(S3Error::AccessDenied, "Request is not valid yet"), {}};
  c.signedHeaders = splitSignedHeaders(*signedHeaders);
  c.signature = *signature;

  QueryParams canonical;
  canonical.reserve(q.size());
  for (const auto& kv : q)
    if (kv.first != "X-Amz-Signature") canonical.push_back(kv);
  AuthResult r;
  r.auth.presigned = true;
  r.auth.payload = PayloadMode::Unsigned;
  if (auto f = checkSignature(in, keys, c, canonical, sigv4::kUnsignedPayload, r.auth)) return {f, {}};
  return r;
}

}  // namespace

const std::string* findParam(const QueryParams& q, std::string_view name) {
  for (const auto& [k, v] : q)
    if (k == name) return &v;
  return nullptr;
}

const std::string* findHeader(const sigv4::HeaderList& h, std::string_view name) {
  for (const auto& [k, v] : h)
    if (k == name) return &v;
  return nullptr;
}

bool isPresignParam(std::string_view n) {
  return n == "AWSAccessKeyId" || n == "Signature" || n == "Expires" || n == "X-Amz-Algorithm" || n == "X-Amz-Credential" || n == "X-Amz-Date" || n == "X-Amz-Expires" ||
         n == "X-Amz-SignedHeaders" || n == "X-Amz-Signature" || n == "X-Amz-Security-Token";
}

AuthResult verifyRequest(const AuthInput& in, const KeyTable& keys, const AuthOptions& opts) {
  if (const auto* h = findHeader(*in.headers, "authorization")) return verifyHeader(in, *h, keys, opts);
  if (findParam(*in.query, "X-Amz-Signature") || findParam(*in.query, "X-Amz-Algorithm") ||
      findParam(*in.query, "X-Amz-Credential"))
    return verifyPresigned(in, keys, opts);
  if (findParam(*in.query, "Signature") && findParam(*in.query, "AWSAccessKeyId")) return verifyV2Query(in, keys);
  if (!opts.allowAnonymous) return {fail(S3Error::AccessDenied, "Anonymous requests are not allowed."), {}};
  AuthResult r;
  r.auth.anonymous = true;
  const auto* payload = findHeader(*in.headers, "x-amz-content-sha256");
  if (payload) {
    if (auto f = payloadModeOf(*payload, r.auth)) return {f, {}};
    // Without a seed signature nothing can check signed chunks: take them as unsigned.
    if (r.auth.payload == PayloadMode::StreamingSigned || r.auth.payload == PayloadMode::StreamingSignedTrailer)
      return {fail(S3Error::AccessDenied, "Signed streaming payloads need a signed request."), {}};
  }
  return r;
}

}  // namespace granary::s3api

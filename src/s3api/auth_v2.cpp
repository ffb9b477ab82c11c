#include "s3api/auth_v2.h"

#include <algorithm>
#include <array>

#include "common/timeutil.h"

namespace granary::s3api {
namespace {

// The query parameters that are part of SigV2's canonical resource.
constexpr std::array<std::string_view, 31> kSubresources = {
    "acl", "cors", "delete", "lifecycle", "location", "logging", "notification", "partNumber", "policy",
    "requestPayment", "response-cache-control", "response-content-disposition", "response-content-encoding",
    "response-content-language", "response-content-type", "response-expires", "restore", "tagging", "torrent",
    "uploadId", "uploads", "versionId", "versioning", "versions", "website", "replication", "accelerate",
    "encryption", "inventory", "metrics", "select"};

bool isSubresource(std::string_view n) {
  return std::find(kSubresources.begin(), kSubresources.end(), n) != kSubresources.end();
}

AuthResult failure(S3Error e, std::string msg = {}, ErrorFields extra = {}) {
  return {S3Failure{e, std::move(msg), std::move(extra)}, {}};
}

AuthResult check(const AuthInput& in, const KeyTable& keys, const std::string& ak, const std::string& sig,
                 std::string_view dateOrExpires) {
  const std::string* secret = keys.secretFor(ak);
  if (!secret) return failure(S3Error::InvalidAccessKeyId, {}, {{"AWSAccessKeyId", ak}});
  const std::string sts = sigv2StringToSign(in, dateOrExpires);
  bool match = constantTimeEquals(hmacSha1Base64(*secret, sts), sig);
  if (!match && !in.virtualHosted && !in.bucket.empty() && in.rawPath.size() == in.bucket.size() + 1 &&
      in.rawPath.substr(1) == in.bucket) {
    // A path-style request for a bucket ("GET /bucket?prefix=") whose resource was signed as "/bucket/"
    // (boto3 presigns bucket listings so), which S3 accepts as the same resource.
    const std::string slashed = std::string(in.rawPath) + "/";
    AuthInput alt = in;
    alt.rawPath = slashed;
    match = constantTimeEquals(hmacSha1Base64(*secret, sigv2StringToSign(alt, dateOrExpires)), sig);
  }
  if (!match)
    return failure(S3Error::SignatureDoesNotMatch, {},
                   {{"AWSAccessKeyId", ak}, {"StringToSign", sts}, {"SignatureProvided", sig}});
  AuthResult r;
  r.auth.accessKey = ak;
  r.auth.payload = PayloadMode::Unsigned;
  return r;
}

}  // namespace

std::string sigv2StringToSign(const AuthInput& in, std::string_view dateOrExpires) {
  auto header = [&](std::string_view n) {
    const auto* v = findHeader(*in.headers, n);
    return v ? *v : std::string();
  };
  std::string sts(in.method);
  sts.append("\n").append(header("content-md5")).append("\n").append(header("content-type")).append("\n");
  sts.append(dateOrExpires).append("\n");

  std::vector<std::pair<std::string, std::string>> amz;
  for (const auto& [k, v] : *in.headers)
    if (k.rfind("x-amz-", 0) == 0) amz.emplace_back(k, sigv4::canonicalHeaderValue(v));
  std::stable_sort(amz.begin(), amz.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (std::size_t i = 0; i < amz.size(); ++i) {
    if (i > 0 && amz[i].first == amz[i - 1].first) {
      sts.back() = ',';  // join repeated headers: replace the previous '\n'
      sts.append(amz[i].second).append("\n");
      continue;
    }
    sts.append(amz[i].first).append(":").append(amz[i].second).append("\n");
  }

  if (in.virtualHosted) sts.append("/").append(in.bucket);
  sts.append(in.rawPath);
  std::vector<std::pair<std::string, std::string>> sub;
  for (const auto& [k, v] : *in.query)
    if (isSubresource(k)) sub.emplace_back(k, v);
  std::stable_sort(sub.begin(), sub.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (std::size_t i = 0; i < sub.size(); ++i) {
    sts.append(i == 0 ? "?" : "&").append(sub[i].first);
    if (!sub[i].second.empty()) sts.append("=").append(sub[i].second);
  }
  return sts;
}

AuthResult verifyV2Header(const AuthInput& in, std::string_view header, const KeyTable& keys, const AuthOptions& opts) {
  std::string_view cred = header.substr(4);
  auto colon = cred.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == cred.size())
    return failure(S3Error::AuthorizationHeaderMalformed, "Expected \"AWS AccessKeyId:Signature\".");
  std::string date;
  std::optional<std::chrono::system_clock::time_point> t;
  if (const auto* xd = findHeader(*in.headers, "x-amz-date")) {
    t = parseHttpDate(*xd);
    if (!t) t = parseAmzDate(*xd);
  } else if (const auto* d = findHeader(*in.headers, "date")) {
    date = *d;
    t = parseHttpDate(*d);
  }
  if (!t) return failure(S3Error::AccessDenied, "AWS authentication requires a valid Date or x-amz-date header");
  const auto skew = in.now > *t ? in.now - *t : *t - in.now;
  if (skew > opts.maxSkew)
    return failure(S3Error::RequestTimeTooSkewed, {}, {{"ServerTime", formatAmzDate(in.now)}});
  return check(in, keys, std::string(cred.substr(0, colon)), std::string(cred.substr(colon + 1)), date);
}

AuthResult verifyV2Query(const AuthInput& in, const KeyTable& keys) {
  const auto* ak = findParam(*in.query, "AWSAccessKeyId");
  const auto* sig = findParam(*in.query, "Signature");
  const auto* expires = findParam(*in.query, "Expires");
  if (!ak || !sig || !expires || expires->empty() || expires->size() > 12 ||
      !std::all_of(expires->begin(), expires->end(), ::isdigit))
    return failure(S3Error::AccessDenied, "Query-string authentication requires the Signature, Expires and "
                                          "AWSAccessKeyId parameters");
  // Compared in seconds: an Expires past what the clock can represent (year 2262) must not overflow the
  // conversion (found by fuzzing); it simply has not expired.
  const long long expiresAt = std::stoll(*expires);
  const long long nowSeconds = std::chrono::duration_cast<std::chrono::seconds>(in.now.time_since_epoch()).count();
  if (nowSeconds > expiresAt)
    return failure(S3Error::AccessDenied, "Request has expired",
                   {{"Expires", formatAmzDate(std::chrono::system_clock::from_time_t(static_cast<time_t>(expiresAt)))},
                    {"ServerTime", formatAmzDate(in.now)}});
  auto r = check(in, keys, *ak, *sig, *expires);
  r.auth.presigned = true;
  return r;
}

}  // namespace granary::s3api

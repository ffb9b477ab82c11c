#include "s3api/request_checks.h"

#include <algorithm>
#include <iterator>

#include "s3api/auth.h"

namespace granary::s3api {
namespace {

/// Response header overrides of a GET (they name response headers, so their values become header values).
bool isResponseOverride(std::string_view param) {
  return param == "response-content-type" || param == "response-content-language" || param == "response-expires" ||
         param == "response-cache-control" || param == "response-content-disposition" ||
         param == "response-content-encoding";
}

std::optional<std::uint32_t> parsePartNumber(std::string_view v) {
  if (v.empty() || v.size() > 5 || !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  std::uint32_t n = 0;
  for (char c : v) n = n * 10 + static_cast<std::uint32_t>(c - '0');
  if (n < 1 || n > kMaxPartNumber) return std::nullopt;
  return n;
}

/// A short, printable copy of a client value for an error document, or "" when it is neither.
std::string echoable(std::string_view v) {
  if (v.size() > 64 || !isSafeHeaderValue(v)) return {};
  return std::string(v);
}

/// x-amz-tagging: "k1=v1&k2=v2", URL-encoded; S3's limits on count and lengths.
std::optional<S3Failure> checkTaggingHeader(std::string_view v) {
  const auto tags = parseQuery(v);
  if (!tags) return S3Failure{S3Error::InvalidArgument, "The header 'x-amz-tagging' shall be encoded as UTF-8 URL query parameters.", {}};
  if (tags->size() > 10) return S3Failure{S3Error::InvalidTag, "Object tags cannot be greater than 10", {}};
  for (std::size_t i = 0; i < tags->size(); ++i) {
    const auto& [k, val] = (*tags)[i];
    if (k.empty() || k.size() > 128) return S3Failure{S3Error::InvalidTag, "The TagKey you have provided is invalid", {}};
    if (val.size() > 256) return S3Failure{S3Error::InvalidTag, "The TagValue you have provided is invalid", {}};
    for (std::size_t j = 0; j < i; ++j)
      if ((*tags)[j].first == k) return S3Failure{S3Error::InvalidTag, "Cannot provide multiple Tags with the same key", {}};
  }
  return std::nullopt;
}

}  // namespace

S3Result<void> checkStoredHeaders(const sigv4::HeaderList& headers) {
  for (const auto& [name, value] : headers) {
    if (name == "x-amz-tagging") {
      if (auto bad = checkTaggingHeader(value)) return *bad;
    } else if (name == "x-amz-storage-class") {
      // S3's classes are upper-case words; RGW and MinIO add their own, of the same shape.
      if (value.empty() || value.size() > 64 || !std::all_of(value.begin(), value.end(), [](char c) {
            return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
          }))
        return S3Failure{S3Error::InvalidStorageClass, {}, {}};
    } else if (name == "x-amz-website-redirect-location") {
      if (!(value.starts_with("/") || value.starts_with("http://") || value.starts_with("https://")) ||
          value.size() > 2048)
        return S3Failure{S3Error::InvalidRedirectLocation, {}, {}};
    } else if (name == "x-amz-acl") {
      static constexpr std::string_view kCanned[] = {"private", "public-read", "public-read-write",
                                                     "authenticated-read", "aws-exec-read", "bucket-owner-read",
                                                     "bucket-owner-full-control", "log-delivery-write"};
      if (std::find(std::begin(kCanned), std::end(kCanned), value) == std::end(kCanned))
        return S3Failure{S3Error::InvalidArgument, "The canned ACL is not valid.", {{"ArgumentName", "x-amz-acl"}}};
    }
  }
  return {};
}

bool isSafeHeaderValue(std::string_view v) {
  return std::none_of(v.begin(), v.end(), [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return (c < 0x20 && c != '\t') || c == 0x7f;
  });
}

std::uint32_t partCountOf(std::string_view etag) {
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') etag = etag.substr(1, etag.size() - 2);
  const auto dash = etag.rfind('-');
  if (dash == std::string_view::npos || dash + 1 == etag.size() || etag.size() - dash - 1 > 5) return 1;
  std::uint32_t n = 0;
  for (char c : etag.substr(dash + 1)) {
    if (c < '0' || c > '9') return 1;
    n = n * 10 + static_cast<std::uint32_t>(c - '0');
  }
  return n == 0 ? 1 : n;
}

S3Result<void> checkSingletonHeaders(const sigv4::HeaderList& headers) {
  static constexpr std::string_view kOnce[] = {
      "host",          "authorization",    "x-amz-date", "date", "x-amz-content-sha256", "x-amz-decoded-content-length",
      "content-md5",   "content-type",     "range",      "x-amz-copy-source", "x-amz-copy-source-range",
      "x-amz-trailer", "x-amz-security-token", "if-match", "if-none-match", "if-modified-since",
      "if-unmodified-since", "expect"};
  static_assert(std::size(kOnce) <= 32);
  std::uint32_t seen = 0;  // one pass over the headers (this runs on every request, hits included)
  for (const auto& [name, value] : headers) {
    for (std::size_t i = 0; i < std::size(kOnce); ++i) {
      if (name != kOnce[i]) continue;
      if (seen & (1u << i))
        return S3Failure{S3Error::InvalidRequest, "The request carries more than one " + name + " header.", {}};
      seen |= 1u << i;
      break;
    }
  }
  return {};
}

S3Result<void> checkRequest(std::string_view method, S3Op op, const RoutedRequest& r,
                            const sigv4::HeaderList& headers) {
  if (r.key.size() > kMaxKeyBytes)
    return S3Failure{S3Error::KeyTooLongError, {},
                     {{"Size", std::to_string(r.key.size())}, {"MaxSizeAllowed", std::to_string(kMaxKeyBytes)}}};
  if (r.bucket.size() > kMaxBucketNameBytes)
    return S3Failure{S3Error::InvalidBucketName, "The bucket name is longer than 255 bytes.", {}};
  // S3's bucket names (the legacy ones included: upper case, '_'): anything else, a '/' from a Host
  // header above all, would name another bucket or key at the backend than the one Granary acts on.
  if (!r.bucket.empty() && !std::all_of(r.bucket.begin(), r.bucket.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
               c == '_';
      }))
    return S3Failure{S3Error::InvalidBucketName, {}, {}};
  // A parameter given twice is read once by Granary (its access check, its cache key) and maybe the other
  // time by the backend: refused, as no SDK sends one twice.
  // Few requests carry more than a dozen; a backend may keep only so many (Node's querystring: 1,000).
  if (r.query.size() > kMaxQueryParams)
    return S3Failure{S3Error::InvalidArgument, "The request has more than " + std::to_string(kMaxQueryParams) +
                                                   " query parameters.", {}};
  if (r.query.size() > 1) {
    std::vector<std::string_view> names;
    names.reserve(r.query.size());
    for (const auto& kv : r.query) names.emplace_back(kv.first);
    std::sort(names.begin(), names.end());
    if (auto twice = std::adjacent_find(names.begin(), names.end()); twice != names.end())
      return S3Failure{S3Error::InvalidArgument, "A query parameter may appear only once.",
                       {{"ArgumentName", echoable(*twice)}}};
  }
  for (const auto& [name, value] : r.query)
    if (isResponseOverride(name) && !isSafeHeaderValue(value))
      return S3Failure{S3Error::InvalidArgument, "Response header overrides may not contain control characters.",
                       {{"ArgumentName", name}}};
  const std::string* part = findParam(r.query, "partNumber");
  const bool read = op == S3Op::GetObject || op == S3Op::HeadObject;
  if (part && (read || op == S3Op::UploadPart || op == S3Op::UploadPartCopy) && !parsePartNumber(*part))
    return S3Failure{S3Error::InvalidArgument, "Part number must be an integer between 1 and 10000, inclusive",
                     {{"ArgumentName", "partNumber"}, {"ArgumentValue", echoable(*part)}}};
  if (part && read && findHeader(headers, "range"))
    return S3Failure{S3Error::InvalidRequest, "Cannot specify both Range header and partNumber query parameter", {}};
  if ((method == "PUT" || method == "POST") &&
      (op == S3Op::PutObject || op == S3Op::CopyObject || op == S3Op::CreateMultipartUpload)) {
    if (auto stored = checkStoredHeaders(headers); !stored) return stored.error();
    std::size_t meta = 0;
    for (const auto& [name, value] : headers)
      if (name.starts_with("x-amz-meta-")) meta += name.size() - 11 + value.size();
    if (meta > kMaxUserMetadataBytes)
      return S3Failure{S3Error::MetadataTooLarge, {},
                       {{"Size", std::to_string(meta)}, {"MaxSizeAllowed", std::to_string(kMaxUserMetadataBytes)}}};
  }
  return {};
}

}  // namespace granary::s3api

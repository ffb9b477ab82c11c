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

}  // namespace

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

std::optional<S3Failure> checkSingletonHeaders(const sigv4::HeaderList& headers) {
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
  return std::nullopt;
}

std::optional<S3Failure> checkRequest(std::string_view method, std::string_view op, const RoutedRequest& r,
                                      const sigv4::HeaderList& headers) {
  if (r.key.size() > kMaxKeyBytes)
    return S3Failure{S3Error::KeyTooLongError, {},
                     {{"Size", std::to_string(r.key.size())}, {"MaxSizeAllowed", std::to_string(kMaxKeyBytes)}}};
  if (r.bucket.size() > kMaxBucketNameBytes)
    return S3Failure{S3Error::InvalidBucketName, "The bucket name is longer than 255 bytes.", {}};
  for (const auto& [name, value] : r.query)
    if (isResponseOverride(name) && !isSafeHeaderValue(value))
      return S3Failure{S3Error::InvalidArgument, "Response header overrides may not contain control characters.",
                       {{"ArgumentName", name}}};
  const std::string* part = findParam(r.query, "partNumber");
  const bool read = op == "GetObject" || op == "HeadObject";
  if (part && (read || op == "UploadPart" || op == "UploadPartCopy") && !parsePartNumber(*part))
    return S3Failure{S3Error::InvalidArgument, "Part number must be an integer between 1 and 10000, inclusive",
                     {{"ArgumentName", "partNumber"}, {"ArgumentValue", echoable(*part)}}};
  if (part && read && findHeader(headers, "range"))
    return S3Failure{S3Error::InvalidRequest, "Cannot specify both Range header and partNumber query parameter", {}};
  if ((method == "PUT" || method == "POST") &&
      (op == "PutObject" || op == "CopyObject" || op == "CreateMultipartUpload")) {
    std::size_t meta = 0;
    for (const auto& [name, value] : headers)
      if (name.starts_with("x-amz-meta-")) meta += name.size() - 11 + value.size();
    if (meta > kMaxUserMetadataBytes)
      return S3Failure{S3Error::MetadataTooLarge, {},
                       {{"Size", std::to_string(meta)}, {"MaxSizeAllowed", std::to_string(kMaxUserMetadataBytes)}}};
  }
  return std::nullopt;
}

}  // namespace granary::s3api

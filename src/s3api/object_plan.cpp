#include "s3api/object_plan.h"

#include <algorithm>
#include <charconv>
#include <utility>

#include "common/timeutil.h"
#include "s3api/auth.h"
#include "s3api/request_checks.h"

namespace granary::s3api {
namespace {

/// Sets header `name` (lower case) to `value`, replacing what the list held under that name.
void setHeader(sigv4::HeaderList& headers, std::string_view name, std::string value) {
  std::erase_if(headers, [&](const auto& h) { return h.first == name; });
  headers.emplace_back(std::string(name), std::move(value));
}

/// A part number as the client wrote it; 0 (no part) for anything but decimal digits that fit.
std::uint64_t partNumberOf(std::string_view s) {
  std::uint64_t n = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  return ec == std::errc() && end == s.data() + s.size() ? n : 0;
}

std::string contentRange(const ResolvedRange& r, std::uint64_t size) {
  return "bytes " + std::to_string(r.offset) + "-" + std::to_string(r.offset + r.length - 1) + "/" +
         std::to_string(size);
}

S3Failure preconditionFailed(const sigv4::HeaderList& headers) {
  const char* condition = findHeader(headers, "if-match") ? "If-Match" : "If-Unmodified-Since";
  return S3Failure{S3Error::PreconditionFailed, {}, {{"Condition", condition}}};
}

/// The part's bytes (nullopt: the whole object), or InvalidPartNumber / InternalError.
S3Result<std::optional<ResolvedRange>> partRange(const std::string& number, const ObjectFacts& object,
                                                 const PartLocation& part) {
  if (part.range) {  // located by the caller: the number is one of the object's parts
    if (part.range->offset > object.size || part.range->length > object.size - part.range->offset)
      return S3Failure{S3Error::InternalError, "The part lies past the end of the object.", {}};
    return std::optional<ResolvedRange>(*part.range);
  }
  const std::uint64_t count = part.partsCount.value_or(partCountOf(object.etag));
  const std::uint64_t n = partNumberOf(number);
  if (n < 1 || n > count) {
    std::string asked = isSafeHeaderValue(number) && number.size() <= 64 ? number : std::string();
    return S3Failure{S3Error::InvalidPartNumber, {},
                     {{"PartNumberRequested", std::move(asked)}, {"ActualPartCount", std::to_string(count)}}};
  }
  return std::optional<ResolvedRange>();
}

/// The Range header's bytes (nullopt: the whole object, for no Range or one S3 ignores), or InvalidRange.
S3Result<std::optional<ResolvedRange>> rangeOf(const sigv4::HeaderList& headers, std::uint64_t size) {
  const std::string* rh = findHeader(headers, "range");
  ByteRange br;
  if (!rh || parseRange(*rh, br) != RangeParse::Ok) return std::optional<ResolvedRange>();  // multiple: ignored
  if (auto rr = resolveRange(br, size)) return std::optional<ResolvedRange>(*rr);
  std::string asked = isSafeHeaderValue(*rh) ? *rh : std::string();
  return S3Failure{S3Error::InvalidRange, {},
                   {{"RangeRequested", std::move(asked)}, {"ActualObjectSize", std::to_string(size)}}};
}

/// The object's own headers, its ETag, then the response-* overrides whose values can be sent.
S3Result<sigv4::HeaderList> objectHeaders(const ObjectRequest& req, const ObjectFacts& object) {
  sigv4::HeaderList out = object.headers;
  setHeader(out, "etag", std::string(object.etag));
  for (const auto& [param, value] : req.query) {
    const std::string_view header = responseOverrideHeader(param);
    if (header.empty()) continue;
    if (req.anonymous)
      return S3Failure{S3Error::InvalidRequest,
                       "Request specific response headers cannot be used for anonymous GET requests.", {}};
    if (isSafeHeaderValue(value)) setHeader(out, header, value);
  }
  return out;
}

}  // namespace

bool etagListMatches(std::string_view list, std::string_view etag) {
  auto strip = [](std::string_view t) {
    while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
    while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
    if (t.starts_with("W/")) t.remove_prefix(2);
    if (t.size() >= 2 && t.front() == '"' && t.back() == '"') t = t.substr(1, t.size() - 2);
    return t;
  };
  const std::string_view want = strip(etag);
  while (!list.empty()) {
    const auto comma = list.find(',');
    const std::string_view tok = strip(list.substr(0, comma));
    if (tok == "*" || tok == want) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

Precondition evaluatePreconditions(const sigv4::HeaderList& headers, std::string_view etag,
                                   std::optional<std::chrono::system_clock::time_point> lastModified) {
  auto date = [&](std::string_view name) -> std::optional<std::chrono::system_clock::time_point> {
    const auto* v = findHeader(headers, name);
    return v ? parseHttpDate(*v) : std::nullopt;
  };
  if (const auto* im = findHeader(headers, "if-match")) {
    if (!etagListMatches(*im, etag)) return Precondition::Failed;
  } else if (auto ius = date("if-unmodified-since"); ius && lastModified && *lastModified > *ius) {
    return Precondition::Failed;
  }
  if (const auto* inm = findHeader(headers, "if-none-match")) {
    if (etagListMatches(*inm, etag)) return Precondition::NotModified;
  } else if (auto ims = date("if-modified-since"); ims && lastModified && *lastModified <= *ims) {
    return Precondition::NotModified;
  }
  return Precondition::Proceed;
}

std::string_view responseOverrideHeader(std::string_view param) {
  static constexpr std::pair<std::string_view, std::string_view> kMap[] = {
      {"response-content-type", "content-type"},           {"response-content-language", "content-language"},
      {"response-expires", "expires"},                     {"response-cache-control", "cache-control"},
      {"response-content-disposition", "content-disposition"}, {"response-content-encoding", "content-encoding"}};
  for (const auto& [p, h] : kMap)
    if (p == param) return h;
  return {};
}

const std::string* ObjectPlan::header(std::string_view name) const { return findHeader(headers, name); }

S3Result<ObjectPlan> planObject(const ObjectRequest& req, const ObjectFacts& object, const PartLocation& part) {
  const std::string* partNumber = findParam(req.query, "partNumber");
  if (partNumber && findHeader(req.headers, "range"))
    return S3Failure{S3Error::InvalidRequest, "Cannot specify both Range header and partNumber query parameter", {}};
  auto headers = objectHeaders(req, object);
  if (!headers) return headers.error();
  ObjectPlan plan;
  plan.headers = std::move(*headers);
  std::optional<std::chrono::system_clock::time_point> lastModified;
  if (const auto* lm = findHeader(object.headers, "last-modified")) lastModified = parseHttpDate(*lm);
  switch (evaluatePreconditions(req.headers, object.etag, lastModified)) {
    case Precondition::Failed:
      return preconditionFailed(req.headers);
    case Precondition::NotModified:
      plan.status = 304;
      return plan;
    case Precondition::Proceed:
      break;
  }
  auto range = partNumber ? partRange(*partNumber, object, part) : rangeOf(req.headers, object.size);
  if (!range) return range.error();
  const ResolvedRange bytes = range->value_or(ResolvedRange{0, object.size});
  if (range->has_value() && bytes.length > 0) {
    plan.status = 206;
    setHeader(plan.headers, "content-range", contentRange(bytes, object.size));
  }
  if (partNumber && part.partsCount) setHeader(plan.headers, "x-amz-mp-parts-count", std::to_string(*part.partsCount));
  setHeader(plan.headers, "accept-ranges", "bytes");
  setHeader(plan.headers, "content-length", std::to_string(bytes.length));
  if (!req.head && bytes.length > 0) plan.body = bytes;
  return plan;
}

std::string unsatisfiedContentRange(const S3Failure& failure) {
  if (failure.error != S3Error::InvalidRange) return {};
  for (const auto& [name, value] : failure.extra)
    if (name == "ActualObjectSize" && !value.empty()) return "bytes */" + value;
  return {};
}

}  // namespace granary::s3api

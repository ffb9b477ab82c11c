#pragma once
// S3's read rules for a GET or HEAD of an object Granary holds (in the cache, or in the write-back spool):
// preconditions, Range (416), partNumber, response-* overrides, the response's status and headers. Pure:
// no I/O; where a part lies is the caller's to learn (PartLocation). One planner, so that every local
// copy answers alike; one routine (ProxyHandler::servePlan) sends what it plans.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/sigv4.h"
#include "common/uri.h"
#include "s3api/range.h"
#include "s3api/result.h"

namespace granary::s3api {

/// If-Match / If-None-Match: a list of entity tags or "*" (weak tags compare by their opaque part).
bool etagListMatches(std::string_view list, std::string_view etag);

enum class Precondition { Proceed, NotModified, Failed };
/// RFC 7232's order, as S3 applies it: If-Match (else If-Unmodified-Since) can fail the request with 412;
/// then If-None-Match (else If-Modified-Since) can answer 304. Malformed dates are ignored.
Precondition evaluatePreconditions(const sigv4::HeaderList& headers, std::string_view etag,
                                   std::optional<std::chrono::system_clock::time_point> lastModified);

/// The response header a ?response-* parameter sets ("response-content-type" -> "content-type"), or ""
/// for any other parameter.
std::string_view responseOverrideHeader(std::string_view param);

/// The request, as the planner reads it.
struct ObjectRequest {
  bool head = false;                 // HEAD: the plan has headers and no body
  bool anonymous = false;            // unsigned: S3 refuses response-* overrides then
  const sigv4::HeaderList& headers;  // lower-case names: if-*, range
  const QueryParams& query;          // partNumber, response-*
};

/// The object, as the local copy describes it.
struct ObjectFacts {
  std::uint64_t size = 0;
  std::string_view etag;  // quoted, as sent
  /// The headers that describe the object (lower-case names): content-type, x-amz-meta-*, last-modified
  /// (read for If-Modified-Since / If-Unmodified-Since)...; replayed as they are.
  const sigv4::HeaderList& headers;
};

/// Where the part a ?partNumber= read asks for lies, as the caller learnt it (from the backend, or from
/// the spool's record). The default: not located, its count read from the ETag.
struct PartLocation {
  /// The part's bytes in the object. nullopt: not located (a backend that ignores partNumber answered
  /// the whole object): a number within the part count is answered with the whole object.
  std::optional<ResolvedRange> range;
  /// The part count as known (x-amz-mp-parts-count), shown to the client. nullopt: the ETag's "-N" counts
  /// (1 for a single-part object), and the count is not shown.
  std::optional<std::uint32_t> partsCount;
};

/// What to answer.
struct ObjectPlan {
  unsigned status = 200;  // 200, 206 or 304
  /// The response's headers (lower-case names, each once) but x-amz-request-id and Granary's own.
  sigv4::HeaderList headers;
  /// The bytes to send; nullopt for none (HEAD, 304, an empty object or part).
  std::optional<ResolvedRange> body;

  /// The value of header `name` (lower case), or null.
  const std::string* header(std::string_view name) const;
};

/// Plans the answer to a GET or HEAD of an object held locally.
/// @param part where the part lies; read only when the request names a partNumber.
/// @return the plan; or the error S3 answers with: PreconditionFailed (Condition: If-Match or
///         If-Unmodified-Since), InvalidRange (RangeRequested, ActualObjectSize; see unsatisfiedContentRange),
///         InvalidPartNumber (PartNumberRequested, ActualPartCount), InvalidRequest (partNumber beside a
///         Range; response-* overrides on an anonymous request), InternalError (a part located past the
///         object's end).
S3Result<ObjectPlan> planObject(const ObjectRequest& req, const ObjectFacts& object, const PartLocation& part = {});

/// The Content-Range header an error answer carries: "bytes */<size>" for InvalidRange with a known size
/// (ActualObjectSize), else "".
std::string unsatisfiedContentRange(const S3Failure& failure);

}  // namespace granary::s3api

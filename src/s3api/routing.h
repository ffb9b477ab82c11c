#pragma once
// Which bucket and key a request addresses: virtual-hosted style ("bucket.<domain>" in Host) or path
// style ("/bucket/key").

#include <optional>
#include <string>
#include <string_view>

#include "common/uri.h"

namespace granary::s3api {

struct RoutedRequest {
  std::string bucket;       // empty: service level (ListBuckets)
  std::string key;          // decoded; may contain "//", "..", '%', '+', spaces, UTF-8
  bool virtualHosted = false;
  std::string rawPath;      // as the client sent it
  std::string decodedPath;  // rawPath with %XX decoded
  QueryParams query;        // decoded, in the client's order
};

/// Strips a ":port" suffix from a Host header value (IPv6 literals in brackets kept whole).
std::string_view hostWithoutPort(std::string_view host);

/// A request target in absolute form (RFC 9112 section 3.2.2), "http://authority/path?query".
struct AbsoluteTarget {
  std::string_view authority;   // replaces the Host header (the RFC's rule)
  std::string originForm;       // "/path?query" (a target with no path names "/")
};
/// @return the parts of an absolute-form target ("http" or "https" scheme, any case); nullopt when the
///         target is not in absolute form. `ok` is false when it is, but malformed (no authority, or
///         userinfo).
std::optional<AbsoluteTarget> splitAbsoluteForm(std::string_view target, bool& ok);

/// Routes a request target. `domain` is the base host of virtual-hosted addressing (empty = path
/// style only); a Host equal to the domain, an IP literal or "localhost" is path style.
/// @return nullopt when the target is not an origin-form path or has malformed %-escapes.
std::optional<RoutedRequest> route(std::string_view target, std::string_view host, std::string_view domain);

}  // namespace granary::s3api

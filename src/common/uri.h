#pragma once
// URI encoding as SigV4 and S3 define it (RFC 3986 unreserved set), and query-string parsing.

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace granary {

using QueryParams = std::vector<std::pair<std::string, std::string>>;

/// Percent-encodes every byte outside A-Z a-z 0-9 '-' '_' '.' '~' as %XX (upper-case hex).
/// '/' is kept as is when encodeSlash is false (paths), encoded otherwise (query parts).
std::string uriEncode(std::string_view in, bool encodeSlash);
/// uriEncode, appended to `out`.
void appendUriEncoded(std::string& out, std::string_view in, bool encodeSlash);

/// Decodes %XX escapes. '+' stays '+' (S3 paths and SigV4 queries use %20 for space).
/// @return std::nullopt when an escape is malformed ("%G1", a trailing "%").
std::optional<std::string> uriDecode(std::string_view in);

/// Splits "a=1&b&c=%20" into decoded (name, value) pairs in order; a name without '=' has an empty value.
/// @return std::nullopt when any part has a malformed escape.
std::optional<QueryParams> parseQuery(std::string_view rawQuery);

/// The SigV4 canonical query string: names and values encoded, sorted by name then value.
std::string canonicalQueryString(const QueryParams& params);

/// Splits a request target "/p/a/th?query" into raw path and raw query (without '?').
std::pair<std::string_view, std::string_view> splitTarget(std::string_view target);

}  // namespace granary

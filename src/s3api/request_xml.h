#pragma once
// The XML request bodies Granary reads, checked before they reach the backend, with S3's errors:
// CompleteMultipartUpload (well-formed, parts present and in ascending order), DeleteObjects (1 to 1000
// objects, each with one key) and PutObjectTagging (at most 10 tags, S3's key and value limits).
//
// Granary must read these bodies exactly as the backend will: the keys DeleteObjects names are the keys
// it invalidates. So the text of an element is all of its character data (a comment may split it, CDATA
// and character references are decoded, whitespace is kept), and a body whose reading could differ
// between two XML parsers is refused as MalformedXML before it is sent: a DOCTYPE (custom entities), an
// encoding other than UTF-8, an element inside a value.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "s3api/errors.h"
#include "s3api/operation.h"

namespace granary::s3api {

/// The largest XML body Granary reads (and buffers) for any operation whose body is not object data.
inline constexpr std::size_t kMaxRequestXml = 4 << 20;

/// Operations whose body is a small XML document rather than object data: bounded by kMaxRequestXml
/// and read whole before anything is sent.
bool isXmlBodyOp(S3Op op);

/// @return the error S3 would answer for this body of operation `op`; nullopt when it is fine (or `op`
///         has no body Granary checks). Errors: MalformedXML, InvalidPartOrder, InvalidTag.
std::optional<S3Failure> checkRequestXml(S3Op op, std::string_view body);

/// The (part number, ETag as sent) pairs of a CompleteMultipartUpload body that checkRequestXml accepted.
std::vector<std::pair<std::uint32_t, std::string>> completeParts(std::string_view body);

/// The (key, version id) pairs a DeleteObjects body names (every <Key> in it, read as checkRequestXml
/// reads it); empty when it is not XML.
std::vector<std::pair<std::string, std::string>> deleteObjectsKeys(std::string_view body);

}  // namespace granary::s3api

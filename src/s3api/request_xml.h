#pragma once
// Checks of the XML bodies Granary understands before they reach the backend, with S3's errors:
// CompleteMultipartUpload (well-formed, parts present and in ascending order) and DeleteObjects
// (well-formed, 1 to 1000 keys).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "s3api/errors.h"

namespace granary::s3api {

/// @return the error S3 would answer for this body of operation `op`; nullopt when it is fine (or `op`
///         has no body Granary checks).
std::optional<S3Failure> checkRequestXml(std::string_view op, std::string_view body);

/// The (part number, ETag as sent) pairs of a CompleteMultipartUpload body that checkRequestXml accepted.
std::vector<std::pair<std::uint32_t, std::string>> completeParts(std::string_view body);

/// The (key, version id) pairs a DeleteObjects body names; empty when it is not XML.
std::vector<std::pair<std::string, std::string>> deleteObjectsKeys(std::string_view body);

}  // namespace granary::s3api

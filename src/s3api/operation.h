#pragma once
// Names the S3 operation a request is (for logs and metrics; forwarding does not depend on it).

#include <string_view>

#include "common/uri.h"

namespace granary::s3api {

/// "GetObject", "ListObjectsV2", "PutObject", ... or "Unknown".
std::string_view operationName(std::string_view method, bool hasBucket, bool hasKey, const QueryParams& query);

}  // namespace granary::s3api

#pragma once
// Names the S3 operation a request is (for logs and metrics; forwarding does not depend on it).

#include <string>
#include <string_view>

#include "common/uri.h"

namespace granary::s3api {

/// "GetObject", "ListObjectsV2", "PutObject", ... or "Unknown".
std::string_view operationName(std::string_view method, bool hasBucket, bool hasKey, const QueryParams& query);

/// What a request that may change objects at the backend changes, for the cache's invalidation.
enum class WriteScope {
  None,    // nothing cached: reads, and creating a bucket
  Key,     // the object the path names (PUT, DELETE, copy, multipart, tagging, ACL, restore...)
  Listed,  // the keys its body lists (DeleteObjects)
  Bucket,  // keys Granary cannot tell: a browser POST form upload (the key is inside the form), and any
           // other bucket-level write or operation Granary does not know (invalidated conservatively)
};
/// @param query the request's query (an object-level write with a parameter Granary does not know is
///        treated as Bucket: S3 Express's ?renameObject, for one, changes another key than the path's).
/// @param contentType the request's Content-Type header, or null.
WriteScope writeScope(std::string_view op, std::string_view method, bool hasKey, const QueryParams& query,
                      const std::string* contentType);

}  // namespace granary::s3api

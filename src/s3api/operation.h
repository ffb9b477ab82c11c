#pragma once
// The S3 operation a request is: resolved once (resolveOperation, the one place that reads an operation
// from a request), then known by its enum. Its name (logs, metrics, policy messages), its handler family
// (the front's dispatch table) and its traits come from one table (operation.cpp).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/uri.h"

namespace granary::s3api {

/// Every operation Granary tells apart. Adding one: a value here, a row in operation.cpp's table, a case
/// in resolveOperation, and (for a new family) a handler in the front's dispatch table.
enum class S3Op : std::uint8_t {
  Unknown,
  // Service and bucket level.
  ListBuckets,
  HeadBucket,
  CreateBucket,
  DeleteBucket,
  GetBucketLocation,
  GetBucketVersioning,
  GetBucketSubresource,
  PutBucketSubresource,
  DeleteBucketSubresource,
  // Listings of a bucket.
  ListObjects,
  ListObjectsV2,
  ListObjectVersions,
  ListMultipartUploads,
  // Objects.
  GetObject,
  HeadObject,
  PutObject,
  CopyObject,
  PostObject,
  DeleteObject,
  DeleteObjects,
  GetObjectTagging,
  PutObjectTagging,
  DeleteObjectTagging,
  GetObjectAcl,
  PutObjectAcl,
  // Multipart uploads.
  CreateMultipartUpload,
  UploadPart,
  UploadPartCopy,
  CompleteMultipartUpload,
  AbortMultipartUpload,
  ListParts,
};
inline constexpr std::size_t kS3OpCount = static_cast<std::size_t>(S3Op::ListParts) + 1;

/// Which of the front's handlers serves an operation (one handler, in its own file, per family).
enum class OpFamily : std::uint8_t {
  ObjectRead,   // GET/HEAD of an object: write-back spool, cache, backend (op_object_read.cpp)
  ObjectWrite,  // PUT, copy, POST form, DELETE, DeleteObjects (op_object_write.cpp)
  Multipart,    // multipart uploads (op_multipart.cpp)
  Listing,      // ListBuckets and the listings of a bucket (op_listing.cpp)
  Relay,        // bucket-level and the other operations: relayed as they are (op_relay.cpp)
};
inline constexpr std::size_t kOpFamilyCount = static_cast<std::size_t>(OpFamily::Relay) + 1;

/// One row of the operation table.
struct OpInfo {
  std::string_view name;  // as S3 names it: "GetObject", ... ("Unknown")
  OpFamily family;
  bool xmlBody = false;          // its request body is an XML document (read whole, checked)
  bool namesBucketInXml = false; // its XML answer names the bucket (<Name> or <Bucket> under the root)
  /// The root element of its XML answer, where backends that do not implement it answer anyway
  /// (s3rver answers GET ?versioning with a plain object listing); null for the others.
  const char* expectedXmlRoot = nullptr;
  bool copies = false;           // reads a copy source (x-amz-copy-source)
};

/// The operation's row.
const OpInfo& opInfo(S3Op op);
/// "GetObject", "ListObjectsV2", "PutObject", ... or "Unknown" (for logs and metrics).
inline std::string_view opName(S3Op op) { return opInfo(op).name; }
inline OpFamily opFamily(S3Op op) { return opInfo(op).family; }

/// The operation a request is: its method, whether it names a bucket and a key, its query, and
/// whether it carries x-amz-copy-source (a PUT with one is CopyObject, an UploadPart UploadPartCopy).
S3Op resolveOperation(std::string_view method, bool hasBucket, bool hasKey, const QueryParams& query,
                      bool hasCopySource = false);

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
WriteScope writeScope(S3Op op, std::string_view method, bool hasKey, const QueryParams& query,
                      const std::string* contentType);

}  // namespace granary::s3api

#include "s3api/operation.h"

#include <cctype>
#include <iterator>

namespace granary::s3api {
namespace {
bool has(const QueryParams& q, std::string_view name) {
  for (const auto& kv : q)
    if (kv.first == name) return true;
  return false;
}
const std::string* value(const QueryParams& q, std::string_view name) {
  for (const auto& kv : q)
    if (kv.first == name) return &kv.second;
  return nullptr;
}
/// A presigned URL's own parameters (SigV4 and SigV2): they name no operation.
bool signingParam(std::string_view n) {
  return n.starts_with("X-Amz-") || n == "AWSAccessKeyId" || n == "Signature" || n == "Expires";
}
}  // namespace

namespace {
using F = OpFamily;
/// The operation table, in S3Op's order (checked below and by operation_test).
constexpr OpInfo kOps[] = {
    {.name = "Unknown", .family = F::Relay},
    {.name = "ListBuckets", .family = F::Listing},
    {.name = "HeadBucket", .family = F::Relay},
    {.name = "CreateBucket", .family = F::Relay, .xmlBody = true},
    {.name = "DeleteBucket", .family = F::Relay},
    {.name = "GetBucketLocation", .family = F::Relay},
    {.name = "GetBucketVersioning", .family = F::Relay, .expectedXmlRoot = "VersioningConfiguration"},
    {.name = "GetBucketSubresource", .family = F::Relay},
    {.name = "PutBucketSubresource", .family = F::Relay, .xmlBody = true},
    {.name = "DeleteBucketSubresource", .family = F::Relay},
    {.name = "ListObjects", .family = F::Listing, .namesBucketInXml = true},
    {.name = "ListObjectsV2", .family = F::Listing, .namesBucketInXml = true},
    {.name = "ListObjectVersions", .family = F::Listing, .namesBucketInXml = true, .expectedXmlRoot = "ListVersionsResult"},
    {.name = "ListMultipartUploads", .family = F::Listing, .namesBucketInXml = true,
     .expectedXmlRoot = "ListMultipartUploadsResult"},
    {.name = "GetObject", .family = F::ObjectRead},
    {.name = "HeadObject", .family = F::ObjectRead},
    {.name = "PutObject", .family = F::ObjectWrite},
    {.name = "CopyObject", .family = F::ObjectWrite, .copies = true},
    {.name = "PostObject", .family = F::ObjectWrite, .xmlBody = true},
    {.name = "DeleteObject", .family = F::ObjectWrite},
    {.name = "DeleteObjects", .family = F::ObjectWrite, .xmlBody = true},
    {.name = "GetObjectTagging", .family = F::Relay, .expectedXmlRoot = "Tagging"},
    {.name = "PutObjectTagging", .family = F::Relay, .xmlBody = true},
    {.name = "DeleteObjectTagging", .family = F::Relay},
    {.name = "GetObjectAcl", .family = F::Relay},
    {.name = "PutObjectAcl", .family = F::Relay, .xmlBody = true},
    {.name = "CreateMultipartUpload", .family = F::Multipart, .namesBucketInXml = true,
     .expectedXmlRoot = "InitiateMultipartUploadResult"},
    {.name = "UploadPart", .family = F::Multipart},
    {.name = "UploadPartCopy", .family = F::Multipart, .copies = true},
    {.name = "CompleteMultipartUpload", .family = F::Multipart, .xmlBody = true, .namesBucketInXml = true},
    {.name = "AbortMultipartUpload", .family = F::Multipart},
    {.name = "ListParts", .family = F::Multipart, .namesBucketInXml = true, .expectedXmlRoot = "ListPartsResult"},
};
static_assert(std::size(kOps) == kS3OpCount, "one row per S3Op");
static_assert(kOps[static_cast<std::size_t>(S3Op::ListParts)].name == "ListParts", "rows in S3Op's order");
static_assert(kOps[static_cast<std::size_t>(S3Op::GetObject)].name == "GetObject", "rows in S3Op's order");

S3Op bucketOperation(std::string_view m, const QueryParams& q) {
  using enum S3Op;
  if (m == "GET") {
    if (has(q, "location")) return GetBucketLocation;
    if (has(q, "versioning")) return GetBucketVersioning;
    if (has(q, "versions")) return ListObjectVersions;
    if (has(q, "uploads")) return ListMultipartUploads;
    if (const auto* lt = value(q, "list-type"); lt && *lt == "2") return ListObjectsV2;
    for (const auto& kv : q)
      if (kv.first != "prefix" && kv.first != "delimiter" && kv.first != "marker" && kv.first != "max-keys" &&
          kv.first != "encoding-type" && kv.first != "x-id" && !signingParam(kv.first))
        return GetBucketSubresource;
    return ListObjects;
  }
  if (m == "HEAD") return HeadBucket;
  if (m == "PUT") return q.empty() ? CreateBucket : PutBucketSubresource;
  if (m == "DELETE") return q.empty() ? DeleteBucket : DeleteBucketSubresource;
  if (m == "POST" && has(q, "delete")) return DeleteObjects;
  return Unknown;
}

S3Op objectOperation(std::string_view m, const QueryParams& q, bool copy) {
  using enum S3Op;
  if (m == "GET") {
    if (has(q, "uploadId")) return ListParts;
    if (has(q, "tagging")) return GetObjectTagging;
    if (has(q, "acl")) return GetObjectAcl;
    return GetObject;
  }
  if (m == "HEAD") return HeadObject;
  if (m == "PUT") {
    if (has(q, "partNumber") && has(q, "uploadId")) return copy ? UploadPartCopy : UploadPart;
    if (has(q, "tagging")) return PutObjectTagging;
    if (has(q, "acl")) return PutObjectAcl;
    return copy ? CopyObject : PutObject;
  }
  if (m == "DELETE") {
    if (has(q, "uploadId")) return AbortMultipartUpload;
    if (has(q, "tagging")) return DeleteObjectTagging;
    return DeleteObject;
  }
  if (m == "POST") {
    if (has(q, "uploads")) return CreateMultipartUpload;
    if (has(q, "uploadId")) return CompleteMultipartUpload;
    return PostObject;
  }
  return Unknown;
}
}  // namespace

const OpInfo& opInfo(S3Op op) {
  const auto i = static_cast<std::size_t>(op);
  return kOps[i < kS3OpCount ? i : 0];
}

S3Op resolveOperation(std::string_view m, bool hasBucket, bool hasKey, const QueryParams& q, bool hasCopySource) {
  if (!hasBucket) return m == "GET" ? S3Op::ListBuckets : S3Op::Unknown;
  if (!hasKey) return bucketOperation(m, q);
  return objectOperation(m, q, hasCopySource);
}

namespace {
/// Query parameters of the object-level writes Granary knows to change only the path's key (and the
/// signature parameters, and the operation hint some SDKs add).
bool knownObjectWriteParam(std::string_view n) {
  static constexpr std::string_view kKnown[] = {
      "uploadId", "partNumber", "uploads", "versionId", "tagging", "acl", "restore", "select", "select-type",
      "retention", "legal-hold", "x-id", "AWSAccessKeyId", "Signature", "Expires", "X-Amz-Algorithm",
      "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature",
      "X-Amz-Security-Token"};
  for (const auto k : kKnown)
    if (k == n) return true;
  // Presigners that carry headers as parameters (the AWS SDKs for JavaScript v3 and Java v2 move
  // x-amz-checksum-*, x-amz-meta-*, x-amz-acl... into the query of a presigned PUT).
  return n.size() > 6 && (n.substr(0, 6) == "x-amz-" || n.substr(0, 6) == "X-Amz-");
}
}  // namespace

WriteScope writeScope(S3Op op, std::string_view method, bool hasKey, const QueryParams& query,
                      const std::string* contentType) {
  if (method == "GET" || method == "HEAD" || method == "OPTIONS") return WriteScope::None;
  if (contentType && contentType->size() >= 19) {
    std::string t = contentType->substr(0, 19);
    for (auto& c : t) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (t == "multipart/form-data") return WriteScope::Bucket;  // a browser form: its key is in the body
  }
  if (op == S3Op::DeleteObjects) return WriteScope::Listed;
  if (hasKey) {
    for (const auto& kv : query)
      if (!knownObjectWriteParam(kv.first)) return WriteScope::Bucket;  // an operation Granary does not know
    return WriteScope::Key;
  }
  if (op == S3Op::CreateBucket) return WriteScope::None;
  return WriteScope::Bucket;
}

}  // namespace granary::s3api

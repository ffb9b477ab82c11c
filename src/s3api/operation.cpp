#include "s3api/operation.h"

#include <cctype>

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

std::string_view operationName(std::string_view m, bool hasBucket, bool hasKey, const QueryParams& q) {
  if (!hasBucket) return m == "GET" ? "ListBuckets" : "Unknown";
  if (!hasKey) {
    if (m == "GET") {
      if (has(q, "location")) return "GetBucketLocation";
      if (has(q, "versioning")) return "GetBucketVersioning";
      if (has(q, "versions")) return "ListObjectVersions";
      if (has(q, "uploads")) return "ListMultipartUploads";
      if (const auto* lt = value(q, "list-type"); lt && *lt == "2") return "ListObjectsV2";
      for (const auto& kv : q)
        if (kv.first != "prefix" && kv.first != "delimiter" && kv.first != "marker" && kv.first != "max-keys" &&
            kv.first != "encoding-type" && kv.first != "x-id" && !signingParam(kv.first))
          return "GetBucketSubresource";
      return "ListObjects";
    }
    if (m == "HEAD") return "HeadBucket";
    if (m == "PUT") return q.empty() ? "CreateBucket" : "PutBucketSubresource";
    if (m == "DELETE") return q.empty() ? "DeleteBucket" : "DeleteBucketSubresource";
    if (m == "POST" && has(q, "delete")) return "DeleteObjects";
    return "Unknown";
  }
  if (m == "GET") {
    if (has(q, "uploadId")) return "ListParts";
    if (has(q, "tagging")) return "GetObjectTagging";
    if (has(q, "acl")) return "GetObjectAcl";
    return "GetObject";
  }
  if (m == "HEAD") return "HeadObject";
  if (m == "PUT") {
    if (has(q, "partNumber") && has(q, "uploadId")) return "UploadPart";
    if (has(q, "tagging")) return "PutObjectTagging";
    if (has(q, "acl")) return "PutObjectAcl";
    return "PutObject";
  }
  if (m == "DELETE") {
    if (has(q, "uploadId")) return "AbortMultipartUpload";
    if (has(q, "tagging")) return "DeleteObjectTagging";
    return "DeleteObject";
  }
  if (m == "POST") {
    if (has(q, "uploads")) return "CreateMultipartUpload";
    if (has(q, "uploadId")) return "CompleteMultipartUpload";
    return "PostObject";
  }
  return "Unknown";
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

WriteScope writeScope(std::string_view op, std::string_view method, bool hasKey, const QueryParams& query,
                      const std::string* contentType) {
  if (method == "GET" || method == "HEAD" || method == "OPTIONS") return WriteScope::None;
  if (contentType && contentType->size() >= 19) {
    std::string t = contentType->substr(0, 19);
    for (auto& c : t) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (t == "multipart/form-data") return WriteScope::Bucket;  // a browser form: its key is in the body
  }
  if (op == "DeleteObjects") return WriteScope::Listed;
  if (hasKey) {
    for (const auto& kv : query)
      if (!knownObjectWriteParam(kv.first)) return WriteScope::Bucket;  // an operation Granary does not know
    return WriteScope::Key;
  }
  if (op == "CreateBucket") return WriteScope::None;
  return WriteScope::Bucket;
}

}  // namespace granary::s3api

#include <catch2/catch.hpp>

#include "s3api/operation.h"

#include <set>
#include <string>

using namespace granary::s3api;

TEST_CASE("operations are named as S3 names them", "[unit][operation]") {
  CHECK(resolveOperation("GET", false, false, {}) == S3Op::ListBuckets);
  CHECK(resolveOperation("GET", true, false, {{"list-type", "2"}, {"prefix", "a"}}) == S3Op::ListObjectsV2);
  CHECK(resolveOperation("GET", true, false, {{"prefix", "a"}, {"marker", "m"}}) == S3Op::ListObjects);
  CHECK(resolveOperation("PUT", true, false, {}) == S3Op::CreateBucket);
  CHECK(resolveOperation("HEAD", true, false, {}) == S3Op::HeadBucket);
  CHECK(resolveOperation("DELETE", true, false, {}) == S3Op::DeleteBucket);
  CHECK(resolveOperation("GET", true, true, {}) == S3Op::GetObject);
  CHECK(resolveOperation("HEAD", true, true, {}) == S3Op::HeadObject);
  CHECK(resolveOperation("PUT", true, true, {}) == S3Op::PutObject);
  CHECK(resolveOperation("DELETE", true, true, {}) == S3Op::DeleteObject);
  CHECK(resolveOperation("POST", true, true, {{"uploads", ""}}) == S3Op::CreateMultipartUpload);
  CHECK(resolveOperation("PUT", true, true, {{"partNumber", "1"}, {"uploadId", "u"}}) == S3Op::UploadPart);
  CHECK(resolveOperation("POST", true, true, {{"uploadId", "u"}}) == S3Op::CompleteMultipartUpload);
  CHECK(resolveOperation("POST", true, false, {{"delete", ""}}) == S3Op::DeleteObjects);
  // A presigned listing is still a listing (its signature's parameters name no subresource).
  CHECK(resolveOperation("GET", true, false, {{"prefix", "a"}, {"X-Amz-Signature", "s"}, {"X-Amz-Date", "d"}}) ==
        S3Op::ListObjects);
  CHECK(resolveOperation("GET", true, false, {{"AWSAccessKeyId", "a"}, {"Signature", "s"}, {"Expires", "1"}}) ==
        S3Op::ListObjects);
  CHECK(resolveOperation("GET", true, false, {{"prefix", "a"}, {"policy", ""}}) == S3Op::GetBucketSubresource);
}

TEST_CASE("what a write invalidates: its key, its listed keys, or (unknowable) the bucket", "[unit][operation]") {
  const std::string form = "multipart/form-data; boundary=x", xml = "application/xml";
  CHECK(writeScope(S3Op::GetObject, "GET", true, {}, nullptr) == WriteScope::None);
  CHECK(writeScope(S3Op::HeadObject, "HEAD", true, {}, nullptr) == WriteScope::None);
  CHECK(writeScope(S3Op::PutObject, "PUT", true, {{"x-id", "PutObject"}}, nullptr) == WriteScope::Key);
  CHECK(writeScope(S3Op::DeleteObject, "DELETE", true, {{"versionId", "v"}}, nullptr) == WriteScope::Key);
  CHECK(writeScope(S3Op::Unknown, "PATCH", true, {}, nullptr) == WriteScope::Key);
  CHECK(writeScope(S3Op::DeleteObjects, "POST", false, {{"delete", ""}}, &xml) == WriteScope::Listed);
  CHECK(writeScope(S3Op::CreateBucket, "PUT", false, {}, nullptr) == WriteScope::None);
  // A browser form upload names its key inside the form; bucket-level writes Granary does not know.
  CHECK(writeScope(S3Op::Unknown, "POST", false, {}, &form) == WriteScope::Bucket);
  CHECK(writeScope(S3Op::PostObject, "POST", true, {}, &form) == WriteScope::Bucket);
  CHECK(writeScope(S3Op::Unknown, "POST", false, {{"unknownop", ""}}, nullptr) == WriteScope::Bucket);
  // An object-level write with a parameter Granary does not know may act on other keys (S3 Express's
  // ?renameObject removes its source): the bucket.
  CHECK(writeScope(S3Op::PutObject, "PUT", true, {{"renameObject", ""}}, nullptr) == WriteScope::Bucket);
  CHECK(writeScope(S3Op::PutObject, "PUT", true, {{"x-amz-checksum-crc32", "AAAAAA=="}, {"x-amz-meta-a", "1"}}, nullptr) ==
        WriteScope::Key);  // a presigned PUT of the JavaScript SDK v3
  CHECK(writeScope(S3Op::PutObject, "PUT", true, {{"append", ""}, {"position", "0"}}, nullptr) == WriteScope::Bucket);
  CHECK(writeScope(S3Op::PutBucketSubresource, "PUT", false, {{"versioning", ""}}, nullptr) == WriteScope::Bucket);
  CHECK(writeScope(S3Op::DeleteBucket, "DELETE", false, {}, nullptr) == WriteScope::Bucket);
}

TEST_CASE("a copy source makes a PUT a copy, and nothing else", "[unit][operation]") {
  CHECK(resolveOperation("PUT", true, true, {}, true) == S3Op::CopyObject);
  CHECK(resolveOperation("PUT", true, true, {{"partNumber", "1"}, {"uploadId", "u"}}, true) == S3Op::UploadPartCopy);
  CHECK(resolveOperation("PUT", true, true, {{"tagging", ""}}, true) == S3Op::PutObjectTagging);
  CHECK(resolveOperation("GET", true, true, {}, true) == S3Op::GetObject);
  CHECK(resolveOperation("PUT", true, false, {}, true) == S3Op::CreateBucket);
}

namespace {
/// A request of each operation: method, bucket?, key?, query, copy source?
struct Sample {
  S3Op op;
  const char* method;
  bool bucket, key;
  granary::QueryParams query;
  bool copy = false;
};
const std::vector<Sample>& samples() {
  using enum S3Op;
  static const std::vector<Sample> all = {
      {Unknown, "PATCH", true, true, {}},
      {ListBuckets, "GET", false, false, {}},
      {HeadBucket, "HEAD", true, false, {}},
      {CreateBucket, "PUT", true, false, {}},
      {DeleteBucket, "DELETE", true, false, {}},
      {GetBucketLocation, "GET", true, false, {{"location", ""}}},
      {GetBucketVersioning, "GET", true, false, {{"versioning", ""}}},
      {GetBucketSubresource, "GET", true, false, {{"policy", ""}}},
      {PutBucketSubresource, "PUT", true, false, {{"versioning", ""}}},
      {DeleteBucketSubresource, "DELETE", true, false, {{"cors", ""}}},
      {ListObjects, "GET", true, false, {{"prefix", "a"}}},
      {ListObjectsV2, "GET", true, false, {{"list-type", "2"}}},
      {ListObjectVersions, "GET", true, false, {{"versions", ""}}},
      {ListMultipartUploads, "GET", true, false, {{"uploads", ""}}},
      {GetObject, "GET", true, true, {}},
      {HeadObject, "HEAD", true, true, {}},
      {PutObject, "PUT", true, true, {}},
      {CopyObject, "PUT", true, true, {}, true},
      {PostObject, "POST", true, true, {}},
      {DeleteObject, "DELETE", true, true, {}},
      {DeleteObjects, "POST", true, false, {{"delete", ""}}},
      {GetObjectTagging, "GET", true, true, {{"tagging", ""}}},
      {PutObjectTagging, "PUT", true, true, {{"tagging", ""}}},
      {DeleteObjectTagging, "DELETE", true, true, {{"tagging", ""}}},
      {GetObjectAcl, "GET", true, true, {{"acl", ""}}},
      {PutObjectAcl, "PUT", true, true, {{"acl", ""}}},
      {CreateMultipartUpload, "POST", true, true, {{"uploads", ""}}},
      {UploadPart, "PUT", true, true, {{"partNumber", "1"}, {"uploadId", "u"}}},
      {UploadPartCopy, "PUT", true, true, {{"partNumber", "1"}, {"uploadId", "u"}}, true},
      {CompleteMultipartUpload, "POST", true, true, {{"uploadId", "u"}}},
      {AbortMultipartUpload, "DELETE", true, true, {{"uploadId", "u"}}},
      {ListParts, "GET", true, true, {{"uploadId", "u"}}},
  };
  return all;
}
}  // namespace

TEST_CASE("the operation table: every S3Op has its row, a name of its own and a handler family", "[unit][operation]") {
  std::set<std::string> names;
  for (std::size_t i = 0; i < kS3OpCount; ++i) {
    const auto op = static_cast<S3Op>(i);
    const OpInfo& info = opInfo(op);
    INFO(i);
    CHECK(!info.name.empty());
    CHECK(names.insert(std::string(info.name)).second);
    CHECK(static_cast<std::size_t>(info.family) < kOpFamilyCount);
    CHECK(opName(op) == info.name);
    CHECK(opFamily(op) == info.family);
  }
  CHECK(names.size() == kS3OpCount);
  CHECK(opName(S3Op::GetObject) == "GetObject");
  CHECK(opName(S3Op::UploadPartCopy) == "UploadPartCopy");
  CHECK(opName(S3Op::Unknown) == "Unknown");
  CHECK(opName(static_cast<S3Op>(200)) == "Unknown");  // out of range: the Unknown row
}

TEST_CASE("the operation table round-trips: each S3Op is what a request of it resolves to", "[unit][operation]") {
  std::set<S3Op> seen;
  for (const auto& s : samples()) {
    INFO(opName(s.op));
    CHECK(resolveOperation(s.method, s.bucket, s.key, s.query, s.copy) == s.op);
    seen.insert(s.op);
  }
  CHECK(seen.size() == kS3OpCount);  // every operation has a request that names it
}

TEST_CASE("the operation table: families and traits", "[unit][operation]") {
  CHECK(opFamily(S3Op::GetObject) == OpFamily::ObjectRead);
  CHECK(opFamily(S3Op::HeadObject) == OpFamily::ObjectRead);
  for (const S3Op op : {S3Op::PutObject, S3Op::CopyObject, S3Op::PostObject, S3Op::DeleteObject, S3Op::DeleteObjects})
    CHECK(opFamily(op) == OpFamily::ObjectWrite);
  for (const S3Op op : {S3Op::CreateMultipartUpload, S3Op::UploadPart, S3Op::UploadPartCopy,
                        S3Op::CompleteMultipartUpload, S3Op::AbortMultipartUpload, S3Op::ListParts})
    CHECK(opFamily(op) == OpFamily::Multipart);
  for (const S3Op op : {S3Op::ListBuckets, S3Op::ListObjects, S3Op::ListObjectsV2, S3Op::ListObjectVersions,
                        S3Op::ListMultipartUploads})
    CHECK(opFamily(op) == OpFamily::Listing);
  for (const S3Op op : {S3Op::HeadBucket, S3Op::CreateBucket, S3Op::GetBucketSubresource, S3Op::GetObjectTagging,
                        S3Op::Unknown})
    CHECK(opFamily(op) == OpFamily::Relay);
  CHECK(opInfo(S3Op::CopyObject).copies);
  CHECK(opInfo(S3Op::UploadPartCopy).copies);
  CHECK_FALSE(opInfo(S3Op::PutObject).copies);
  CHECK(std::string_view(opInfo(S3Op::ListParts).expectedXmlRoot) == "ListPartsResult");
  CHECK(std::string_view(opInfo(S3Op::GetBucketVersioning).expectedXmlRoot) == "VersioningConfiguration");
  CHECK(opInfo(S3Op::GetObject).expectedXmlRoot == nullptr);
  CHECK(opInfo(S3Op::ListObjectsV2).namesBucketInXml);
  CHECK(opInfo(S3Op::CompleteMultipartUpload).namesBucketInXml);
  CHECK_FALSE(opInfo(S3Op::GetObject).namesBucketInXml);
  CHECK(opInfo(S3Op::DeleteObjects).xmlBody);
  CHECK_FALSE(opInfo(S3Op::UploadPart).xmlBody);
}

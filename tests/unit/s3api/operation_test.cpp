#include <catch2/catch.hpp>

#include "s3api/operation.h"

using namespace granary::s3api;

TEST_CASE("operations are named as S3 names them", "[unit][operation]") {
  CHECK(operationName("GET", false, false, {}) == "ListBuckets");
  CHECK(operationName("GET", true, false, {{"list-type", "2"}, {"prefix", "a"}}) == "ListObjectsV2");
  CHECK(operationName("GET", true, false, {{"prefix", "a"}, {"marker", "m"}}) == "ListObjects");
  CHECK(operationName("PUT", true, false, {}) == "CreateBucket");
  CHECK(operationName("HEAD", true, false, {}) == "HeadBucket");
  CHECK(operationName("DELETE", true, false, {}) == "DeleteBucket");
  CHECK(operationName("GET", true, true, {}) == "GetObject");
  CHECK(operationName("HEAD", true, true, {}) == "HeadObject");
  CHECK(operationName("PUT", true, true, {}) == "PutObject");
  CHECK(operationName("DELETE", true, true, {}) == "DeleteObject");
  CHECK(operationName("POST", true, true, {{"uploads", ""}}) == "CreateMultipartUpload");
  CHECK(operationName("PUT", true, true, {{"partNumber", "1"}, {"uploadId", "u"}}) == "UploadPart");
  CHECK(operationName("POST", true, true, {{"uploadId", "u"}}) == "CompleteMultipartUpload");
  CHECK(operationName("POST", true, false, {{"delete", ""}}) == "DeleteObjects");
  // A presigned listing is still a listing (its signature's parameters name no subresource).
  CHECK(operationName("GET", true, false, {{"prefix", "a"}, {"X-Amz-Signature", "s"}, {"X-Amz-Date", "d"}}) ==
        "ListObjects");
  CHECK(operationName("GET", true, false, {{"AWSAccessKeyId", "a"}, {"Signature", "s"}, {"Expires", "1"}}) ==
        "ListObjects");
  CHECK(operationName("GET", true, false, {{"prefix", "a"}, {"policy", ""}}) == "GetBucketSubresource");
}

TEST_CASE("what a write invalidates: its key, its listed keys, or (unknowable) the bucket", "[unit][operation]") {
  const std::string form = "multipart/form-data; boundary=x", xml = "application/xml";
  CHECK(writeScope("GetObject", "GET", true, {}, nullptr) == WriteScope::None);
  CHECK(writeScope("HeadObject", "HEAD", true, {}, nullptr) == WriteScope::None);
  CHECK(writeScope("PutObject", "PUT", true, {{"x-id", "PutObject"}}, nullptr) == WriteScope::Key);
  CHECK(writeScope("DeleteObject", "DELETE", true, {{"versionId", "v"}}, nullptr) == WriteScope::Key);
  CHECK(writeScope("Unknown", "PATCH", true, {}, nullptr) == WriteScope::Key);
  CHECK(writeScope("DeleteObjects", "POST", false, {{"delete", ""}}, &xml) == WriteScope::Listed);
  CHECK(writeScope("CreateBucket", "PUT", false, {}, nullptr) == WriteScope::None);
  // A browser form upload names its key inside the form; bucket-level writes Granary does not know.
  CHECK(writeScope("Unknown", "POST", false, {}, &form) == WriteScope::Bucket);
  CHECK(writeScope("PostObject", "POST", true, {}, &form) == WriteScope::Bucket);
  CHECK(writeScope("Unknown", "POST", false, {{"unknownop", ""}}, nullptr) == WriteScope::Bucket);
  // An object-level write with a parameter Granary does not know may act on other keys (S3 Express's
  // ?renameObject removes its source): the bucket.
  CHECK(writeScope("PutObject", "PUT", true, {{"renameObject", ""}}, nullptr) == WriteScope::Bucket);
  CHECK(writeScope("PutObject", "PUT", true, {{"x-amz-checksum-crc32", "AAAAAA=="}, {"x-amz-meta-a", "1"}}, nullptr) ==
        WriteScope::Key);  // a presigned PUT of the JavaScript SDK v3
  CHECK(writeScope("PutObject", "PUT", true, {{"append", ""}, {"position", "0"}}, nullptr) == WriteScope::Bucket);
  CHECK(writeScope("PutBucketSubresource", "PUT", false, {{"versioning", ""}}, nullptr) == WriteScope::Bucket);
  CHECK(writeScope("DeleteBucket", "DELETE", false, {}, nullptr) == WriteScope::Bucket);
}

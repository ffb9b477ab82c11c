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
}

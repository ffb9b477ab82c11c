// Request checks before anything is forwarded: sizes a client controls, values bound for response
// headers, part numbers.

#include <catch2/catch.hpp>

#include "s3api/request_checks.h"

using namespace granary;
using namespace granary::s3api;

namespace {
std::string codeOf(std::string_view method, std::string_view op, std::string_view target,
                   sigv4::HeaderList headers = {{"host", "h"}}) {
  auto r = route(target, "h", "");
  REQUIRE(r);
  auto f = checkRequest(method, op, *r, headers);
  return f ? std::string(errorInfo(f->error).code) : "ok";
}
}  // namespace

TEST_CASE("request checks: keys, bucket names and user metadata are bounded", "[unit][s3api]") {
  CHECK(codeOf("GET", "GetObject", "/b/" + std::string(1024, 'k')) == "ok");
  for (const char* m : {"GET", "HEAD", "PUT", "DELETE"})
    CHECK(codeOf(m, "GetObject", "/b/" + std::string(1025, 'k')) == "KeyTooLongError");
  CHECK(codeOf("GET", "ListObjects", "/" + std::string(256, 'b')) == "InvalidBucketName");
  sigv4::HeaderList meta{{"host", "h"}, {"x-amz-meta-a", std::string(2047, 'v')}};
  CHECK(codeOf("PUT", "PutObject", "/b/k", meta) == "ok");
  meta.emplace_back("x-amz-meta-b", "vv");
  CHECK(codeOf("PUT", "PutObject", "/b/k", meta) == "MetadataTooLarge");
  CHECK(codeOf("POST", "CreateMultipartUpload", "/b/k?uploads", meta) == "MetadataTooLarge");
  CHECK(codeOf("PUT", "CopyObject", "/b/k", meta) == "MetadataTooLarge");
}

TEST_CASE("request checks: response overrides carry no control bytes", "[unit][s3api]") {
  CHECK(codeOf("GET", "GetObject", "/b/k?response-content-type=text/plain%3B%20charset%3Dutf-8") == "ok");
  for (const char* q : {"response-content-type=a%0d%0aSet-Cookie:%20x=1", "response-content-type=a%0a",
                        "response-content-disposition=a%0db", "response-cache-control=%00",
                        "response-expires=x%7f", "response-content-language=%1b%5b31m",
                        "response-content-encoding=gzip%0d%0a%0d%0a"}) {
    INFO(q);
    CHECK(codeOf("GET", "GetObject", std::string("/b/k?") + q) == "InvalidArgument");
  }
  CHECK(isSafeHeaderValue("a\tb"));
  CHECK_FALSE(isSafeHeaderValue(std::string_view("a\0b", 3)));
}

TEST_CASE("request checks: part numbers are 1 to 10000, never with a Range", "[unit][s3api]") {
  CHECK(codeOf("GET", "GetObject", "/b/k?partNumber=1") == "ok");
  CHECK(codeOf("GET", "GetObject", "/b/k?partNumber=10000") == "ok");
  for (const char* n : {"0", "10001", "-1", "abc", "", "1.0", "99999999999999999999", "%201"}) {
    INFO(n);
    CHECK(codeOf("GET", "GetObject", std::string("/b/k?partNumber=") + n) == "InvalidArgument");
    CHECK(codeOf("HEAD", "HeadObject", std::string("/b/k?partNumber=") + n) == "InvalidArgument");
  }
  CHECK(codeOf("PUT", "UploadPart", "/b/k?partNumber=0&uploadId=u") == "InvalidArgument");
  CHECK(codeOf("GET", "GetObject", "/b/k?partNumber=1", {{"host", "h"}, {"range", "bytes=0-1"}}) == "InvalidRequest");
  CHECK(partCountOf("\"0123456789abcdef0123456789abcdef-12\"") == 12);
  CHECK(partCountOf("\"0123456789abcdef0123456789abcdef\"") == 1);
  CHECK(partCountOf("\"x-\"") == 1);
  CHECK(partCountOf("\"x-999999\"") == 1);
}

TEST_CASE("request checks: headers read once may appear once", "[unit][s3api]") {
  CHECK_FALSE(checkSingletonHeaders({{"host", "a"}, {"x-amz-meta-a", "1"}, {"x-amz-meta-a", "2"}}));
  for (const char* h : {"host", "range", "x-amz-copy-source", "x-amz-content-sha256", "authorization", "x-amz-date"}) {
    INFO(h);
    auto f = checkSingletonHeaders({{h, "1"}, {"x-amz-meta-a", "1"}, {h, "2"}});
    REQUIRE(f);
    CHECK(f->error == S3Error::InvalidRequest);
  }
}

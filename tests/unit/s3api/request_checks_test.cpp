// Request checks before anything is forwarded: sizes a client controls, values bound for response
// headers, part numbers.

#include <catch2/catch.hpp>

#include "s3api/request_checks.h"

using namespace granary;
using namespace granary::s3api;

namespace {
std::string codeOf(std::string_view method, S3Op op, std::string_view target,
                   sigv4::HeaderList headers = {{"host", "h"}}) {
  auto r = route(target, "h", "");
  REQUIRE(r);
  auto f = checkRequest(method, op, *r, headers);
  return f ? "ok" : std::string(errorInfo(f.error().error).code);
}
}  // namespace

TEST_CASE("request checks: keys, bucket names and user metadata are bounded", "[unit][s3api]") {
  CHECK(codeOf("GET", S3Op::GetObject, "/b/" + std::string(1024, 'k')) == "ok");
  for (const char* m : {"GET", "HEAD", "PUT", "DELETE"})
    CHECK(codeOf(m, S3Op::GetObject, "/b/" + std::string(1025, 'k')) == "KeyTooLongError");
  CHECK(codeOf("GET", S3Op::ListObjects, "/" + std::string(256, 'b')) == "InvalidBucketName");
  for (const char* bad : {"/a%20b/k", "/a%3Fb/k", "/%C3%BC/k", "/a%0Ab/k"}) {
    INFO(bad);
    CHECK(codeOf("GET", S3Op::GetObject, bad) == "InvalidBucketName");
  }
  CHECK(codeOf("GET", S3Op::GetObject, "/Legacy_Bucket.name-1/k") == "ok");
  // A virtual-hosted bucket comes from the Host header: a '/' there is refused too.
  auto v = route("/file", "data/sub.s3.example", "s3.example");
  REQUIRE(v);
  CHECK(v->bucket == "data/sub");
  REQUIRE_FALSE(checkRequest("PUT", S3Op::PutObject, *v, {{"host", "data/sub.s3.example"}}));
  sigv4::HeaderList meta{{"host", "h"}, {"x-amz-meta-a", std::string(2047, 'v')}};
  CHECK(codeOf("PUT", S3Op::PutObject, "/b/k", meta) == "ok");
  meta.emplace_back("x-amz-meta-b", "vv");
  CHECK(codeOf("PUT", S3Op::PutObject, "/b/k", meta) == "MetadataTooLarge");
  CHECK(codeOf("POST", S3Op::CreateMultipartUpload, "/b/k?uploads", meta) == "MetadataTooLarge");
  CHECK(codeOf("PUT", S3Op::CopyObject, "/b/k", meta) == "MetadataTooLarge");
}

TEST_CASE("request checks: response overrides carry no control bytes", "[unit][s3api]") {
  CHECK(codeOf("GET", S3Op::GetObject, "/b/k?response-content-type=text/plain%3B%20charset%3Dutf-8") == "ok");
  for (const char* q : {"response-content-type=a%0d%0aSet-Cookie:%20x=1", "response-content-type=a%0a",
                        "response-content-disposition=a%0db", "response-cache-control=%00",
                        "response-expires=x%7f", "response-content-language=%1b%5b31m",
                        "response-content-encoding=gzip%0d%0a%0d%0a"}) {
    INFO(q);
    CHECK(codeOf("GET", S3Op::GetObject, std::string("/b/k?") + q) == "InvalidArgument");
  }
  CHECK(isSafeHeaderValue("a\tb"));
  CHECK_FALSE(isSafeHeaderValue(std::string_view("a\0b", 3)));
}

TEST_CASE("request checks: part numbers are 1 to 10000, never with a Range", "[unit][s3api]") {
  CHECK(codeOf("GET", S3Op::GetObject, "/b/k?partNumber=1") == "ok");
  CHECK(codeOf("GET", S3Op::GetObject, "/b/k?partNumber=10000") == "ok");
  for (const char* n : {"0", "10001", "-1", "abc", "", "1.0", "99999999999999999999", "%201"}) {
    INFO(n);
    CHECK(codeOf("GET", S3Op::GetObject, std::string("/b/k?partNumber=") + n) == "InvalidArgument");
    CHECK(codeOf("HEAD", S3Op::HeadObject, std::string("/b/k?partNumber=") + n) == "InvalidArgument");
  }
  CHECK(codeOf("PUT", S3Op::UploadPart, "/b/k?partNumber=0&uploadId=u") == "InvalidArgument");
  CHECK(codeOf("GET", S3Op::GetObject, "/b/k?partNumber=1", {{"host", "h"}, {"range", "bytes=0-1"}}) == "InvalidRequest");
  CHECK(partCountOf("\"0123456789abcdef0123456789abcdef-12\"") == 12);
  CHECK(partCountOf("\"0123456789abcdef0123456789abcdef\"") == 1);
  CHECK(partCountOf("\"x-\"") == 1);
  CHECK(partCountOf("\"x-999999\"") == 1);
}

TEST_CASE("request checks: headers read once may appear once", "[unit][s3api]") {
  CHECK(checkSingletonHeaders({{"host", "a"}, {"x-amz-meta-a", "1"}, {"x-amz-meta-a", "2"}}));
  for (const char* h : {"host", "range", "x-amz-copy-source", "x-amz-content-sha256", "authorization", "x-amz-date"}) {
    INFO(h);
    auto f = checkSingletonHeaders({{h, "1"}, {"x-amz-meta-a", "1"}, {h, "2"}});
    REQUIRE_FALSE(f);
    CHECK(f.error().error == S3Error::InvalidRequest);
  }
}

TEST_CASE("request checks: headers stored with an object are checked as S3 checks them", "[unit][s3api]") {
  // A write-back bucket acknowledges before the backend sees the PUT: what the backend would refuse must
  // be refused here, or the upload would fail forever and hold up every upload behind it.
  auto stored = [](std::string name, std::string value) {
    return codeOf("PUT", S3Op::PutObject, "/b/k", {{"host", "h"}, {std::move(name), std::move(value)}});
  };
  CHECK(stored("x-amz-tagging", "a=1&b=two") == "ok");
  CHECK(stored("x-amz-tagging", "a=1&a=2") == "InvalidTag");
  CHECK(stored("x-amz-tagging", "k0=&k1=&k2=&k3=&k4=&k5=&k6=&k7=&k8=&k9=&k10=") == "InvalidTag");
  CHECK(stored("x-amz-tagging", "k=" + std::string(257, 'v')) == "InvalidTag");
  CHECK(stored("x-amz-tagging", "%zz=1") == "InvalidArgument");
  CHECK(stored("x-amz-storage-class", "STANDARD_IA") == "ok");
  CHECK(stored("x-amz-storage-class", "nope!") == "InvalidStorageClass");
  CHECK(stored("x-amz-website-redirect-location", "/other") == "ok");
  CHECK(stored("x-amz-website-redirect-location", "foo") == "InvalidRedirectLocation");
  CHECK(stored("x-amz-acl", "public-read") == "ok");
  CHECK(stored("x-amz-acl", "everyone") == "InvalidArgument");
  CHECK(codeOf("POST", S3Op::CreateMultipartUpload, "/b/k?uploads", {{"host", "h"}, {"x-amz-acl", "x"}}) == "InvalidArgument");
  CHECK(codeOf("GET", S3Op::GetObject, "/b/k", {{"host", "h"}, {"x-amz-acl", "x"}}) == "ok");  // not a write
}

// Verification of client signatures: AWS's worked examples played as incoming requests, then every way
// a request can fail.

#include <catch2/catch.hpp>

#include "common/timeutil.h"
#include "s3api/auth.h"
#include "s3api/auth_v2.h"

using namespace granary;
using namespace granary::s3api;

namespace {
constexpr std::string_view kAk = "AKIAIOSFODNN7EXAMPLE";
constexpr std::string_view kSk = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

KeyTable keys() {
  KeyTable t;
  t.add(std::string(kAk), std::string(kSk));
  return t;
}

struct Req {
  std::string method = "GET";
  std::string rawPath = "/test.txt";
  std::string decodedPath = "/test.txt";
  QueryParams query;
  sigv4::HeaderList headers;
  std::chrono::system_clock::time_point now = *parseAmzDate("20130524T000000Z");

  AuthResult verify(const KeyTable& k, AuthOptions o = {}) const {
    AuthInput in{method, rawPath, decodedPath, &query, &headers, now, "", false};
    return verifyRequest(in, k, o);
  }
};

Req getObjectExample() {
  Req r;
  r.headers = {{"host", "examplebucket.s3.amazonaws.com"},
               {"range", "bytes=0-9"},
               {"x-amz-content-sha256", std::string(kEmptySha256Hex)},
               {"x-amz-date", "20130524T000000Z"},
               {"authorization",
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
                "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
                "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"}};
  return r;
}

/// The query of AWS's presigned-URL example (X-Amz-Signature last, X-Amz-Expires fourth).
QueryParams presignedQuery(std::string expires, std::string signature) {
  return {{"X-Amz-Algorithm", "AWS4-HMAC-SHA256"},
          {"X-Amz-Credential", "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request"},
          {"X-Amz-Date", "20130524T000000Z"},
          {"X-Amz-Expires", std::move(expires)},
          {"X-Amz-SignedHeaders", "host"},
          {"X-Amz-Signature", std::move(signature)}};
}

S3Error errorOf(const AuthResult& r) {
  REQUIRE(r.failure);
  return r.failure->error;
}
}  // namespace

TEST_CASE("header auth: AWS's GET object example verifies", "[unit][auth]") {
  auto r = getObjectExample().verify(keys());
  REQUIRE_FALSE(r.failure);
  CHECK(r.auth.accessKey == kAk);
  CHECK(r.auth.payload == PayloadMode::Sha256);
  CHECK(r.auth.payloadHash == kEmptySha256Hex);
}

TEST_CASE("header auth: AWS's aws-chunked example's seed signature verifies", "[unit][auth]") {
  Req r;
  r.method = "PUT";
  r.rawPath = r.decodedPath = "/examplebucket/chunkObject.txt";
  r.headers = {{"host", "s3.amazonaws.com"},
               {"x-amz-date", "20130524T000000Z"},
               {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
               {"authorization",
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
                "SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
                "x-amz-decoded-content-length;x-amz-storage-class,"
                "Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"},
               {"x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"},
               {"content-encoding", "aws-chunked"},
               {"x-amz-decoded-content-length", "66560"},
               {"content-length", "66824"}};
  auto res = r.verify(keys());
  REQUIRE_FALSE(res.failure);
  CHECK(res.auth.payload == PayloadMode::StreamingSigned);
  CHECK(res.auth.seedSignature == "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9");
  CHECK(res.auth.scope == "20130524/us-east-1/s3/aws4_request");
}

TEST_CASE("header auth failures", "[unit][auth]") {
  SECTION("wrong secret -> SignatureDoesNotMatch with the string to sign") {
    KeyTable k;
    k.add(std::string(kAk), "not-the-secret");
    auto r = getObjectExample().verify(k);
    CHECK(errorOf(r) == S3Error::SignatureDoesNotMatch);
    bool hasSts = false;
    for (auto& [n, v] : r.failure->extra) hasSts |= n == "StringToSign" && v.rfind("AWS4-HMAC-SHA256\n", 0) == 0;
    CHECK(hasSts);
  }
  SECTION("unknown access key -> InvalidAccessKeyId") {
    KeyTable k;
    k.add("SOMEONEELSE", "x");
    CHECK(errorOf(getObjectExample().verify(k)) == S3Error::InvalidAccessKeyId);
  }
  SECTION("a signed header changed -> SignatureDoesNotMatch") {
    auto r = getObjectExample();
    r.headers[1].second = "bytes=0-10";
    CHECK(errorOf(r.verify(keys())) == S3Error::SignatureDoesNotMatch);
  }
  SECTION("a different path -> SignatureDoesNotMatch") {
    auto r = getObjectExample();
    r.rawPath = r.decodedPath = "/test.txu";
    CHECK(errorOf(r.verify(keys())) == S3Error::SignatureDoesNotMatch);
  }
  SECTION("clock skew over 15 minutes -> RequestTimeTooSkewed") {
    auto r = getObjectExample();
    r.now += std::chrono::minutes(16);
    CHECK(errorOf(r.verify(keys())) == S3Error::RequestTimeTooSkewed);
    r.now -= std::chrono::minutes(32);
    CHECK(errorOf(r.verify(keys())) == S3Error::RequestTimeTooSkewed);
  }
  SECTION("skew under 15 minutes passes") {
    auto r = getObjectExample();
    r.now += std::chrono::minutes(14);
    CHECK_FALSE(r.verify(keys()).failure);
  }
  SECTION("no date -> AccessDenied") {
    auto r = getObjectExample();
    r.headers.erase(r.headers.begin() + 3);
    CHECK(errorOf(r.verify(keys())) == S3Error::AccessDenied);
  }
  SECTION("malformed Authorization -> AuthorizationHeaderMalformed") {
    auto r = getObjectExample();
    r.headers[4].second = "AWS4-HMAC-SHA256 Credential=AKIA/20130524/us-east-1/s3, Signature=abc";
    CHECK(errorOf(r.verify(keys())) == S3Error::AuthorizationHeaderMalformed);
  }
  SECTION("no credentials at all -> AccessDenied unless anonymous") {
    Req r;
    r.headers = {{"host", "h"}};
    CHECK(errorOf(r.verify(keys())) == S3Error::AccessDenied);
    AuthOptions o;
    o.allowAnonymous = true;
    auto ok = r.verify(keys(), o);
    CHECK_FALSE(ok.failure);
    CHECK(ok.auth.anonymous);
  }
  SECTION("bad x-amz-content-sha256 value -> InvalidArgument") {
    auto r = getObjectExample();
    r.headers[2].second = "not-a-hash";
    CHECK(errorOf(r.verify(keys())) == S3Error::InvalidArgument);
  }
  SECTION("host not signed -> AccessDenied") {
    sigv4::RequestSigner signer({std::string(kAk), std::string(kSk), ""}, "us-east-1");
    Req r;
    sigv4::HeaderList h{{"x-amz-meta-a", "b"}};
    signer.sign("GET", "/test.txt", {}, h, kEmptySha256Hex, r.now);
    r.headers = h;
    r.headers.emplace_back("host", "examplebucket.s3.amazonaws.com");
    CHECK(errorOf(r.verify(keys())) == S3Error::AccessDenied);
  }
}

TEST_CASE("header auth: a path sent with a different but equivalent encoding still verifies", "[unit][auth]") {
  // The client signed "/b/a~b" but sent "%7E": the canonical form re-encodes the decoded path.
  sigv4::RequestSigner signer({std::string(kAk), std::string(kSk), ""}, "us-east-1");
  Req r;
  sigv4::HeaderList h{{"host", "localhost:9000"}};
  signer.sign("GET", "/b/a~b%20c", {}, h, kEmptySha256Hex, r.now);
  r.headers = h;
  r.rawPath = "/b/a%7Eb%20c";
  r.decodedPath = "/b/a~b c";
  CHECK_FALSE(r.verify(keys()).failure);
  // And a client that signed the wire form literally ("/%2F" for an empty segment) verifies too.
  sigv4::HeaderList h2{{"host", "localhost:9000"}};
  signer.sign("GET", "/b/a/%2Fb", {}, h2, kEmptySha256Hex, r.now);
  r.headers = h2;
  r.rawPath = "/b/a/%2Fb";
  r.decodedPath = "/b/a//b";
  CHECK_FALSE(r.verify(keys()).failure);
}

TEST_CASE("presigned URL: AWS's example verifies within its validity and not after", "[unit][auth]") {
  Req r;
  r.headers = {{"host", "examplebucket.s3.amazonaws.com"}};
  r.query = presignedQuery("86400", "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
  r.now += std::chrono::hours(23);
  auto ok = r.verify(keys());
  REQUIRE_FALSE(ok.failure);
  CHECK(ok.auth.presigned);
  CHECK(ok.auth.payload == PayloadMode::Unsigned);

  r.now += std::chrono::hours(2);
  CHECK(errorOf(r.verify(keys())) == S3Error::AccessDenied);

  r.now -= std::chrono::hours(2);
  r.query[5].second[0] = 'b';
  CHECK(errorOf(r.verify(keys())) == S3Error::SignatureDoesNotMatch);
}

TEST_CASE("presigned URL: parameter errors", "[unit][auth]") {
  Req r;
  r.headers = {{"host", "h"}};
  r.query = presignedQuery("604801", "00");
  CHECK(errorOf(r.verify(keys())) == S3Error::AuthorizationQueryParametersError);
  r.query[3].second = "10";
  r.query.erase(r.query.begin() + 1);
  CHECK(errorOf(r.verify(keys())) == S3Error::AuthorizationQueryParametersError);
}

// AWS's Signature Version 2 examples ("Signing and authenticating REST requests", S3 API reference). The published signatures were computed for the examples'
// original bucket "johnsmith" (later docs renamed the bucket but kept the signatures).
TEST_CASE("SigV2: AWS's examples verify", "[unit][auth][sigv2]") {
  struct Example {
    const char* method;
    const char* bucket;
    const char* path;
    QueryParams query;
    const char* date;
    const char* contentType;
    const char* signature;
  };
  const Example examples[] = {
      {"GET", "johnsmith", "/photos/puppy.jpg", {}, "Tue, 27 Mar 2007 19:36:42 +0000", "", "bWq2s1WEIj+Ydj0vQ697zp+IXMU="},
      {"PUT", "johnsmith", "/photos/puppy.jpg", {}, "Tue, 27 Mar 2007 21:15:45 +0000", "image/jpeg", "MyyxeRY7whkBe+bq8fHCL/2kKUg="},
      {"GET", "johnsmith", "/", {{"prefix", "photos"}, {"max-keys", "50"}, {"marker", "puppy"}},
       "Tue, 27 Mar 2007 19:42:41 +0000", "", "htDYFYduRNen8P9ZfE/s9SuKy0U="},
      {"GET", "johnsmith", "/", {{"acl", ""}}, "Tue, 27 Mar 2007 19:44:46 +0000", "", "c2WLPFtWHVgbEmeEG93a4cG37dM="},
  };
  for (const auto& e : examples) {
    INFO(e.method << " " << e.path);
    Req r;
    r.method = e.method;
    r.rawPath = r.decodedPath = e.path;
    r.query = e.query;
    r.headers = {{"host", std::string(e.bucket) + ".s3.us-west-1.amazonaws.com"}, {"date", e.date},
                 {"authorization", std::string("AWS AKIAIOSFODNN7EXAMPLE:") + e.signature}};
    if (*e.contentType) r.headers.emplace_back("content-type", e.contentType);
    r.now = *parseHttpDate(e.date);
    AuthInput in{r.method, r.rawPath, r.decodedPath, &r.query, &r.headers, r.now, e.bucket, true};
    auto res = verifyRequest(in, keys(), {});
    CHECK_FALSE(res.failure);
    CHECK(res.auth.accessKey == kAk);
  }
}

TEST_CASE("SigV2: presigned query form, expiry and tampering", "[unit][auth][sigv2]") {
  Req r;
  r.rawPath = r.decodedPath = "/bucket/key";
  r.headers = {{"host", "127.0.0.1:9000"}};
  const auto expires = *parseAmzDate("20130524T010000Z");
  const std::string exp = std::to_string(std::chrono::system_clock::to_time_t(expires));
  r.query = {{"AWSAccessKeyId", std::string(kAk)}, {"Expires", exp}};
  AuthInput probe{r.method, r.rawPath, r.decodedPath, &r.query, &r.headers, r.now, "bucket", false};
  const std::string sts = sigv2StringToSign(probe, exp);
  CHECK(sts == "GET\n\n\n" + exp + "\n/bucket/key");
  r.query.emplace_back("Signature", hmacSha1Base64(kSk, sts));
  auto ok = r.verify(keys());
  REQUIRE_FALSE(ok.failure);
  CHECK(ok.auth.presigned);
  r.now = expires + std::chrono::seconds(1);
  CHECK(errorOf(r.verify(keys())) == S3Error::AccessDenied);
  r.now = expires - std::chrono::seconds(10);
  r.rawPath = r.decodedPath = "/bucket/other";
  CHECK(errorOf(r.verify(keys())) == S3Error::SignatureDoesNotMatch);
}

TEST_CASE("SigV2: x-amz headers are canonicalised, x-amz-date empties the Date line", "[unit][auth][sigv2]") {
  Req r;
  r.method = "PUT";
  r.rawPath = r.decodedPath = "/b/k%20x";
  r.query = {{"uploadId", "u1"}, {"partNumber", "2"}, {"ignored", "1"}};
  r.headers = {{"x-amz-meta-b", "two"}, {"x-amz-date", "Fri, 24 May 2013 00:00:00 GMT"}, {"x-amz-meta-a", " one  "},
               {"x-amz-meta-b", "three"}, {"content-md5", "MD5=="}};
  AuthInput in{r.method, r.rawPath, r.decodedPath, &r.query, &r.headers, r.now, "b", false};
  CHECK(sigv2StringToSign(in, "") ==
        "PUT\nMD5==\n\n\nx-amz-date:Fri, 24 May 2013 00:00:00 GMT\nx-amz-meta-a:one\nx-amz-meta-b:two,three\n"
        "/b/k%20x?partNumber=2&uploadId=u1");
}

namespace {
std::string extraOf(const AuthResult& r, std::string_view name) {
  REQUIRE(r.failure);
  for (const auto& [n, v] : r.failure->extra)
    if (n == name) return v;
  return "<none>";
}
}  // namespace

TEST_CASE("every x-amz-* header present must be signed: header auth and presigned URLs", "[unit][auth]") {
  sigv4::RequestSigner signer({std::string(kAk), std::string(kSk), ""}, "us-east-1");
  SECTION("header auth: an x-amz-copy-source added after signing -> AccessDenied naming it") {
    Req r;
    r.method = "PUT";
    r.rawPath = r.decodedPath = "/b/dest";
    sigv4::HeaderList h{{"host", "localhost:9000"}};
    signer.sign("PUT", "/b/dest", {}, h, kEmptySha256Hex, r.now);
    r.headers = h;
    CHECK_FALSE(r.verify(keys()).failure);
    r.headers.emplace_back("x-amz-copy-source", "/b/secret");
    r.headers.emplace_back("x-amz-meta-added", "1");
    auto res = r.verify(keys());
    CHECK(errorOf(res) == S3Error::AccessDenied);
    CHECK(res.failure->message == "There were headers present in the request which were not signed");
    CHECK(extraOf(res, "HeadersNotSigned") == "x-amz-copy-source, x-amz-meta-added");
  }
  SECTION("presigned: AWS's example plus an unsigned x-amz-* header -> AccessDenied") {
    Req r;
    r.headers = {{"host", "examplebucket.s3.amazonaws.com"}};
    r.query = presignedQuery("86400", "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
    CHECK_FALSE(r.verify(keys()).failure);
    for (const char* h : {"x-amz-copy-source", "x-amz-acl", "x-amz-server-side-encryption-customer-algorithm"}) {
      INFO(h);
      Req t = r;
      t.headers.emplace_back(h, "v");
      auto res = t.verify(keys());
      CHECK(errorOf(res) == S3Error::AccessDenied);
      CHECK(extraOf(res, "HeadersNotSigned") == h);
    }
  }
  SECTION("SigV2 covers x-amz-* headers by construction: one added after signing breaks the signature") {
    Req r;
    r.method = "PUT";
    r.rawPath = r.decodedPath = "/b/dest";
    r.headers = {{"host", "h"}, {"date", "Fri, 24 May 2013 00:00:00 GMT"}};
    AuthInput in{r.method, r.rawPath, r.decodedPath, &r.query, &r.headers, r.now, "b", false};
    r.headers.emplace_back("authorization", "AWS " + std::string(kAk) + ":" + hmacSha1Base64(kSk, sigv2StringToSign(in, "Fri, 24 May 2013 00:00:00 GMT")));
    CHECK_FALSE(r.verify(keys()).failure);
    r.headers.emplace_back("x-amz-copy-source", "/b/secret");
    CHECK(errorOf(r.verify(keys())) == S3Error::SignatureDoesNotMatch);
  }
}

TEST_CASE("the credential scope must name a region Granary serves and the service s3", "[unit][auth]") {
  AuthOptions served;
  served.regions = {"us-east-1", "eu-west-1"};
  CHECK_FALSE(getObjectExample().verify(keys(), served).failure);
  AuthOptions other;
  other.regions = {"eu-west-3"};
  auto res = getObjectExample().verify(keys(), other);
  CHECK(errorOf(res) == S3Error::AuthorizationHeaderMalformed);
  CHECK_THAT(res.failure->message, Catch::Contains("the region 'us-east-1' is wrong; expecting 'eu-west-3'"));
  CHECK(extraOf(res, "Region") == "eu-west-3");

  Req p;
  p.headers = {{"host", "examplebucket.s3.amazonaws.com"}};
  p.query = presignedQuery("86400", "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
  auto pres = p.verify(keys(), other);
  CHECK(errorOf(pres) == S3Error::AuthorizationQueryParametersError);
  CHECK_THAT(pres.failure->message, Catch::Contains("the region 'us-east-1' is wrong; expecting 'eu-west-3'"));
  CHECK(extraOf(pres, "Region") == "eu-west-3");

  // Another service's signature, header and presigned.
  sigv4::RequestSigner ec2({std::string(kAk), std::string(kSk), ""}, "us-east-1", "ec2");
  Req h;
  sigv4::HeaderList hs{{"host", "localhost"}};
  ec2.sign("GET", "/test.txt", {}, hs, kEmptySha256Hex, h.now);
  h.headers = hs;
  CHECK(errorOf(h.verify(keys(), served)) == S3Error::AuthorizationHeaderMalformed);
  Req q;
  q.headers = {{"host", "localhost"}};
  q.query = ec2.presign("GET", "/test.txt", {}, "localhost", std::chrono::seconds(60), q.now);
  CHECK(errorOf(q.verify(keys(), served)) == S3Error::AuthorizationQueryParametersError);
}

TEST_CASE("SigV2 presigned: an Expires past the clock's range is far future, not an overflow", "[unit][auth][sigv2]") {
  // Found by fuzzing (tests/fuzz/corpus/sigv4/crash-4e5e...): 11751139620 seconds overflowed the
  // conversion to a time point (undefined behaviour) before any signature was checked.
  Req r;
  r.rawPath = r.decodedPath = "/bucket/key";
  r.headers = {{"host", "127.0.0.1:9000"}};
  for (const char* exp : {"11751139620", "999999999999"}) {
    INFO(exp);
    r.query = {{"AWSAccessKeyId", std::string(kAk)}, {"Expires", exp}, {"Signature", "bogus"}};
    CHECK(errorOf(r.verify(keys())) == S3Error::SignatureDoesNotMatch);
    AuthInput probe{r.method, r.rawPath, r.decodedPath, &r.query, &r.headers, r.now, "bucket", false};
    r.query[2].second = hmacSha1Base64(kSk, sigv2StringToSign(probe, exp));
    CHECK_FALSE(r.verify(keys()).failure);
  }
}

TEST_CASE("SigV2 presigned: a bucket's path-style resource verifies signed as /bucket or /bucket/", "[unit][auth][sigv2]") {
  // boto3 presigns list_objects for "GET /bucket?..." over the resource "/bucket/".
  const std::string method = "GET", raw = "/bucket";
  const sigv4::HeaderList headers{{"host", "127.0.0.1:9000"}};
  const auto now = *parseAmzDate("20130524T000000Z");
  const std::string exp = std::to_string(std::chrono::system_clock::to_time_t(now) + 300);
  for (const std::string signedAs : {"/bucket/", "/bucket", "/bucket//", "/other/"}) {
    CAPTURE(signedAs);
    QueryParams q{{"encoding-type", "url"}, {"AWSAccessKeyId", std::string(kAk)}, {"Expires", exp},
                  {"Signature", hmacSha1Base64(kSk, "GET\n\n\n" + exp + "\n" + signedAs)}};
    const AuthInput in{method, raw, raw, &q, &headers, now, "bucket", false};
    const bool good = signedAs == "/bucket/" || signedAs == "/bucket";
    CHECK(!verifyRequest(in, keys(), {}).failure == good);
  }
}

// SigV4 against AWS's published worked examples for S3 ("Examples: Signature Calculations in AWS
// Signature Version 4", Amazon S3 API reference): GET object, PUT object, GET bucket lifecycle,
// list objects, and a presigned URL. Credentials and date are the ones AWS uses there.

#include <catch2/catch.hpp>

#include "common/sigv4.h"
#include "common/timeutil.h"

using namespace granary;
using namespace granary::sigv4;

namespace {
constexpr std::string_view kSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
constexpr std::string_view kDate = "20130524T000000Z";

std::string signExample(std::string_view method, std::string_view uri, const QueryParams& q, HeaderList headers,
                        std::vector<std::string> names, std::string_view payloadHash) {
  auto key = signingKey(kSecret, "20130524", "us-east-1", "s3");
  auto creq = canonicalRequest(method, uri, canonicalQueryString(q), canonicalHeaders(headers, names),
                               joinSignedHeaders(names), payloadHash);
  return signatureHex(key, stringToSign(kDate, credentialScope("20130524", "us-east-1", "s3"), creq));
}
}  // namespace

TEST_CASE("AWS example: GET object with Range", "[unit][sigv4]") {
  HeaderList h{{"host", "examplebucket.s3.amazonaws.com"},
               {"range", "bytes=0-9"},
               {"x-amz-content-sha256", std::string(kEmptySha256Hex)},
               {"x-amz-date", std::string(kDate)}};
  CHECK(signExample("GET", "/test.txt", {}, h, {"host", "range", "x-amz-content-sha256", "x-amz-date"},
                    kEmptySha256Hex) == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST_CASE("AWS example: PUT object", "[unit][sigv4]") {
  const std::string payload = sha256Hex("Welcome to Amazon S3.");
  CHECK(payload == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  HeaderList h{{"date", "Fri, 24 May 2013 00:00:00 GMT"},
               {"host", "examplebucket.s3.amazonaws.com"},
               {"x-amz-content-sha256", payload},
               {"x-amz-date", std::string(kDate)},
               {"x-amz-storage-class", "REDUCED_REDUNDANCY"}};
  CHECK(signExample("PUT", canonicalUri("/test$file.text"), {}, h,
                    {"date", "host", "x-amz-content-sha256", "x-amz-date", "x-amz-storage-class"},
                    payload) == "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
  CHECK(canonicalUri("/test$file.text") == "/test%24file.text");
}

TEST_CASE("AWS example: GET bucket lifecycle (value-less query parameter)", "[unit][sigv4]") {
  HeaderList h{{"host", "examplebucket.s3.amazonaws.com"},
               {"x-amz-content-sha256", std::string(kEmptySha256Hex)},
               {"x-amz-date", std::string(kDate)}};
  CHECK(signExample("GET", "/", {{"lifecycle", ""}}, h, {"host", "x-amz-content-sha256", "x-amz-date"},
                    kEmptySha256Hex) == "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

TEST_CASE("AWS example: list objects (query sorted)", "[unit][sigv4]") {
  HeaderList h{{"host", "examplebucket.s3.amazonaws.com"},
               {"x-amz-content-sha256", std::string(kEmptySha256Hex)},
               {"x-amz-date", std::string(kDate)}};
  CHECK(signExample("GET", "/", {{"prefix", "J"}, {"max-keys", "2"}}, h, {"host", "x-amz-content-sha256", "x-amz-date"},
                    kEmptySha256Hex) == "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

TEST_CASE("AWS example: presigned GET URL", "[unit][sigv4]") {
  RequestSigner signer({"AKIAIOSFODNN7EXAMPLE", std::string(kSecret), ""}, "us-east-1");
  auto t = *parseAmzDate(kDate);
  auto q = signer.presign("GET", "/test.txt", {}, "examplebucket.s3.amazonaws.com", std::chrono::seconds(86400), t);
  REQUIRE(q.back().first == "X-Amz-Signature");
  CHECK(q.back().second == "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
  CHECK(canonicalQueryString(q).find("X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request") !=
        std::string::npos);
}

TEST_CASE("RequestSigner reproduces the GET object example", "[unit][sigv4]") {
  RequestSigner signer({"AKIAIOSFODNN7EXAMPLE", std::string(kSecret), ""}, "us-east-1");
  HeaderList h{{"host", "examplebucket.s3.amazonaws.com"}, {"range", "bytes=0-9"}};
  signer.sign("GET", "/test.txt", {}, h, kEmptySha256Hex, *parseAmzDate(kDate));
  REQUIRE(h.back().first == "authorization");
  CHECK(h.back().second ==
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST_CASE("RequestSigner adds the session token and signs it", "[unit][sigv4]") {
  RequestSigner signer({"AK", "SK", "TOKEN"}, "eu-west-1");
  HeaderList h{{"host", "h"}};
  signer.sign("GET", "/", {}, h, kEmptySha256Hex, *parseAmzDate(kDate));
  bool token = false;
  for (auto& [k, v] : h)
    if (k == "x-amz-security-token") token = v == "TOKEN";
  CHECK(token);
  CHECK(h.back().second.find("SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token") !=
        std::string::npos);
}

TEST_CASE("canonical header values are trimmed and inner spaces collapsed", "[unit][sigv4]") {
  CHECK(canonicalHeaderValue("  a   b  c ") == "a b c");
  CHECK(canonicalHeaderValue("\tx\t") == "x");
  // Values with nothing to trim or collapse come out as they are; any tab, run or edge space is handled.
  CHECK(canonicalHeaderValue("a b c") == "a b c");
  CHECK(canonicalHeaderValue("") == "");
  CHECK(canonicalHeaderValue("a \tb") == "a b");
  CHECK(canonicalHeaderValue("a\tb") == "a b");
  CHECK(canonicalHeaderValue("a  b") == "a b");
  CHECK(canonicalHeaderValue(" a") == "a");
  CHECK(canonicalHeaderValue("a ") == "a");
  CHECK(canonicalHeaderValue("   ") == "");
  HeaderList h{{"x-a", "1"}, {"x-a", " 2 "}, {"x-b", "v"}};
  CHECK(canonicalHeaders(h, {"x-a", "x-b"}) == "x-a:1,2\nx-b:v\n");
}

TEST_CASE("chunk and trailer strings to sign have AWS's layout", "[unit][sigv4]") {
  CHECK(chunkStringToSign("D", "S", "P", "H") ==
        "AWS4-HMAC-SHA256-PAYLOAD\nD\nS\nP\n" + std::string(kEmptySha256Hex) + "\nH");
  CHECK(trailerStringToSign("D", "S", "P", "H") == "AWS4-HMAC-SHA256-TRAILER\nD\nS\nP\nH");
}

TEST_CASE("time formats round-trip", "[unit][time]") {
  auto t = parseAmzDate("20130524T000000Z");
  REQUIRE(t);
  CHECK(formatHttpDate(*t) == "Fri, 24 May 2013 00:00:00 GMT");
  CHECK(parseHttpDate("Fri, 24 May 2013 00:00:00 GMT") == t);
  CHECK(formatIsoTime(*t + std::chrono::milliseconds(1234)) == "2013-05-24T00:00:01.234Z");
  CHECK_FALSE(parseAmzDate("20130524T000000"));
  CHECK_FALSE(parseAmzDate("2013052XT000000Z"));
  CHECK_FALSE(parseAmzDate("20131324T000000Z"));
  CHECK_FALSE(parseHttpDate("Fri, 24 Foo 2013 00:00:00 GMT"));
}

// Found by fuzzing (tests/fuzz/corpus/sigv4/crash-bde3d451...): a date past what system_clock's 64-bit
// nanoseconds hold overflowed (signed integer overflow under UBSan) instead of being refused.
TEST_CASE("dates outside the clock's range are refused, not overflowed", "[unit][time]") {
  CHECK_FALSE(parseAmzDate("99991231T235959Z"));
  CHECK_FALSE(parseAmzDate("23130524T000000Z"));
  CHECK_FALSE(parseAmzDate("00000101T000000Z"));
  CHECK_FALSE(parseHttpDate("Fri, 24 May 9999 00:00:00 GMT"));
  CHECK_FALSE(parseHttpDate("Sat, 01 Jan 1000 00:00:00 GMT"));
  CHECK(parseAmzDate("22000101T000000Z"));
  CHECK(parseAmzDate("19700101T000000Z"));
}

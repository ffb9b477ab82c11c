// The decoder against AWS's worked example "Signature Calculations for the Authorization Header:
// Transferring Payload in Multiple Chunks" (66,560 bytes of 'a' in 64 KiB chunks).

#include <catch2/catch.hpp>

#include "s3api/aws_chunked.h"
#include "support/aws_chunked_encoder.h"

using namespace granary;
using namespace granary::s3api;

namespace {
constexpr std::string_view kSeed = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";

AwsChunkedDecoder::Options exampleOptions() {
  AwsChunkedDecoder::Options o;
  o.signingKey = sigv4::signingKey("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "20130524", "us-east-1", "s3");
  o.scope = "20130524/us-east-1/s3/aws4_request";
  o.amzDate = "20130524T000000Z";
  o.seedSignature = std::string(kSeed);
  return o;
}

std::string exampleBody() {
  std::string b;
  b += "10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n";
  b += std::string(65536, 'a') + "\r\n";
  b += "400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n";
  b += std::string(1024, 'a') + "\r\n";
  b += "0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n";
  return b;
}

/// Feeds `wire` in pieces of `step` bytes into an output buffer of `outCap`; returns the payload.
std::string decodeAll(AwsChunkedDecoder& d, const std::string& wire, std::size_t step, std::size_t outCap = 4096) {
  std::string payload;
  std::vector<char> out(outCap);
  std::size_t pos = 0;
  while (pos < wire.size() && d.state() == AwsChunkedDecoder::State::Ok) {
    std::size_t n = std::min(step, wire.size() - pos);
    std::size_t used = 0;
    while (used < n && d.state() == AwsChunkedDecoder::State::Ok) {
      auto s = d.decode(wire.data() + pos + used, n - used, out.data(), out.size());
      payload.append(out.data(), s.produced);
      used += s.consumed;
      if (s.consumed == 0 && s.produced == 0) break;
    }
    pos += n;
  }
  return payload;
}
}  // namespace

TEST_CASE("aws-chunked: AWS's worked example decodes and every signature verifies", "[unit][chunked]") {
  const std::string wire = exampleBody();
  REQUIRE(wire.size() == 66824);  // the example's Content-Length
  for (std::size_t step : {wire.size(), std::size_t{1}, std::size_t{7}, std::size_t{8192}}) {
    AwsChunkedDecoder d(exampleOptions());
    auto payload = decodeAll(d, wire, step);
    INFO("step " << step);
    CHECK(d.state() == AwsChunkedDecoder::State::Done);
    CHECK(payload == std::string(66560, 'a'));
    CHECK(d.decodedBytes() == 66560);
  }
}

TEST_CASE("aws-chunked: one flipped payload byte fails that chunk's signature", "[unit][chunked]") {
  std::string wire = exampleBody();
  wire[100] = 'b';
  AwsChunkedDecoder d(exampleOptions());
  decodeAll(d, wire, 4096);
  CHECK(d.state() == AwsChunkedDecoder::State::BadSignature);
}

TEST_CASE("aws-chunked: a wrong seed signature breaks the chain", "[unit][chunked]") {
  auto o = exampleOptions();
  o.seedSignature[0] = o.seedSignature[0] == '0' ? '1' : '0';
  AwsChunkedDecoder d(o);
  decodeAll(d, exampleBody(), 70000);
  CHECK(d.state() == AwsChunkedDecoder::State::BadSignature);
}

TEST_CASE("aws-chunked: a body cut before the final chunk is never Done", "[unit][chunked]") {
  std::string wire = exampleBody();
  wire.resize(wire.size() - 90);
  AwsChunkedDecoder d(exampleOptions());
  decodeAll(d, wire, 1000);
  CHECK(d.state() == AwsChunkedDecoder::State::Ok);  // still waiting: the caller reports IncompleteBody
}

TEST_CASE("aws-chunked: malformed framing is rejected", "[unit][chunked]") {
  AwsChunkedDecoder::Options o;
  o.signedChunks = false;
  SECTION("bad hex size") {
    AwsChunkedDecoder d(o);
    decodeAll(d, "zz\r\nabc\r\n0\r\n\r\n", 100);
    CHECK(d.state() == AwsChunkedDecoder::State::Malformed);
  }
  SECTION("data longer than its size") {
    AwsChunkedDecoder d(o);
    decodeAll(d, "2\r\nabc\r\n0\r\n\r\n", 100);
    CHECK(d.state() == AwsChunkedDecoder::State::Malformed);
  }
  SECTION("endless header line") {
    AwsChunkedDecoder d(o);
    decodeAll(d, std::string(10000, '1'), 100);
    CHECK(d.state() == AwsChunkedDecoder::State::Malformed);
  }
  SECTION("missing chunk signature in signed mode") {
    AwsChunkedDecoder d(exampleOptions());
    decodeAll(d, "3\r\nabc\r\n0\r\n\r\n", 100);
    CHECK(d.state() == AwsChunkedDecoder::State::BadSignature);
  }
}

TEST_CASE("aws-chunked: unsigned payload with a checksum trailer", "[unit][chunked]") {
  AwsChunkedDecoder::Options o;
  o.signedChunks = false;
  o.trailer = true;
  const std::string payload(100000, 'z');
  auto wire = testing::encodeAwsChunked(payload, 65536, nullptr, {{"x-amz-checksum-crc32", "AAAAAA=="}});
  AwsChunkedDecoder d(o);
  CHECK(decodeAll(d, wire, 333) == payload);
  REQUIRE(d.state() == AwsChunkedDecoder::State::Done);
  REQUIRE(d.trailers().size() == 1);
  CHECK(d.trailers()[0].first == "x-amz-checksum-crc32");
  CHECK(d.trailers()[0].second == "AAAAAA==");
}

TEST_CASE("aws-chunked: signed chunks with a signed trailer", "[unit][chunked]") {
  auto o = exampleOptions();
  o.trailer = o.signedTrailer = true;
  testing::ChunkSigning s{o.signingKey, o.scope, o.amzDate, o.seedSignature};
  const std::string payload(70000, 'q');
  SECTION("valid") {
    AwsChunkedDecoder d(o);
    auto wire = testing::encodeAwsChunked(payload, 65536, &s, {{"x-amz-checksum-sha256", "abc="}});
    CHECK(decodeAll(d, wire, 5000) == payload);
    CHECK(d.state() == AwsChunkedDecoder::State::Done);
  }
  SECTION("tampered trailer value") {
    AwsChunkedDecoder d(o);
    auto wire = testing::encodeAwsChunked(payload, 65536, &s, {{"x-amz-checksum-sha256", "abc="}});
    wire.replace(wire.find("abc="), 4, "abd=");
    decodeAll(d, wire, 5000);
    CHECK(d.state() == AwsChunkedDecoder::State::BadSignature);
  }
}

TEST_CASE("aws-chunked: the trailer section is bounded and its fields are clean", "[unit][chunked]") {
  AwsChunkedDecoder::Options o;
  o.signedChunks = false;
  o.trailer = true;
  auto decodeWith = [&](const std::string& trailerLines) {
    AwsChunkedDecoder d(o);
    decodeAll(d, "3\r\nabc\r\n0\r\n" + trailerLines + "\r\n", 4096);
    return d.state();
  };
  using S = AwsChunkedDecoder::State;
  CHECK(decodeWith("x-amz-checksum-crc32:AAAAAA==\r\n") == S::Done);
  // A CR, NUL or other control byte in a value could split a header it is copied into.
  CHECK(decodeWith(std::string("x-amz-checksum-crc32:AAAA\rX-Evil: 1\r\n")) == S::MalformedTrailer);
  CHECK(decodeWith(std::string("x-amz-checksum-crc32:AA\0AA\r\n", 29)) == S::MalformedTrailer);
  CHECK(decodeWith("x-amz-checksum-crc32:AA\x1b[31m\r\n") == S::MalformedTrailer);
  CHECK(decodeWith("bad name:v\r\n") == S::MalformedTrailer);
  CHECK(decodeWith(":v\r\n") == S::MalformedTrailer);
  // Bounded: one line, the field count and the section's bytes.
  CHECK(decodeWith("x-amz-a:" + std::string(5000, 'v') + "\r\n") == S::MalformedTrailer);
  std::string many;
  for (int i = 0; i < 33; ++i) many += "x-amz-f" + std::to_string(i) + ":v\r\n";
  CHECK(decodeWith(many) == S::MalformedTrailer);
  std::string big;
  for (int i = 0; i < 5; ++i) big += "x-amz-f" + std::to_string(i) + ":" + std::string(4000, 'v') + "\r\n";
  CHECK(decodeWith(big) == S::MalformedTrailer);
  // An endless trailer fed in pieces stops at the limit instead of growing.
  AwsChunkedDecoder d(o);
  decodeAll(d, "3\r\nabc\r\n0\r\n", 100);
  const std::string field = "x-amz-pad:" + std::string(1000, 'p') + "\r\n";
  std::size_t fed = 0;
  char out[16];
  while (d.state() == S::Ok && fed < (60u << 20)) {
    d.decode(field.data(), field.size(), out, sizeof out);
    fed += field.size();
  }
  CHECK(d.state() == S::MalformedTrailer);
  CHECK(fed <= AwsChunkedDecoder::kMaxTrailerBytes + field.size());
}

TEST_CASE("aws-chunked: a chunk header line is bounded", "[unit][chunked]") {
  AwsChunkedDecoder::Options o;
  o.signedChunks = false;
  AwsChunkedDecoder d(o);
  decodeAll(d, "3;" + std::string(5000, 'x') + "\r\nabc\r\n0\r\n\r\n", 4096);
  CHECK(d.state() == AwsChunkedDecoder::State::Malformed);
}

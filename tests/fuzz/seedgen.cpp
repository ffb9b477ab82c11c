// Writes the hand-made seed corpora of tests/fuzz/corpus/ (the inputs that are not plain text files):
// requests, ranges and bodies with the targets' control bytes in front, and journals, spools and cache
// entries produced by Granary's own writers. Run it after changing an input format:
//   cmake --build build --target fuzz_seedgen && build/tests/fuzz/fuzz_seedgen tests/fuzz/corpus
// It only adds or overwrites files named seed-*; regression inputs (crash-*) and plain seeds are kept.

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "cache/chunk.h"
#include "cache/disk_index.h"
#include "cache/journal.h"
#include "cache/object_meta.h"
#include "cache/writeback.h"

namespace fs = std::filesystem;
namespace asio = boost::asio;
using namespace granary::cache;

namespace {

fs::path root;

void put(const std::string& target, const std::string& name, const std::string& bytes) {
  fs::create_directories(root / target);
  std::ofstream(root / target / ("seed-" + name), std::ios::binary) << bytes;
}

std::string u8(unsigned v) { return std::string(1, static_cast<char>(v)); }
std::string u16(unsigned v) { return u8(v & 0xff) + u8((v >> 8) & 0xff); }
std::string u32(std::uint32_t v) { return u16(v & 0xffff) + u16(v >> 16); }
std::string u64(std::uint64_t v) { return u32(static_cast<std::uint32_t>(v)) + u32(static_cast<std::uint32_t>(v >> 32)); }

// ---- range: u8 status selector (200 206 200 206 416 304 0 500), u64 size, u8 flags, u64 length, text.
void rangeSeeds() {
  struct R {
    const char* name;
    unsigned status;  // selector
    std::uint64_t size;
    unsigned flags;
    std::uint64_t cl;
    std::string text;
  };
  const std::vector<R> rs = {
      {"first-100", 0, 1000, 2, 1000, "bytes=0-99\n"},
      {"suffix-refetch", 1, 1000, 2, 100, "bytes=-100\nbytes 0-99/1000"},
      {"open-end", 1, 1000, 2, 500, "bytes=500-\nbytes 500-999/1000"},
      {"one-byte-whole-body", 0, 1000, 2, 1000, "bytes=0-0\n"},
      {"exact-206", 1, 1000, 2, 10, "bytes=10-19\nbytes 10-19/1000"},
      {"wider-206", 1, 1000, 2, 100, "bytes=10-19\nbytes 0-99/1000"},
      {"reversed", 0, 1000, 2, 1000, "bytes=5-1\n"},
      {"items", 0, 1000, 2, 1000, "items=0-1\n"},
      {"multi", 1, 1000, 2, 2, "bytes=0-1,5-6\nbytes 0-1/1000"},
      {"huge-first", 0, 1000, 2, 1000, "bytes=99999999999999999999999999-\n"},
      {"huge-last", 0, 1000, 2, 1000, "bytes=0-99999999999999999999999999\n"},
      {"suffix-zero", 0, 1000, 2, 1000, "bytes=-0\n"},
      {"spaces", 1, 1000, 2, 2, " bytes = 1 - 2 \n bytes 1-2/1000 "},
      {"past-end-416", 4, 1000, 2, 0, "bytes=1000-\nbytes */1000"},
      {"unknown-total", 1, 1000, 2, 100, "bytes=0-99\nbytes 0-99/*"},
      {"empty-object", 0, 0, 2, 0, "bytes=0-\n"},
      {"no-length", 0, 1000, 0, 0, "bytes=0-9\n"},
      {"bad-content-range", 1, 1000, 2, 100, "bytes=0-99\nbytes 99-0/1000"},
      {"max-u64", 1, ~0ull, 0, ~0ull, "bytes=18446744073709551614-\nbytes 18446744073709551614-18446744073709551614/18446744073709551615"},
  };
  for (const auto& r : rs) put("range", r.name, u8(r.status) + u64(r.size) + u8(r.flags) + u64(r.cl) + r.text);
}

// ---- http_session: u8 flags, u8 read size, u8 max slice, u8 seed, u8 write failure point, client bytes.
void httpSeeds() {
  auto p = [](unsigned flags, unsigned readSel, unsigned slice, unsigned seed, unsigned wf) {
    return u8(flags) + u8(readSel) + u8(slice) + u8(seed) + u8(wf);
  };
  const std::string get = "GET /bucket/key HTTP/1.1\r\nHost: localhost\r\n\r\n";
  const std::string put8 = "PUT /bucket/key HTTP/1.1\r\nHost: localhost\r\nContent-Length: 8\r\n\r\n12345678";
  const std::string chunked =
      "PUT /bucket/key HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-amz-checksum-crc32: AAAAAA==\r\n\r\n";
  put("http_session", "get", p(0, 9, 0, 0, 0) + get);
  put("http_session", "keepalive-two", p(0, 9, 0, 0, 0) + get + get);
  put("http_session", "put-body", p(0, 0, 3, 7, 0) + put8 + get);
  put("http_session", "put-chunked", p(0, 1, 5, 3, 0) + chunked + get);
  put("http_session", "chunked-response", p(16, 9, 0, 0, 0) + put8 + get);
  put("http_session", "no-content", p(32, 9, 0, 0, 0) + get + get);
  put("http_session", "head", p(0, 9, 0, 0, 0) + "HEAD /bucket/key HTTP/1.1\r\nHost: localhost\r\n\r\n" + get);
  put("http_session", "pipelined", p(0, 9, 0, 0, 0) + get + put8 + get + "DELETE /b/k HTTP/1.1\r\nHost: x\r\n\r\n");
  put("http_session", "expect-continue",
      p(0, 9, 0, 0, 0) + "PUT /b/k HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc" + get);
  put("http_session", "expect-continue-no-body",
      p(0, 9, 0, 0, 0) + "GET /b/k HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n" + get);
  put("http_session", "expect-continue-unread",
      p(8, 9, 0, 0, 0) + "PUT /b/k HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc" + get);
  put("http_session", "drain-unread", p(8, 9, 0, 0, 0) + put8 + get);
  put("http_session", "partial-read", p(4, 0, 0, 0, 0) + put8 + get);
  put("http_session", "drain-too-large",
      p(9, 9, 0, 0, 0) + "PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: 9000\r\n\r\n" + std::string(9000, 'z') + get);
  put("http_session", "te-and-cl",
      p(0, 9, 0, 0, 0) + "PUT /b/k HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n");
  put("http_session", "te-gzip-chunked",
      p(0, 9, 0, 0, 0) + "PUT /b/k HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n");
  put("http_session", "te-chunked-identity",
      p(0, 9, 0, 0, 0) + "PUT /b/k HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n");
  put("http_session", "te-twice",
      p(0, 9, 0, 0, 0) + "PUT /b/k HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
  put("http_session", "te-http10", p(0, 9, 0, 0, 0) + "PUT /b/k HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
  put("http_session", "http10-keepalive",
      p(0, 9, 0, 0, 0) + "GET /b/k HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b/k HTTP/1.0\r\n\r\n");
  put("http_session", "http2-version", p(0, 9, 0, 0, 0) + "GET /b/k HTTP/2.0\r\nHost: x\r\n\r\n");
  put("http_session", "long-line", p(1, 9, 0, 0, 0) + "GET /b/k HTTP/1.1\r\nHost: x\r\nX-Long: " + std::string(700, 'a') + "\r\n\r\n");
  put("http_session", "long-target", p(1, 9, 0, 0, 0) + "GET /" + std::string(700, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string many = "GET /b/k HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 20; ++i) many += "X-F" + std::to_string(i) + ": v\r\n";
  put("http_session", "many-fields", p(1, 9, 0, 0, 0) + many + "\r\n");
  put("http_session", "header-too-large", p(1, 9, 0, 0, 0) + "GET /b/k HTTP/1.1\r\n" + [] {
    std::string h;
    for (int i = 0; i < 10; ++i) h += "X-A" + std::to_string(i) + ": " + std::string(300, 'b') + "\r\n";
    return h;
  }() + "\r\n");
  put("http_session", "garbage", p(0, 9, 0, 0, 0) + "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03");
  put("http_session", "truncated-body", p(0, 9, 0, 0, 0) + "PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nshort");
  put("http_session", "truncated-chunk", p(0, 9, 0, 0, 0) + "PUT /b/k HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nff\r\nabc");
  put("http_session", "bad-chunk-size", p(0, 9, 0, 0, 0) + "PUT /b/k HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n");
  put("http_session", "timeout-mid-header", p(2, 9, 0, 0, 0) + "GET /b/k HTTP/1.1\r\nHost: x\r\n");
  put("http_session", "client-stops-reading", p(128, 9, 0, 0, 3) + get + get + get);
  put("http_session", "handler-gives-up", p(64, 9, 0, 0, 0) + get + get + get);
  put("http_session", "absolute-form", p(0, 9, 0, 0, 0) + "GET http://bucket.s3.example.com/key?x=1 HTTP/1.1\r\nHost: other\r\n\r\n");
  put("http_session", "obs-fold", p(0, 9, 0, 0, 0) + "GET /b/k HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n");
  put("http_session", "bare-lf", p(0, 9, 0, 0, 0) + "GET /b/k HTTP/1.1\nHost: x\n\n");
  put("http_session", "one-byte-reads", p(0, 9, 1, 0, 0) + put8 + chunked + get);
}

// ---- sigv4: u8 flags, u8 payload, u16 skew, u16 expiry, request head.
void sigv4Seeds() {
  auto p = [](unsigned flags, unsigned payload, int skew, unsigned expiry) {
    return u8(flags) + u8(payload) + u16(static_cast<std::uint16_t>(skew)) + u16(expiry);
  };
  const std::string get = "GET /bucket/some/key.txt HTTP/1.1\r\nHost: 127.0.0.1:9000\r\nUser-Agent: fuzz\r\n\r\n";
  const std::string putReq =
      "PUT /bucket/dir/obj%20with%20space+plus~tilde HTTP/1.1\r\nHost: 127.0.0.1:9000\r\nContent-Type: text/plain\r\n"
      "Content-Length: 12\r\nx-amz-meta-a:  spaced   value \r\nx-amz-decoded-content-length: 12\r\n"
      "Content-Encoding: aws-chunked\r\n\r\n";
  put("sigv4", "v4-get", p(4, 0, 0, 0) + get);
  put("sigv4", "v4-get-canonical-path", p(4 | 64, 4, 10, 0) + get);
  put("sigv4", "v4-put-streaming", p(4, 1, -30, 0) + putReq);
  put("sigv4", "v4-put-streaming-trailer", p(4, 2, 0, 0) + putReq);
  put("sigv4", "v4-put-unsigned-trailer", p(4, 3, 0, 0) + putReq);
  put("sigv4", "v4-upper-hex", p(4, 5, 0, 0) + putReq);
  put("sigv4", "v4-region-refused", p(4 | 32, 0x20, 0, 0) + get);
  put("sigv4", "v4-skewed", p(4, 0, 20000, 0) + get);
  put("sigv4", "v4-query", p(4, 0, 0, 0) +
                               "GET /bucket?list-type=2&prefix=a%2Fb&delimiter=%2F&encoding-type=url HTTP/1.1\r\n"
                               "Host: 127.0.0.1\r\n\r\n");
  put("sigv4", "v4-virtual-hosted", p(4 | 8, 0, 0, 0) + "GET /key?uploads HTTP/1.1\r\nHost: bucket.s3.example.com\r\n\r\n");
  put("sigv4", "v4-absolute-form", p(4, 0, 0, 0) + "GET http://127.0.0.1:9000/bucket/key HTTP/1.1\r\nHost: other\r\n\r\n");
  put("sigv4", "v4-odd-keys", p(4, 0, 0, 0) + "GET /bucket/a//b/../%E2%82%AC/%25/x%2By HTTP/1.1\r\nHost: h\r\n\r\n");
  put("sigv4", "v4-unsigned-amz-header", p(4, 0, 0, 0) + "GET /b/k HTTP/1.1\r\nHost: h\r\nX-Amz-Copy-Source: /a/b\r\n\r\n");
  put("sigv4", "v4-presigned", p(5, 0, -60, 3600) + get);
  put("sigv4", "v4-presigned-expired", p(5, 0, -7200, 60) + get);
  put("sigv4", "v4-presigned-with-amz-header", p(5, 0, 0, 600) + "GET /b/k HTTP/1.1\r\nHost: h\r\nx-amz-meta-x: 1\r\n\r\n");
  put("sigv4", "v2-header", p(6, 0, 0, 0) + "PUT /bucket/key?acl HTTP/1.1\r\nHost: h\r\nContent-MD5: 1B2M2Y8AsgTpgAmY7PhCfg==\r\n"
                                             "Content-Type: text/plain\r\nx-amz-meta-b: 2\r\nx-amz-meta-a: 1\r\nx-amz-meta-a: 3\r\n\r\n");
  put("sigv4", "v2-header-amz-date", p(6, 0, 0, 0) + "GET /b/k HTTP/1.1\r\nHost: h\r\nx-amz-date: Wed, 01 May 2024 12:00:00 GMT\r\n\r\n");
  put("sigv4", "v2-virtual-hosted", p(6 | 8, 0, 0, 0) + "GET /k?versionId=3&response-content-type=a HTTP/1.1\r\nHost: bucket.s3.example.com\r\n\r\n");
  put("sigv4", "v2-presigned", p(7, 0, 0, 900) + get);
  put("sigv4", "anonymous", p(16, 0, 0, 0) + "GET /b/k HTTP/1.1\r\nHost: h\r\nx-amz-content-sha256: UNSIGNED-PAYLOAD\r\n\r\n");
  put("sigv4", "anonymous-streaming", p(16, 0, 0, 0) +
                                          "PUT /b/k HTTP/1.1\r\nHost: h\r\nx-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD\r\n\r\n");
  // AWS's published examples, verified with our key (so: InvalidAccessKeyId / SignatureDoesNotMatch paths).
  put("sigv4", "aws-example-header",
      p(0, 0, 0, 0) +
          "GET /test.txt HTTP/1.1\r\nHost: examplebucket.s3.amazonaws.com\r\nRange: bytes=0-9\r\n"
          "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\r\n"
          "x-amz-date: 20130524T000000Z\r\nAuthorization: AWS4-HMAC-SHA256 "
          "Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;"
          "x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41\r\n\r\n");
  put("sigv4", "aws-example-presigned",
      p(0, 0, 0, 0) +
          "GET /test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3"
          "%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature="
          "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404 HTTP/1.1\r\nHost: examplebucket.s3.amazonaws.com\r\n\r\n");
  put("sigv4", "aws-example-v2-query",
      p(0, 0, 0, 0) +
          "GET /photos/puppy.jpg?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=NpgCjnDzrM%2BWFzoENXmpNDUsSn8%3D&Expires=1175139620 "
          "HTTP/1.1\r\nHost: johnsmith.s3.amazonaws.com\r\n\r\n");
  put("sigv4", "malformed-authorization", p(0, 0, 0, 0) +
                                              "GET /b/k HTTP/1.1\r\nHost: h\r\nx-amz-date: 20240501T120000Z\r\n"
                                              "Authorization: AWS4-HMAC-SHA256 Credential=AKIDFUZZEXAMPLE/2024/us-east-1/s3/aws4_request\r\n\r\n");
}

// ---- aws_chunked: u8 mode, u8 max slice, u8 max output, u32 seed, u8 damage, then a body or its description.
void chunkedSeeds() {
  auto p = [](unsigned mode, unsigned slice, unsigned out, std::uint32_t seed, unsigned damage) {
    return u8(mode) + u8(slice) + u8(out) + u32(seed) + u8(damage);
  };
  // Described bodies: u8 chunk count, then per chunk u8 length and data, then the checksum flag.
  const std::string desc = u8(3) + u8(9) + "chunk one" + u8(5) + "two!!" + u8(60) + std::string(60, 'z') + u8(1);
  for (unsigned m = 0; m < 3; ++m) {
    const std::string n = std::to_string(m);
    put("aws_chunked", "encoded-" + n, p(4 | m, 255, 255, 1, 0) + desc);
    put("aws_chunked", "encoded-sliced-" + n, p(4 | m, 3, 7, 12345, 0) + desc);
    put("aws_chunked", "encoded-cut-" + n, p(4 | m, 16, 16, 100, 1) + desc);
    put("aws_chunked", "encoded-flipped-" + n, p(4 | m, 16, 16, 77, 2 | (5 << 2)) + desc);
    put("aws_chunked", "encoded-md5-" + n, p(4 | 16 | 32 | m, 8, 8, 9, 0) + desc);
    put("aws_chunked", "encoded-declared-off-" + n, p(4 | m, 8, 8, 9, 16) + desc);
    put("aws_chunked", "encoded-client-gone-" + n, p(4 | m, 8, 8, 9, 64) + desc);
  }
  put("aws_chunked", "encoded-empty", p(4, 255, 255, 1, 0) + u8(0) + u8(1));
  put("aws_chunked", "encoded-bad-checksum", p(4 | 2 | 32, 255, 255, 1, 0) + desc.substr(0, desc.size() - 1) + u8(0));
  // Raw bodies.
  put("aws_chunked", "raw-unsigned-trailer", p(2 | 32, 4, 4, 3, 0) + "3\r\nabc\r\n0\r\nx-amz-checksum-crc32:NSRBwg==\r\n\r\n");
  put("aws_chunked", "raw-unsigned-no-trailer", p(2, 4, 4, 3, 0) + "3\r\nabc\r\n0\r\n\r\n");
  put("aws_chunked", "raw-unsigned-uppercase-hex", p(2, 255, 255, 3, 0) + "A\r\n0123456789\r\n0\r\nX-Amz-Checksum-Crc32 :  x \r\n\r\n");
  put("aws_chunked", "raw-unsigned-data-too-long", p(2, 255, 255, 3, 0) + "2\r\nabc\r\n0\r\n\r\n");
  put("aws_chunked", "raw-unsigned-huge-size", p(2, 255, 255, 3, 0) + "ffffffffffffffff\r\nabc\r\n");
  put("aws_chunked", "raw-unsigned-bare-lf", p(2, 255, 255, 3, 0) + "3\nabc\n0\n\n");
  put("aws_chunked", "raw-signed-missing-signature", p(0, 255, 255, 3, 0) + "3\r\nabc\r\n0\r\n\r\n");
  put("aws_chunked", "raw-signed-bad-extension", p(0, 255, 255, 3, 0) + "3;chunk-signatur=00\r\nabc\r\n");
  put("aws_chunked", "raw-signed-wrong-signature",
      p(0, 255, 255, 3, 0) + "3;chunk-signature=" + std::string(64, '0') + "\r\nabc\r\n0;chunk-signature=" +
          std::string(64, '1') + "\r\n\r\n");
  put("aws_chunked", "raw-long-line", p(2, 255, 255, 3, 0) + std::string(5000, '1'));
  put("aws_chunked", "plain-sha256", p(3, 5, 5, 3, 0) + "hello, world");
  put("aws_chunked", "plain-sha256-mismatch", p(3, 5, 5, 3, 4) + "hello, world");
  put("aws_chunked", "plain-unsigned", p(3 | 8 | 16, 5, 5, 3, 0) + "hello, world");
  put("aws_chunked", "plain-unsigned-declared-short", p(3 | 8, 5, 5, 3, 16) + "hello, world");
}

// ---- request_xml: u8, body.
void xmlSeeds() {
  auto x = [](const std::string& body) { return u8(0) + body; };
  put("request_xml", "complete",
      x("<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<Part><PartNumber>1</PartNumber><ETag>\"a54357aff0632cce46d942af68356b38\"</ETag></Part>"
        "<Part><ETag>\"0c78aef83f66abc1fa1e8477f296d394\"</ETag><PartNumber>2</PartNumber>"
        "<ChecksumCRC32>AAAAAA==</ChecksumCRC32></Part>"
        "<Part><PartNumber>3</PartNumber><ETag>&quot;acbd18db4cc2f85cedef654fccc4a4d8&quot;</ETag></Part>"
        "</CompleteMultipartUpload>"));
  put("request_xml", "complete-out-of-order",
      x("<CompleteMultipartUpload><Part><PartNumber>2</PartNumber><ETag>a</ETag></Part>"
        "<Part><PartNumber>1</PartNumber><ETag>b</ETag></Part></CompleteMultipartUpload>"));
  put("request_xml", "complete-bad-numbers",
      x("<CompleteMultipartUpload><Part><PartNumber> 1</PartNumber><ETag>a</ETag></Part>"
        "<Part><PartNumber>10001</PartNumber><ETag>b</ETag></Part><Part><PartNumber>0</PartNumber><ETag>c</ETag></Part>"
        "<Part><PartNumber>+3</PartNumber><ETag>c</ETag></Part></CompleteMultipartUpload>"));
  put("request_xml", "complete-split-by-comment",
      x("<?xml version=\"1.0\" encoding=\"UTF-8\"?><CompleteMultipartUpload><Part><PartNumber>1<!-- x -->2</PartNumber>"
        "<ETag><![CDATA[\"e\"]]></ETag></Part></CompleteMultipartUpload>"));
  put("request_xml", "delete",
      x("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>"
        "<Object><Key>sample1.txt</Key></Object><Object><Key>sample2.txt</Key><VersionId>OYcLXagmS.WaD..oyH4KRguB95_YhLs7"
        "</VersionId></Object><Object><Key> spaced &amp; &#x20AC; </Key></Object></Delete>"));
  put("request_xml", "delete-empty-key", x("<Delete><Object><Key></Key></Object></Delete>"));
  put("request_xml", "delete-key-elsewhere", x("<Delete><Object><Key>a</Key></Object><Key>b</Key></Delete>"));
  put("request_xml", "delete-nested", x("<Delete><Object><Key>a<Key>b</Key></Key></Object></Delete>"));
  put("request_xml", "delete-two-keys", x("<Delete><Object><Key>a</Key><Key>b</Key></Object></Delete>"));
  std::string many = "<Delete>";
  for (int i = 0; i < 1001; ++i) many += "<Object><Key>" + std::to_string(i) + "</Key></Object>";
  put("request_xml", "delete-1001", x(many + "</Delete>"));
  put("request_xml", "doctype-entity",
      x("<?xml version=\"1.0\"?><!DOCTYPE d [<!ENTITY e \"sample1.txt\">]><Delete><Object><Key>&e;</Key></Object></Delete>"));
  put("request_xml", "utf16-declared", x("<?xml version=\"1.0\" encoding=\"UTF-16\"?><Delete><Object><Key>a</Key></Object></Delete>"));
  put("request_xml", "tagging",
      x("<Tagging><TagSet><Tag><Key>project</Key><Value>granary</Value></Tag><Tag><Key>env</Key><Value></Value></Tag>"
        "</TagSet></Tagging>"));
  std::string tags = "<Tagging><TagSet>";
  for (int i = 0; i < 11; ++i) tags += "<Tag><Key>k" + std::to_string(i) + "</Key><Value>v</Value></Tag>";
  put("request_xml", "tagging-11", x(tags + "</TagSet></Tagging>"));
  put("request_xml", "tagging-duplicate", x("<Tagging><TagSet><Tag><Key>a</Key><Value>1</Value></Tag><Tag><Key>a</Key><Value>2</Value></Tag></TagSet></Tagging>"));
  put("request_xml", "tagging-long", x("<Tagging><TagSet><Tag><Key>" + std::string(129, 'k') + "</Key><Value>" +
                                        std::string(257, 'v') + "</Value></Tag></TagSet></Tagging>"));
  put("request_xml", "not-xml", x("{\"Objects\": []}"));
  put("request_xml", "unclosed", x("<Delete><Object><Key>a</Key></Object>"));
}

// ---- disk_journal: structured (mode 0) and real journal files (mode 1).
void diskJournalSeeds() {
  // Structured: u8 damage, u16 cut, u16 flip, u8 xor, then 12-byte events:
  // kind, dir, region, u16 gen, u16 hash, u16 block, u8 blocks, u8 loc.dir, u8 pad.
  auto ev = [](unsigned kind, unsigned region, unsigned gen, unsigned hash, unsigned block, unsigned blocks) {
    return u8(kind) + u8(0) + u8(region) + u16(gen) + u16(hash) + u16(block) + u8(blocks) + u8(0) + u8(0);
  };
  const std::string events = ev(1, 0, 1, 0, 0, 0) + ev(2, 0, 1, 7, 0, 2) + ev(2, 0, 1, 8, 2, 1) + ev(1, 1, 2, 0, 0, 0) +
                             ev(2, 1, 2, 9, 16, 3) + ev(3, 0, 0, 8, 0, 0) + ev(2, 1, 2, 7, 19, 1) + ev(1, 0, 3, 0, 0, 0) +
                             ev(2, 0, 1, 10, 4, 1) + ev(8, 0, 0, 0, 0, 0);
  // geometry: regions = 2 + b % 15 (4), region size = 4096 * (1 + c % 16) (16 blocks)
  const std::string geo = u8(2) + u8(15);
  put("disk_journal", "events", u8(0) + geo + u8(0) + u16(0) + u16(0) + u8(0) + events);
  put("disk_journal", "events-cut", u8(0) + geo + u8(1) + u16(64 + 32 * 4 + 10) + u16(0) + u8(0) + events);
  put("disk_journal", "events-flipped", u8(0) + geo + u8(2) + u16(64 + 32 * 6 + 3) + u16(64 + 32 * 6 + 3) + u8(0x40) + events);
  put("disk_journal", "events-header-flipped", u8(0) + geo + u8(2) + u16(5) + u16(5) + u8(1) + events);
  put("disk_journal", "events-cross-region", u8(0) + geo + u8(0) + u16(0) + u16(0) + u8(0) + ev(1, 0, 1, 0, 0, 0) +
                                                 ev(2, 0, 1, 1, 14, 9) + ev(2, 3, 1, 2, 200, 1));

  // Real journals: a DiskIndex whose events go through the journal's record encoder, then a snapshot.
  DirGeometry g{4096 * 16, 4};
  DiskIndex index({g}, 64);
  std::string appended = Journal::encodeHeader(g);
  index.setEventSink([&](const IndexEvent& e) { appended += Journal::encodeRecord(e); });
  for (std::uint64_t i = 1; i <= 40; ++i) {
    const std::uint64_t hash = i * 0x9E3779B97F4A7C15ull;
    for (int k = 0; k < 4; ++k) index.recordAccess(hash);
    if (auto slot = index.reserve(hash, 4096 * (1 + i % 5))) index.commit(*slot, hash);
    if (i % 7 == 0) index.remove((i - 3) * 0x9E3779B97F4A7C15ull);
  }
  put("disk_journal", "appended", u8(1) + geo + appended);
  put("disk_journal", "appended-torn", u8(1) + geo + appended.substr(0, appended.size() - 13));
  put("disk_journal", "appended-other-geometry", u8(1) + u8(3) + u8(15) + appended);
  std::vector<std::uint32_t> gens;
  std::vector<std::pair<std::uint64_t, Location>> live;
  index.snapshotDir(0, gens, live);
  const std::string path = fs::temp_directory_path() / ("granary-seedgen-journal-" + std::to_string(::getpid()));
  std::string error;
  if (Journal::writeSnapshot(path, g, gens, live, error)) {
    std::ifstream in(path, std::ios::binary);
    const std::string snap((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    put("disk_journal", "snapshot", u8(1) + geo + snap);
    put("disk_journal", "snapshot-raw-header", u8(3) + geo + snap.substr(64));
  }
  fs::remove(path);
}

// ---- writeback_journal: writer-mode scripts (mode 1) and journals the real spool wrote (mode 0).
asio::awaitable<void> spoolScript(WriteBackSpool& s) {
  auto putObject = [&](std::string key, std::string body) -> asio::awaitable<std::uint64_t> {
    auto seq = *s.reserve(body.size());
    const int fd = co_await s.openData(seq, true);
    if (::write(fd, body.data(), body.size()) < 0) std::abort();
    ::close(fd);
    PendingWrite w;
    w.seq = seq;
    w.bucket = "bucket";
    w.key = std::move(key);
    w.size = body.size();
    w.etag = "\"e" + std::to_string(seq) + "\"";
    w.headers = {{"content-type", "text/plain"}, {"x-amz-meta-quote", "a \"b\"\n\\"}};
    w.createdMs = 1714564800000;
    co_await s.commit(std::move(w));
    co_return seq;
  };
  co_await putObject("key/0", "hello");
  co_await putObject("key/1", "world");
  co_await putObject("key/0", "again");  // supersedes the first
  {
    PendingWrite d;
    d.seq = *s.reserve(0);
    d.isDelete = true;
    d.bucket = "bucket";
    d.key = "key/1";
    co_await s.commit(std::move(d));
  }
  SpoolUpload u;
  u.id = "upload-2";
  u.bucket = "bucket";
  u.key = "key/2";
  u.headers = {{"content-type", "application/octet-stream"}};
  co_await s.beginUpload(u);
  for (std::uint32_t n = 1; n <= 2; ++n) {
    const auto seq = *s.reserve(3);
    const int fd = co_await s.openData(seq, true);
    if (::write(fd, "abc", 3) < 0) std::abort();
    ::close(fd);
    // (Arguments built before the co_await: GCC 12 mishandles temporaries that live across one.)
    std::string id = "upload-2";
    SpooledPart part{n, seq, 3, "\"p" + std::to_string(seq) + "\"", 5};
    co_await s.addPart(std::move(id), std::move(part));
  }
  u.id = "upload-3";
  u.key = "key/3";
  co_await s.beginUpload(u);
  if (auto p = s.next()) co_await s.complete(p);
}

void writebackSeeds() {
  const fs::path dir = fs::temp_directory_path() / ("granary-seedgen-spool-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  {
    WriteBackSpool s(WriteBackOptions{dir.string(), 1 << 20, 1'000'000});
    asio::io_context ioc;
    asio::co_spawn(ioc, spoolScript(s), [](std::exception_ptr e) {
      if (e) std::rethrow_exception(e);
    });
    ioc.run();
  }
  std::ifstream in(dir / "writeback.journal", std::ios::binary);
  const std::string journal((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  fs::remove_all(dir);
  put("writeback_journal", "written", u8(0) + u8(0xff) + journal);
  put("writeback_journal", "written-no-data", u8(0) + u8(0) + journal);
  put("writeback_journal", "written-torn", u8(0) + u8(0xff) + journal.substr(0, journal.size() - 20));
  put("writeback_journal", "done-negative", u8(0) + u8(0xff) + journal + "{\"op\":\"done\",\"seq\":-1}\n");
  put("writeback_journal", "done-fraction", u8(0) + u8(0xff) + journal + "{\"op\":\"done\",\"seq\":1.5}\n");
  put("writeback_journal", "wrong-types",
      u8(0) + u8(0xff) + "{\"op\":\"put\",\"seq\":\"1\",\"backend\":0,\"bucket\":\"b\",\"key\":\"k\",\"size\":1,\"etag\":\"\","
                         "\"ms\":0,\"headers\":[]}\n{\"op\":\"part\",\"id\":\"u\",\"n\":-1}\n{\"op\":\"mpu\",\"id\":5}\n");
  put("writeback_journal", "headers-not-pairs",
      u8(0) + u8(0xff) + "{\"op\":\"put\",\"seq\":1,\"backend\":0,\"bucket\":\"b\",\"key\":\"k\",\"size\":1,\"etag\":\"\","
                         "\"ms\":0,\"headers\":[[\"a\"]]}\n");
  put("writeback_journal", "not-json", u8(0) + u8(0xff) + "hello\n{\"op\":\"done\",\"seq\":1}\n");
  // Writer mode: u8 compaction threshold, u16 cut, then (op, arg, size) triples:
  // 0 PUT 1 DELETE 2 copy 3 begin upload 4 part 5 complete 6 abort 7 upload one.
  auto ops = [](std::initializer_list<unsigned> v) {
    std::string s;
    for (unsigned x : v) s += u8(x);
    return s;
  };
  const std::string script = ops({0, 0, 10, 0, 1, 20, 1, 1, 0, 3, 2, 0, 4, 2, 1, 4, 2, 2, 4, 2, 1, 0, 0, 5, 7, 0, 0, 5, 2, 0,
                                  3, 3, 0, 4, 3, 3, 6, 3, 0, 2, 0, 0, 7, 0, 1, 7, 0, 0, 0, 4, 9});
  put("writeback_journal", "writer", u8(1) + u8(200) + u16(0) + script);
  put("writeback_journal", "writer-cut", u8(1) + u8(200) + u16(333) + script);
  put("writeback_journal", "writer-compacting", u8(1) + u8(0) + u16(1000) + script + script);
}

// ---- object_meta: u8 mode, then a value (mode 0) or a disk entry (mode 1, 3).
void metaSeeds() {
  ObjectMeta m;
  m.size = 123456789;
  m.etag = "\"9b2cf535f27731c974343645a3985328\"";
  m.headers = {{"content-type", "image/jpeg"}, {"x-amz-meta-owner", "fuzz"}, {"cache-control", ""}};
  m.validatedAtMs = 1714564800000;
  const std::string value = serializeMeta(m);
  put("object_meta", "meta", u8(0) + value);
  put("object_meta", "meta-empty", u8(0) + serializeMeta(ObjectMeta{}));
  put("object_meta", "meta-truncated", u8(0) + value.substr(0, value.size() - 3));
  put("object_meta", "meta-trailing", u8(0) + value + "x");
  std::string many = value.substr(0, 4 + 8 + 8) + u32(0) + u32(1025);
  put("object_meta", "meta-too-many-headers", u8(0) + many);
  const std::string key = encodeKey({"default", "bucket", "some/key", "", kMetaIndex});
  Chunk c(key, value.size());
  std::memcpy(c.value(), value.data(), value.size());
  c.seal(42);
  const std::string entry(c.entryData(), c.entrySize());
  put("object_meta", "entry", u8(1) + entry);
  put("object_meta", "entry-fixed-key", u8(3) + entry);
  put("object_meta", "entry-other-key", u8(1) + [&] {
    Chunk o(encodeKey({"default", "bucket", "other", "\"etag\"", 3}), 5);
    std::memcpy(o.value(), "hello", 5);
    o.seal();
    return std::string(o.entryData(), o.entrySize());
  }());
  std::string torn = entry;
  torn[100] ^= 1;
  put("object_meta", "entry-corrupt", u8(1) + torn);
  put("object_meta", "entry-short", u8(1) + entry.substr(0, 40));
}

}  // namespace

// ---- object_plan: u8 flags, u64 size, u64 part offset, u64 part length, u8 parts count, then lines:
// Range, If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since, partNumber,
// response-content-type, ETag, Last-Modified.
void planSeeds() {
  struct P {
    const char* name;
    unsigned flags;
    std::uint64_t size, partOffset, partLength;
    unsigned parts;
    const char* lines;
  };
  const std::vector<P> ps = {
      {"whole", 1, 1000, 0, 0, 0, "\n\n\n\n\n\n\n\"e1\"\nFri, 24 May 2013 00:00:00 GMT"},
      {"range", 1, 1000, 0, 0, 0, "bytes=10-99\n\n\n\n\n\n\n\"e1\"\nFri, 24 May 2013 00:00:00 GMT"},
      {"past-end", 1, 10, 0, 0, 0, "bytes=20-\n\n\n\n\n\n\n\"e1\"\n"},
      {"if-match-fails", 1, 10, 0, 0, 0, "\n\"other\"\n\n\n\n\n\n\"e1\"\n"},
      {"not-modified", 9, 10, 0, 0, 0, "\n\n\"e1\"\n\n\n\n\n\"e1\"\n"},
      {"dates", 1, 10, 0, 0, 0,
       "\n\n\nFri, 24 May 2013 00:00:00 GMT\nThu, 23 May 2013 00:00:00 GMT\n\n\n\"e1\"\nFri, 24 May 2013 00:00:00 GMT"},
      {"part-located", 7, 1000, 100, 200, 3, "\n\n\n\n\n2\n\n\"e1-3\"\n"},
      {"part-past-count", 5, 1000, 0, 0, 3, "\n\n\n\n\n9\n\n\"e1-3\"\n"},
      {"part-and-range", 1, 1000, 0, 0, 0, "bytes=0-1\n\n\n\n\n1\n\n\"e1\"\n"},
      {"override", 1, 10, 0, 0, 0, "\n\n\n\n\n\ntext/plain\n\"e1\"\n"},
      {"override-anonymous", 17, 10, 0, 0, 0, "\n\n\n\n\n\ntext/plain\n\"e1\"\n"},
      {"empty-object", 1, 0, 0, 0, 0, "bytes=0-0\n\n\n\n\n\n\n\"e1\"\n"},
  };
  for (const auto& p : ps)
    put("object_plan", p.name, u8(p.flags) + u64(p.size) + u64(p.partOffset) + u64(p.partLength) + u8(p.parts) + p.lines);
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s tests/fuzz/corpus\n", argv[0]);
    return 2;
  }
  spdlog::set_level(spdlog::level::off);
  root = argv[1];
  rangeSeeds();
  httpSeeds();
  sigv4Seeds();
  chunkedSeeds();
  xmlSeeds();
  diskJournalSeeds();
  writebackSeeds();
  metaSeeds();
  planSeeds();
  return 0;
}

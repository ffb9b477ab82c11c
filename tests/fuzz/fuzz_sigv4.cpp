// Fuzz target: client request authentication (src/s3api/auth.h verifyRequest, SigV4 and SigV2, header
// and presigned forms) on a request as the proxy sees it: the request head parsed by Beast, its target
// routed (s3api::route, with the absolute-form rule of ProxyHandler::handle), headers lower-cased.
// A KeyTable holds one key. When the input asks, the target signs the fuzzed request correctly first
// (the production signer granary::sigv4::RequestSigner for SigV4, sigv2StringToSign for SigV2), so the
// code past the signature check runs too; the verified auth then seeds an aws-chunked decoder over a
// body signed the way the client signed its request.
//
// Input: u8 flags, u8 payload choice, u16 clock skew, u16 expiry, then the request head
// ("GET /bucket/key?x=1 HTTP/1.1\r\nHost: ...\r\n...\r\n\r\n"; a missing blank line is added).
//   flags & 3: 0 SigV4 header, 1 SigV4 presigned, 2 SigV2 header, 3 SigV2 presigned;
//   flags & 4: sign correctly; 8: virtual-hosted domain; 16: anonymous allowed; 32: regions restricted;
//   64: sign the path as SigV4 canonicalizes it (else as sent); 128: a second key in the table.
// Properties: a request the target signed never fails as SignatureDoesNotMatch; a verified SigV4
// request's scope, date and seed signature verify the chunk signatures its client computes; %-decoding
// inverts %-encoding.

#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>

#include "common/crypto.h"
#include "common/sigv4.h"
#include "common/timeutil.h"
#include "common/uri.h"
#include "fuzz_common.h"
#include "s3api/auth.h"
#include "s3api/auth_v2.h"
#include "s3api/aws_chunked.h"
#include "s3api/routing.h"
#include "s3api/verified_body.h"

using namespace granary;
using namespace granary::s3api;
using granary::fuzz::Input;
namespace bhttp = boost::beast::http;

namespace {

constexpr std::string_view kAk = "AKIDFUZZEXAMPLE";
constexpr std::string_view kSk = "fuzz/secret+key/EXAMPLE";
constexpr std::string_view kDomain = "s3.example.com";
const auto kNow = std::chrono::system_clock::time_point(std::chrono::seconds(1714564800));  // 2024-05-01T12:00:00Z

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

void drop(sigv4::HeaderList& h, std::string_view name) {
  h.erase(std::remove_if(h.begin(), h.end(), [&](const auto& kv) { return kv.first == name; }), h.end());
}

std::string encodeQuery(const QueryParams& q) {
  std::string out;
  for (const auto& [k, v] : q) {
    if (!out.empty()) out += '&';
    out += uriEncode(k, true);
    out += '=';
    out += uriEncode(v, true);
  }
  return out;
}

/// Re-routes the request with a new query (presigned forms add theirs to the target).
std::optional<RoutedRequest> withQuery(const RoutedRequest& r, const QueryParams& q, std::string_view host) {
  return route(r.rawPath + (q.empty() ? "" : "?" + encodeQuery(q)), host, r.virtualHosted ? kDomain : "");
}

std::string hex(std::uint64_t v) {
  static constexpr char d[] = "0123456789abcdef";
  std::string out;
  do out.insert(out.begin(), d[v & 15]), v >>= 4;
  while (v);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 32 * 1024) return 0;
  Input in(data, size);
  const std::uint8_t flags = in.u8();
  const std::uint8_t payloadSel = in.u8();
  const auto skew = std::chrono::seconds(static_cast<std::int16_t>(in.u16()));
  const std::uint16_t expiry = in.u16();
  std::string head(in.rest());
  if (head.find("\r\n\r\n") == std::string::npos) head += "\r\n\r\n";

  // The request head, parsed as the server parses it.
  bhttp::request_parser<bhttp::empty_body> parser;
  parser.header_limit(64 * 1024);
  parser.eager(false);
  boost::system::error_code ec;
  parser.put(boost::asio::buffer(head), ec);
  if (ec || !parser.is_header_done()) return 0;
  const auto& req = parser.get();

  // As ProxyHandler::handle: lower-cased headers, absolute-form target, routing.
  sigv4::HeaderList headers;
  for (const auto& f : req) headers.emplace_back(lower(f.name_string()), std::string(f.value()));
  std::string_view target = req.target();
  std::string host(req[bhttp::field::host]);
  bool wellFormed = true;
  std::string originForm;
  if (const auto absolute = splitAbsoluteForm(target, wellFormed)) {
    host = std::string(absolute->authority);
    drop(headers, "host");
    headers.emplace_back("host", host);
    originForm = absolute->originForm;
    target = originForm;
  }
  if (!wellFormed) return 0;
  const std::string_view domain = (flags & 8) ? kDomain : "";
  auto routed = route(target, host, domain);
  if (!routed) return 0;

  // %-decoding inverts %-encoding (paths and query parts).
  FUZZ_CHECK(uriDecode(uriEncode(routed->decodedPath, false)) == routed->decodedPath);
  for (const auto& [k, v] : routed->query) {
    FUZZ_CHECK(uriDecode(uriEncode(k, true)) == k);
    FUZZ_CHECK(uriDecode(uriEncode(v, true)) == v);
  }
  (void)canonicalQueryString(routed->query);

  KeyTable keys;
  keys.add(std::string(kAk), std::string(kSk));
  if (flags & 128) keys.add("AKIDOTHER", "other-secret");
  AuthOptions opts;
  opts.allowAnonymous = flags & 16;
  if (flags & 32) opts.regions = {"us-east-1", "eu-west-1"};

  const int form = flags & 3;
  const bool sign = flags & 4;
  const auto signedAt = kNow + skew;
  static constexpr std::string_view kRegions[] = {"us-east-1", "eu-west-1", "ap-south-2", "us-east-1"};
  const std::string region(kRegions[(payloadSel >> 4) & 3]);
  std::string payloadHash;  // SigV4 header: what the client declares in x-amz-content-sha256
  switch (payloadSel & 7) {
    case 0: payloadHash = sigv4::kUnsignedPayload; break;
    case 1: payloadHash = sigv4::kStreamingPayload; break;
    case 2: payloadHash = sigv4::kStreamingPayloadTrailer; break;
    case 3: payloadHash = sigv4::kStreamingUnsignedTrailer; break;
    case 4: payloadHash = kEmptySha256Hex; break;
    case 5: payloadHash = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"; break;
    default: payloadHash = "not-a-hash"; break;
  }
  const std::string signPath = (flags & 64) ? sigv4::canonicalUri(routed->decodedPath) : routed->rawPath;
  std::string seedSignature;
  bool expectSignatureOk = false;
  const bool oneHost = std::count_if(headers.begin(), headers.end(), [](const auto& kv) { return kv.first == "host"; }) == 1;

  if (sign && form == 0) {
    drop(headers, "authorization");
    drop(headers, "x-amz-date");
    drop(headers, "x-amz-content-sha256");
    drop(headers, "x-amz-security-token");
    sigv4::RequestSigner signer({std::string(kAk), std::string(kSk), ""}, region);
    signer.sign(req.method_string(), signPath, routed->query, headers, payloadHash, signedAt);
    const std::string& auth = headers.back().second;
    seedSignature = auth.substr(auth.rfind('=') + 1);
    expectSignatureOk = true;
  } else if (sign && form == 1) {
    drop(headers, "authorization");
    if (!oneHost) return 0;
    QueryParams q;
    for (const auto& kv : routed->query)
      if (!isPresignParam(kv.first)) q.push_back(kv);
    sigv4::RequestSigner signer({std::string(kAk), std::string(kSk), ""}, region);
    q = signer.presign(req.method_string(), signPath, q, *findHeader(headers, "host"),
                       std::chrono::seconds(1 + expiry % 700000), signedAt);
    routed = withQuery(*routed, q, host);
    if (!routed) return 0;
    expectSignatureOk = true;
  } else if (sign && (form == 2 || form == 3)) {
    drop(headers, "authorization");
    QueryParams q;
    for (const auto& kv : routed->query)
      if (!isPresignParam(kv.first)) q.push_back(kv);
    std::string dateOrExpires;
    if (form == 2) {
      if (!findHeader(headers, "x-amz-date")) {
        drop(headers, "date");
        headers.emplace_back("date", formatHttpDate(signedAt));
        dateOrExpires = formatHttpDate(signedAt);
      }
      routed = withQuery(*routed, q, host);
    } else {
      const auto expires = std::chrono::duration_cast<std::chrono::seconds>(signedAt.time_since_epoch()).count() +
                           1 + expiry % 700000;
      dateOrExpires = std::to_string(expires);
      q.emplace_back("AWSAccessKeyId", std::string(kAk));
      q.emplace_back("Expires", dateOrExpires);
      routed = withQuery(*routed, q, host);
    }
    if (!routed) return 0;
    AuthInput pre;
    pre.method = req.method_string();
    pre.rawPath = routed->rawPath;
    pre.decodedPath = routed->decodedPath;
    pre.query = &routed->query;
    pre.headers = &headers;
    pre.bucket = routed->bucket;
    pre.virtualHosted = routed->virtualHosted;
    const std::string sig = hmacSha1Base64(kSk, sigv2StringToSign(pre, dateOrExpires));
    if (form == 2) {
      headers.emplace_back("authorization", "AWS " + std::string(kAk) + ":" + sig);
    } else {
      q.emplace_back("Signature", sig);
      routed = withQuery(*routed, q, host);
      if (!routed) return 0;
    }
    expectSignatureOk = true;
  }

  AuthInput ai;
  ai.method = req.method_string();
  ai.rawPath = routed->rawPath;
  ai.decodedPath = routed->decodedPath;
  ai.query = &routed->query;
  ai.headers = &headers;
  ai.now = kNow;
  ai.bucket = routed->bucket;
  ai.virtualHosted = routed->virtualHosted;
  const AuthResult r = verifyRequest(ai, keys, opts);
  const AuthResult again = verifyRequest(ai, keys, opts);
  FUZZ_CHECK(r.failure.has_value() == again.failure.has_value(), "verification is deterministic");

  if (expectSignatureOk && r.failure) {
    FUZZ_CHECK(r.failure->error != S3Error::SignatureDoesNotMatch,
               "a correctly signed request was refused: " + r.failure->message + "\n" +
                   [&] {
                     std::string s;
                     for (const auto& [k, v] : r.failure->extra) s += k + ": " + v + "\n";
                     return s;
                   }());
  }
  FUZZ_TRACE("sigv4: form %d signed %d: %s %s\n", form, int(sign),
             r.failure ? std::string(errorInfo(r.failure->error).code).c_str() : "verified",
             r.failure ? r.failure->message.c_str() : "");
  if (r.failure) return 0;

  const VerifiedAuth& auth = r.auth;
  if (!auth.anonymous) FUZZ_CHECK(keys.secretFor(auth.accessKey) != nullptr);
  if (auth.presigned) FUZZ_CHECK(auth.payload == PayloadMode::Unsigned);
  if (auth.payload == PayloadMode::Sha256) FUZZ_CHECK(auth.payloadHash.size() == 64);

  // What ProxyHandler::planBody does next.
  const bool trailerAllowed =
      auth.payload == PayloadMode::StreamingSignedTrailer || auth.payload == PayloadMode::StreamingUnsignedTrailer;
  (void)bodyChecksFor(headers, true, trailerAllowed);

  // The client's aws-chunked body, signed from its own date, scope and seed signature, verifies with
  // what verifyRequest returned.
  if (sign && form == 0 &&
      (auth.payload == PayloadMode::StreamingSigned || auth.payload == PayloadMode::StreamingSignedTrailer)) {
    const std::string amzDate = formatAmzDate(signedAt);
    const std::string scope = sigv4::credentialScope(amzDate.substr(0, 8), region, "s3");
    const Sha256Digest key = sigv4::signingKey(kSk, amzDate.substr(0, 8), region, "s3");
    FUZZ_CHECK(auth.seedSignature == seedSignature && auth.scope == scope && auth.amzDate == amzDate,
               "verified auth differs from what the client signed");
    std::string prev = seedSignature, wire;
    for (std::string_view chunk : {std::string_view("hello, "), std::string_view("world"), std::string_view()}) {
      const std::string sig = sigv4::signatureHex(
          key, sigv4::chunkStringToSign(amzDate, scope, prev, chunk.empty() ? kEmptySha256Hex : sha256Hex(chunk)));
      prev = sig;
      wire += hex(chunk.size()) + ";chunk-signature=" + sig + "\r\n" + std::string(chunk) + (chunk.empty() ? "" : "\r\n");
    }
    if (auth.payload == PayloadMode::StreamingSignedTrailer) {
      const std::string canonical = "x-amz-checksum-crc32:DUoRhQ==\n";
      const std::string sig =
          sigv4::signatureHex(key, sigv4::trailerStringToSign(amzDate, scope, prev, sha256Hex(canonical)));
      wire += "x-amz-checksum-crc32:DUoRhQ==\r\nx-amz-trailer-signature:" + sig + "\r\n";
    }
    wire += "\r\n";
    AwsChunkedDecoder::Options o;
    o.signedChunks = true;
    o.trailer = auth.payload == PayloadMode::StreamingSignedTrailer;
    o.signedTrailer = o.trailer;
    o.signingKey = auth.signingKey;
    o.scope = auth.scope;
    o.amzDate = auth.amzDate;
    o.seedSignature = auth.seedSignature;
    AwsChunkedDecoder d(o);
    std::string out(64, '\0');
    std::size_t pos = 0;
    std::string payload;
    while (pos < wire.size() && d.state() == AwsChunkedDecoder::State::Ok) {
      const auto step = d.decode(wire.data() + pos, wire.size() - pos, out.data(), out.size());
      pos += step.consumed;
      payload.append(out.data(), step.produced);
    }
    FUZZ_CHECK(d.state() == AwsChunkedDecoder::State::Done && payload == "hello, world",
               "chunks signed as the client signs them do not verify: " + d.error());
  }
  return 0;
}

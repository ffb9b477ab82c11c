// The relay path every operation handler shares: the request for the backend, the client's body attached
// (checked whole first when small), sent, and the answer relayed (range refetch and trimming, 416 sizing,
// partNumber, renamed buckets' XML).

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/beast/core/string.hpp>
#include <pugixml.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <sstream>

#include "common/log_escape.h"
#include "s3api/exchange.h"
#include "s3api/range.h"
#include "s3api/request_checks.h"
#include "s3api/request_xml.h"
#include "s3api/verified_body.h"

namespace granary::s3api {
namespace {

namespace bhttp = boost::beast::http;
using namespace boost::asio::experimental::awaitable_operators;
using boost::system::error_code;

bool isHopByHop(std::string_view n) {
  return n == "connection" || n == "keep-alive" || n == "proxy-connection" || n == "proxy-authenticate" ||
         n == "proxy-authorization" || n == "te" || n == "trailer" || n == "transfer-encoding" || n == "upgrade";
}

/// Client headers that do not travel upstream: hop-by-hop ones, and those Granary replaces when it
/// re-signs or decodes the body.
bool dropTowardBackend(std::string_view n, bool decodingChunks) {
  if (isHopByHop(n)) return true;
  if (n == "host" || n == "authorization" || n == "expect" || n == "content-length" || n == "date" ||
      n == "x-amz-date" || n == "x-amz-content-sha256" || n == "x-amz-security-token")
    return true;
  return decodingChunks && (n == "x-amz-decoded-content-length" || n == "x-amz-trailer");
}

/// "aws-chunked, gzip" -> "gzip"; "aws-chunked" -> "".
std::string stripAwsChunked(std::string_view v) {
  std::string out;
  while (!v.empty()) {
    auto comma = v.find(',');
    std::string_view tok = v.substr(0, comma);
    while (!tok.empty() && tok.front() == ' ') tok.remove_prefix(1);
    while (!tok.empty() && tok.back() == ' ') tok.remove_suffix(1);
    if (!tok.empty() && !boost::beast::iequals(tok, "aws-chunked")) {
      if (!out.empty()) out += ",";
      out += tok;
    }
    if (comma == std::string_view::npos) break;
    v.remove_prefix(comma + 1);
  }
  return out;
}


}  // namespace

upstream::UpstreamRequest ProxyHandler::requestFor(const Exchange& x, const Call& c) const {
  const VerifiedAuth& auth = c.auth;
  const bool streaming = isStreaming(auth.payload);
  upstream::UpstreamRequest ur;
  ur.method = x.req.method();
  ur.bucket = x.backendBucket;
  ur.key = x.routed.key;
  for (const auto& kv : x.routed.query)
    if (!(auth.presigned && isPresignParam(kv.first))) ur.query.push_back(kv);
  for (const auto& [name, value] : x.headers) {
    if (dropTowardBackend(name, streaming)) continue;
    if (name == "range") {
      ByteRange r;
      const RangeParse parsed = parseRange(value, r);
      if (parsed == RangeParse::Ignore) continue;  // S3 ignores a malformed Range
      if (parsed == RangeParse::Ok) {  // as Granary read it, in numbers every backend parses
        ur.headers.emplace_back(name, canonicalRange(r));
        continue;
      }
    }
    if (streaming && name == "content-encoding") {
      std::string rest = stripAwsChunked(value);
      if (!rest.empty()) ur.headers.emplace_back(name, std::move(rest));
      continue;
    }
    ur.headers.emplace_back(name, value);
  }
  if (c.copySource) {
    // The same backend copies server-side; it knows the source bucket by its own name.
    const std::string_view there = opts_.buckets->backendBucket(c.copySource->bucket);
    if (there != c.copySource->bucket)
      for (auto& [name, value] : ur.headers)
        if (name == "x-amz-copy-source") value = copySourceHeader(*c.copySource, there);
  }
  return ur;
}

http::Awaitable<bool> ProxyHandler::attachBody(Exchange& x, Call& c, Outbound& o) {
  upstream::UpstreamRequest& ur = o.ur;
  const std::optional<std::uint64_t> payloadLength = c.body.payloadLength;
  o.fillOnWrite = fillsOnWrite(x, payloadLength);
  if (!c.body.hasBody) {
    ur.contentLength = 0;
    ur.payloadHash = std::string(kEmptySha256Hex);
    co_return true;
  }
  const bool trailerChecksum = c.body.checks.checksum && !c.body.checks.expected;
  o.verified.emplace(x.body, c.auth, payloadLength, std::move(c.body.checks));
  ur.payloadHash = std::string(sigv4::kUnsignedPayload);  // (no ?: of temporaries: GCC 12 coroutines)
  if (c.auth.payload == PayloadMode::Sha256) ur.payloadHash = c.auth.payloadHash;
  // An XML body (DeleteObjects, CompleteMultipartUpload, tagging...) is always read whole, however it
  // is framed: Granary must see all of it to check it and to invalidate exactly what it changes.
  const bool xmlBody = isXmlBodyOp(x.op);
  const bool buffered = xmlBody || (payloadLength && *payloadLength <= opts_.verifyBeforeSend);
  // A streamed body's trailer arrives after the request went out: its checksum is verified here but
  // cannot be passed on, so the backend must not be told one is coming.
  if (!buffered && trailerChecksum) dropHeader(ur.headers, "x-amz-sdk-checksum-algorithm");
  if (!buffered) {
    if (o.fillOnWrite) {
      o.written.reserve(static_cast<std::size_t>(*payloadLength));
      o.capture.emplace(*o.verified, o.written, static_cast<std::size_t>(*payloadLength));
      ur.source = &*o.capture;
    } else {
      ur.source = &*o.verified;
    }
    ur.contentLength = payloadLength;
    co_return true;
  }
  // Small body: verify it whole first, so a refused body never reaches the backend at all.
  const ReadWhole got = co_await readWhole(*o.verified, payloadLength, xmlBody ? kMaxRequestXml : opts_.verifyBeforeSend,
                                           ur.bufferedBody);
  x.bytesIn = o.verified->clientBytes();
  if (got != ReadWhole::Ok) {
    x.out.closeAfterResponse();
    S3Failure failure{S3Error::MaxMessageLengthExceeded, {}, {}};  // (no ?: of temporaries: GCC 12 coroutines)
    if (got != ReadWhole::TooLong) failure = o.verified->failure().value_or(S3Failure{S3Error::IncompleteBody, {}, {}});
    co_await sendError(x, failure);
    co_return false;
  }
  ur.contentLength = ur.bufferedBody.size();
  if (auto bad = checkRequestXml(x.op, ur.bufferedBody)) {
    co_await sendError(x, *bad);
    co_return false;
  }
  if (o.fillOnWrite) o.written = ur.bufferedBody;
  // The trailer's checksum (the one x-amz-trailer named, verified) becomes a header: the backend
  // stores it with the object. Other trailer fields were checked by nobody: they stay here.
  if (const auto trailer = o.verified->verifiedTrailerChecksum()) ur.headers.push_back(*trailer);
  co_return true;
}

http::Awaitable<void> ProxyHandler::relayAsIs(Exchange& x, Call& c, AnswerHook hook) {
  Outbound o{requestFor(x, c)};
  if (!co_await attachBody(x, c, o)) co_return;
  co_await relayUpstream(x, c, o, hook);
}

http::Awaitable<void> ProxyHandler::relayUpstream(Exchange& x, Call& c, Outbound& o, AnswerHook hook) {
  // A write makes what the cache holds for its key(s) unreachable: before it is sent (so no read starts
  // from the old state meanwhile) and again once the backend answered (reads that raced it).
  invalidateForWrite(x, o.ur);
  auto resp = co_await x.upstream->send(o.ur);
  invalidateForWrite(x, o.ur);
  if (peers_ && resp && (*resp)->header().result_int() < 300) co_await invalidateOnOwners(x, o.ur);
  if (o.verified) x.bytesIn = o.verified->clientBytes();
  if (o.verified && o.verified->failure()) {
    x.out.closeAfterResponse();  // the rest of the body may still be in flight
    co_return co_await sendError(x, *o.verified->failure());
  }
  if (!resp) {
    if (o.verified && o.verified->started()) x.out.closeAfterResponse();
    upstream::UpstreamResponse* none = nullptr;
    if (hook && co_await (this->*hook)(x, c, o, none)) co_return;
    spdlog::warn("{} {} /{}/{}: backend failed: {}", x.requestId, opName(x.op), logSafe(x.routed.bucket),
                 logSafe(x.routed.key), resp.error().message());
    const S3Failure failure = upstreamFailure(resp.error());
    co_return co_await sendError(x, failure);
  }
  // A backend that answered a different range than asked gets one more, absolute, request: nothing
  // has gone to the client yet.
  if (const RangeFix fix = rangeFixFor(x, **resp); fix.kind == RangeFix::Kind::Refetch && !c.body.hasBody) {
    for (auto& [name, value] : o.ur.headers)
      if (name == "range")
        value = "bytes=" + std::to_string(fix.first) + "-" + std::to_string(fix.first + fix.length - 1);
    resp = UpstreamResponsePtr{};
    resp = co_await x.upstream->send(o.ur);
    if (!resp) {
      const S3Failure failure = upstreamFailure(resp.error());
      co_return co_await sendError(x, failure);
    }
  }
  const unsigned answered = (*resp)->header().result_int();
  if (answered == 416 && x.op == S3Op::GetObject && findHeader(x.headers, "range") &&
      (*resp)->header()[bhttp::field::content_range].empty()) {
    resp = UpstreamResponsePtr{};
    co_return co_await sendUnsatisfiable(x);
  }
  if ((x.op == S3Op::GetObject || x.op == S3Op::HeadObject) && answered == 200) {
    // A backend that ignores partNumber (s3rver) answers any number with the whole object (one that
    // honours it answers 206): past the part count the object shows, S3's answer is InvalidPartNumber.
    if (const auto* part = findParam(x.routed.query, "partNumber")) {
      const auto& rh = (*resp)->header();
      const auto parts = parseLength(rh["x-amz-mp-parts-count"]).value_or(partCountOf(rh[bhttp::field::etag]));
      if (parseLength(*part).value_or(0) > parts) {
        const S3Failure bad{S3Error::InvalidPartNumber, {},
                            {{"PartNumberRequested", *part}, {"ActualPartCount", std::to_string(parts)}}};
        co_return co_await sendError(x, bad);
      }
    }
  }
  upstream::UpstreamResponse* answer = &**resp;
  if (hook && co_await (this->*hook)(x, c, o, answer)) co_return;
  co_await relayAnswer(x, **resp);
}

http::Awaitable<void> ProxyHandler::sendUnsatisfiable(Exchange& x) {
  // S3 names the object's size in a 416 (Content-Range: bytes */size); a backend that does not (s3rver)
  // is asked for it, so clients can tell an unsatisfiable range from a missing object.
  upstream::UpstreamRequest head;
  head.method = bhttp::verb::head;
  head.bucket = x.backendBucket;
  head.key = x.routed.key;
  if (const auto* v = findParam(x.routed.query, "versionId")) head.query.emplace_back("versionId", *v);
  auto sized = co_await x.upstream->send(head);
  // (Every string below is a named object: GCC 12 mishandles temporaries of ?: inside coroutines.)
  std::optional<std::uint64_t> size;
  if (sized && (*sized)->header().result_int() == 200) size = (*sized)->contentLength();
  std::string asked, actual, contentRange;
  if (const auto* rh = findHeader(x.headers, "range"); rh && isSafeHeaderValue(*rh)) asked = *rh;
  if (size) {
    actual = std::to_string(*size);
    contentRange = "bytes */" + actual;
  }
  const S3Failure bad{S3Error::InvalidRange, {}, {{"RangeRequested", asked}, {"ActualObjectSize", actual}}};
  co_await sendError(x, bad, contentRange);
}

http::Awaitable<void> ProxyHandler::relayAnswer(Exchange& x, upstream::UpstreamResponse& resp) {
  const unsigned answered = resp.header().result_int();
  const OpInfo& op = opInfo(x.op);
  const bool renamed = x.backendBucket != x.routed.bucket;
  if (answered == 200 && ((renamed && op.namesBucketInXml) || op.expectedXmlRoot || x.filterListing))
    co_return co_await relayRenamed(x, resp);
  if (answered >= 300 && answered != 304 && renamed && x.req.method() != bhttp::verb::head)
    co_return co_await relayErrorRenamed(x, resp);
  co_await relay(x, resp);
}

RangeFix ProxyHandler::rangeFixFor(const Exchange& x, const upstream::UpstreamResponse& resp) const {
  if (x.req.method() != bhttp::verb::get) return {};
  // x.headers, never x.req: HTTP chunked trailers are merged into x.req once the body has been read, and
  // they were neither signed nor checked.
  const auto* range = findHeader(x.headers, "range");
  if (!range) return {};
  ByteRange wanted;
  if (parseRange(*range, wanted) != RangeParse::Ok) return {};
  const auto& h = resp.header();
  return planRangeFix(wanted, h.result_int(), h[bhttp::field::content_range], resp.contentLength());
}

http::ResponseHeader ProxyHandler::responseHeaderFor(Exchange& x, const upstream::UpstreamResponse& resp,
                                                     const RangeFix& fix) const {
  const auto& in = resp.header();
  http::ResponseHeader h;
  h.result(in.result_int());
  for (const auto& f : in) {
    if (isHopByHop(lower(f.name_string()))) continue;
    h.insert(f.name_string(), f.value());
  }
  if (fix.kind == RangeFix::Kind::Trim) {
    // The backend sent more than was asked for: forward exactly the requested range.
    h.result(bhttp::status::partial_content);
    h.set(bhttp::field::content_range, "bytes " + std::to_string(fix.first) + "-" +
                                           std::to_string(fix.first + fix.length - 1) + "/" + std::to_string(fix.total));
    h.set(bhttp::field::content_length, std::to_string(fix.length));
  }
  if (opts_.cacheStatusHeader && (x.req.method() == bhttp::verb::get || x.req.method() == bhttp::verb::head))
    h.set("x-granary-cache", x.cacheStatus);
  // The backend's request id is the client's (it names the request to the backend's operators), if it
  // is a plain token; anything else is replaced by Granary's own (it is logged, and echoed in errors).
  const auto backendId = h["x-amz-request-id"];
  if (!backendId.empty() && backendId.size() <= 128 &&
      std::all_of(backendId.begin(), backendId.end(), [](char c) { return c > 0x20 && c < 0x7f; }))
    x.requestId = std::string(backendId);
  else
    h.set("x-amz-request-id", x.requestId);
  const unsigned status = h.result_int();
  const bool bodyless = x.req.method() == bhttp::verb::head || status == 204 || status == 304 || status < 200;
  if (!bodyless && fix.kind != RangeFix::Kind::Trim && !resp.contentLength())
    h.set(bhttp::field::transfer_encoding, "chunked");
  return h;
}

http::Awaitable<void> ProxyHandler::relay(Exchange& x, upstream::UpstreamResponse& resp) {
  RangeFix fix = rangeFixFor(x, resp);
  if (fix.kind == RangeFix::Kind::Refetch) {
    // Even the absolute request came back without the bytes: refuse rather than serve wrong ones.
    const S3Failure bad{S3Error::InternalError, "The backend did not return the requested range.", {}};
    co_return co_await sendError(x, bad);
  }
  if (fix.kind == RangeFix::Kind::Unsatisfiable) {
    std::string asked;  // (named objects only: GCC 12 coroutines)
    if (const auto* rh = findHeader(x.headers, "range"); rh && isSafeHeaderValue(*rh)) asked = *rh;
    const std::string contentRange = "bytes */" + std::to_string(fix.total);
    const S3Failure bad{S3Error::InvalidRange, {}, {{"RangeRequested", asked}, {"ActualObjectSize", std::to_string(fix.total)}}};
    co_return co_await sendError(x, bad, contentRange);
  }
  http::ResponseHeader h = responseHeaderFor(x, resp, fix);
  const unsigned status = h.result_int();
  const bool bodyless = x.req.method() == bhttp::verb::head || status == 204 || status == 304 || status < 200;
  x.status = status;

  if (co_await x.out.writeHeader(std::move(h))) co_return;
  if (!bodyless) {
    std::uint64_t skip = fix.kind == RangeFix::Kind::Trim ? fix.skip : 0;
    std::uint64_t left = fix.kind == RangeFix::Kind::Trim ? fix.length : UINT64_MAX;
    // Two buffers: the client is sent one while the next is read from the backend, so the backend's
    // socket keeps draining (a ping-pong relay lets its window fill and throttles the backend).
    BufferPool::Lease a(buffers_), b(buffers_);
    char* cur = a.data();
    char* next = b.data();
    auto n = co_await resp.read(boost::asio::buffer(cur, a.size()));
    for (;;) {
      if (!n) {
        // The backend failed mid-body. Bytes already went out, so no retry and no error document:
        // cutting the connection is the only honest signal (the client sees a short body).
        spdlog::warn("{} {} /{}/{}: backend body failed after {} bytes: {}", x.requestId, opName(x.op), logSafe(x.routed.bucket),
                     logSafe(x.routed.key), x.bytesOut, n.error().message());
        x.errorCode = "BackendBodyFailed";
        co_return;
      }
      if (*n == 0) break;
      const std::size_t dropped = static_cast<std::size_t>(std::min<std::uint64_t>(skip, *n));
      skip -= dropped;
      const char* p = cur + dropped;
      const std::size_t len = static_cast<std::size_t>(std::min<std::uint64_t>(*n - dropped, left));
      left -= len;
      error_code wec;
      if (left == 0) {  // the last bytes wanted: nothing more to read
        wec = co_await x.out.writeBody(boost::asio::buffer(p, len));
      } else {
        auto [w, r] = co_await (x.out.writeBody(boost::asio::buffer(p, len)) &&
                                resp.read(boost::asio::buffer(next, b.size())));
        wec = w;
        n = std::move(r);
        std::swap(cur, next);
      }
      if (wec) {
        x.errorCode = "ClientGone";
        co_return;
      }
      x.bytesOut += len;
      if (left == 0) break;
    }
    if (fix.kind == RangeFix::Kind::Trim && left > 0) {
      x.errorCode = "BackendBodyShort";
      co_return;  // the backend body ended early: cut the connection rather than finish short
    }
  }
  co_await x.out.finish();
}

http::Awaitable<ProxyHandler::ReadWhole> ProxyHandler::readWhole(upstream::BodySource& body,
                                                                 std::optional<std::uint64_t> expected,
                                                                 std::size_t limit, std::string& out) {
  // The buffer grows as bytes arrive (a declared length is no promise: a client that declares 4 MiB and
  // sends nothing must not hold 4 MiB), never past the declared length or `limit` plus room to notice
  // a body longer than either.
  constexpr std::size_t kSpare = 64 * 1024;
  const std::size_t cap = (expected ? std::min<std::size_t>(static_cast<std::size_t>(*expected), limit) : limit) + kSpare;
  out.resize(std::min(cap, kSpare));
  std::size_t have = 0;
  for (;;) {
    if (out.size() - have < kSpare / 2) out.resize(std::min(cap, out.size() * 2));
    auto n = co_await body.read(boost::asio::buffer(out.data() + have, out.size() - have));
    if (!n) co_return ReadWhole::Failed;
    if (*n == 0) break;
    have += *n;
    if (expected && have > *expected) co_return ReadWhole::Failed;
    if (have > limit) co_return ReadWhole::TooLong;
  }
  out.resize(have);
  co_return !expected || have == *expected ? ReadWhole::Ok : ReadWhole::Failed;
}

http::Awaitable<void> ProxyHandler::relayRenamed(Exchange& x, upstream::UpstreamResponse& resp) {
  constexpr std::size_t kMaxXml = 16 << 20;
  const char* expected = opInfo(x.op).expectedXmlRoot;
  // An answer that is not what the operation returns means the backend does not implement it: a 501,
  // never a wrong answer passed on as if it were right.
  const S3Failure unsupported{S3Error::NotImplemented,
                              "The backend does not implement " + std::string(opName(x.op)) + ".", {}};
  if (resp.contentLength().value_or(0) > kMaxXml) {
    if (expected || x.filterListing) co_return co_await sendError(x, unsupported);
    co_return co_await relay(x, resp);  // passed on as it is
  }
  pugi::xml_document doc;
  if (!co_await readXml(resp, kMaxXml, doc)) {
    const S3Failure bad{S3Error::InternalError, "The backend's answer could not be read.", {}};
    co_return co_await sendError(x, expected ? unsupported : bad);
  }
  if (expected && std::string_view(doc.document_element().name()) != expected) {
    spdlog::warn("{} {} /{}/{}: the backend answered <{}>, not <{}>: answered NotImplemented", x.requestId, opName(x.op),
                 logSafe(x.routed.bucket), logSafe(x.routed.key), logSafe(doc.document_element().name()), expected);
    co_return co_await sendError(x, unsupported);
  }
  renameBucket(doc.document_element(), x.backendBucket, x.routed.bucket);
  if (x.op == S3Op::CreateMultipartUpload)
    if (const std::string id = doc.document_element().child_value("UploadId"); !id.empty()) opts_.multipart->created(id);
  sigv4::HeaderList extra;
  for (const auto& f : resp.header()) {
    const std::string name = lower(f.name_string());
    if (name.starts_with("x-amz-") && name != "x-amz-request-id") extra.emplace_back(name, std::string(f.value()));
  }
  co_await sendXml(x, doc, extra);
}

http::Awaitable<void> ProxyHandler::relayErrorRenamed(Exchange& x, upstream::UpstreamResponse& resp) {
  constexpr std::size_t kMaxError = 64 * 1024;
  if (resp.contentLength().value_or(0) > kMaxError) co_return co_await relay(x, resp);
  std::string body;
  if (!co_await readAll(resp, kMaxError, body)) {
    const S3Failure bad{S3Error::InternalError, "The backend's error answer could not be read.", {}};
    co_return co_await sendError(x, bad);
  }
  pugi::xml_document doc;
  if (doc.load_buffer(body.data(), body.size()) && std::string_view(doc.document_element().name()) == "Error") {
    auto root = doc.document_element();
    if (auto b = root.child("BucketName"); b && x.backendBucket == b.child_value()) b.text() = x.routed.bucket.c_str();
    x.errorCode = root.child_value("Code");
    std::ostringstream os;
    doc.save(os, "", pugi::format_raw);
    body = os.str();
  }
  http::ResponseHeader h;
  h.result(resp.header().result());
  for (const auto& f : resp.header()) {
    const std::string name = lower(f.name_string());
    if ((name.starts_with("x-amz-") && name != "x-amz-request-id") || name == "content-type" || name == "content-range")
      h.set(f.name_string(), f.value());
  }
  h.set("x-amz-request-id", x.requestId);
  h.set(bhttp::field::content_length, std::to_string(body.size()));
  x.status = h.result_int();
  if (co_await x.out.writeHeader(std::move(h))) co_return;
  if (co_await x.out.writeBody(boost::asio::buffer(body))) co_return;
  x.bytesOut = body.size();
  co_await x.out.finish();
}

}  // namespace granary::s3api

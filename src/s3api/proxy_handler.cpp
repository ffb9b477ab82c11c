#include "s3api/proxy_handler.h"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/beast/core/string.hpp>
#include <spdlog/spdlog.h>
#include <pugixml.hpp>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <sstream>

#include "common/log_escape.h"
#include "common/timeutil.h"
#include "s3api/exchange.h"
#include "s3api/operation.h"
#include "s3api/protocol_error.h"
#include "s3api/range.h"
#include "s3api/request_checks.h"
#include "s3api/request_stats.h"
#include "s3api/request_xml.h"
#include "s3api/routing.h"
#include "s3api/verified_body.h"
#include "upstream/errors.h"

namespace granary::s3api {
namespace {

namespace bhttp = boost::beast::http;
using namespace boost::asio::experimental::awaitable_operators;

std::string clfTimeNow() {
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%d/%b/%Y:%H:%M:%S +0000", &tm);
  return buf;
}
using boost::system::error_code;
using upstream::UpstreamResponsePtr;
constexpr std::size_t kMaxFreeBuffers = 32;

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

bool isStreaming(PayloadMode m) {
  return m == PayloadMode::StreamingSigned || m == PayloadMode::StreamingSignedTrailer ||
         m == PayloadMode::StreamingUnsignedTrailer;
}

}  // namespace

S3Failure upstreamFailure(const boost::system::error_code& ec) {
  using upstream::Error;
  if (ec == Error::ResponseTimeout || ec == Error::ConnectTimeout)
    return {S3Error::GatewayTimeout, "The backend did not answer in time: " + ec.message(), {}};
  if (ec == Error::PoolExhausted)
    return {S3Error::ServiceUnavailable, "All backend connections are busy; slow down.", {}};
  return {S3Error::ServiceUnavailable, "The backend could not be reached: " + ec.message(), {}};
}

void dropHeader(sigv4::HeaderList& headers, std::string_view name) {
  std::erase_if(headers, [&](const auto& h) { return h.first == name; });
}

http::Awaitable<bool> readAll(upstream::UpstreamResponse& resp, std::size_t limit, std::string& out) {
  char buf[16 * 1024];
  for (;;) {
    auto n = co_await resp.read(boost::asio::buffer(buf));
    if (!n) co_return false;
    if (*n == 0) co_return true;
    if (out.size() + *n > limit) co_return false;
    out.append(buf, *n);
  }
}

http::Awaitable<bool> readXml(upstream::UpstreamResponse& resp, std::size_t limit, pugi::xml_document& doc) {
  std::string body;
  const bool complete = co_await readAll(resp, limit, body);  // (not inside ||: GCC 12 coroutines)
  co_return complete && doc.load_buffer(body.data(), body.size());
}

pugi::xml_node newS3Document(pugi::xml_document& doc, const char* name) {
  auto decl = doc.append_child(pugi::node_declaration);
  decl.append_attribute("version") = "1.0";
  decl.append_attribute("encoding") = "UTF-8";
  auto root = doc.append_child(name);
  root.append_attribute("xmlns") = "http://s3.amazonaws.com/doc/2006-03-01/";
  return root;
}

void renameBucket(pugi::xml_node root, const std::string& from, const std::string& to) {
  for (auto child : root.children())
    if ((std::string_view(child.name()) == "Name" || std::string_view(child.name()) == "Bucket") &&
        from == child.text().get())
      child.text() = to.c_str();
}


ProxyHandler::ProxyHandler(ProxyOptions opts, std::shared_ptr<KeyStore> keys,
                           std::vector<std::unique_ptr<upstream::Upstream>> upstreams,
                           std::unique_ptr<cache::CacheThread> cache)
    : opts_(std::move(opts)),
      keys_(std::move(keys)),
      upstreams_(std::move(upstreams)),
      cache_(std::move(cache)),
      rng_(std::random_device{}()),
      buffers_(opts_.bufferSize, kMaxFreeBuffers) {}

std::string ProxyHandler::newRequestId() {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llX", static_cast<unsigned long long>(rng_()));
  return buf;
}

std::string ProxyHandler::protocolError(http::ResponseHeader& res, http::ProtocolError error, std::string_view message) {
  const http::Status status = http::statusOf(error);
  const std::string_view code = s3Code(error);  // s3api's face of the server's refusal
  auto id = newRequestId();
  res.set(bhttp::field::content_type, "application/xml");
  res.set("x-amz-request-id", id);
  if (opts_.requestStats) opts_.requestStats->record("-", static_cast<unsigned>(status), {}, {}, 0, 0);
  if (opts_.accessLog) {  // refused before a request existed: no remote, operation or key to report
    spdlog::logger& log = opts_.accessLogger ? *opts_.accessLogger : *spdlog::default_logger_raw();
    switch (opts_.accessLogFormat) {
      case AccessLogFormat::Json:
        log.info(R"({{"time":"{}","id":"{}","op":"-","status":{},"error":"{}","bytes_in":0,"bytes_out":0}})",
                 formatIsoTime(std::chrono::system_clock::now()), id, static_cast<unsigned>(status), jsonEscape(code));
        break;
      case AccessLogFormat::Common:
        log.info("- - - [{}] \"-\" {} 0 id={} op=- error={}", clfTimeNow(), static_cast<unsigned>(status), id, code);
        break;
      case AccessLogFormat::Text:
        log.info("access id={} op=- status={} error={} in=0 out=0", id, static_cast<unsigned>(status), code);
        break;
    }
  }
  return renderErrorXml(code, message, "", id);
}

http::Awaitable<void> ProxyHandler::handle(const http::RequestHeader& req, const http::RequestContext& ctx,
                                           http::BodyReader& body, http::ResponseWriter& out) {
  Exchange x{req, ctx, body, out, {}, std::chrono::steady_clock::now(), {}, "Unknown", {}, {}, nullptr, false, {}, 0, {}, 0, 0, "bypass",
             nullptr, nullptr, {}, nullptr};
  x.requestId = newRequestId();
  x.headers.reserve(16);
  for (const auto& f : req) x.headers.emplace_back(lower(f.name_string()), std::string(f.value()));
  std::string_view target = req.target();
  std::string host(req[bhttp::field::host]);
  bool wellFormed = true;
  const auto absolute = splitAbsoluteForm(target, wellFormed);
  if (absolute) {
    // RFC 9112 section 3.2.2: the target's authority replaces the Host header, for routing and for the
    // signature alike (a signature over another Host does not match).
    host = std::string(absolute->authority);
    dropHeader(x.headers, "host");
    x.headers.emplace_back("host", host);
    target = absolute->originForm;
  }
  std::optional<RoutedRequest> routed;  // (no ?: of temporaries: GCC 12 coroutines)
  if (wellFormed) routed = route(target, host, opts_.domain);
  if (!routed) {
    const S3Failure bad{S3Error::InvalidURI, {}, {}};
    co_await sendError(x, bad);
  } else {
    x.routed = std::move(*routed);
    x.op = operationName(req.method_string(), !x.routed.bucket.empty(), !x.routed.key.empty(), x.routed.query);
    if (findHeader(x.headers, "x-amz-copy-source")) {
      if (x.op == "PutObject") x.op = "CopyObject";
      else if (x.op == "UploadPart") x.op = "UploadPartCopy";
    }
    const BucketMap& buckets = *opts_.buckets;
    x.policy = &buckets.lookup(x.routed.bucket);
    x.upstream = upstreams_.at(x.policy->backend).get();
    x.backendId = &buckets.backendId(x.policy->backend);
    x.backendBucket = std::string(buckets.backendBucket(x.routed.bucket));
    co_await forward(x);
  }
  if (opts_.requestStats) {
    const bool read = x.req.method() == bhttp::verb::get || x.req.method() == bhttp::verb::head;
    opts_.requestStats->record(x.op, x.status, x.routed.bucket, read && !x.routed.key.empty() ? x.cacheStatus : "",
                               x.bytesIn, x.bytesOut);
  }
  if (opts_.accessLog) logAccess(x);
}

std::optional<S3Failure> ProxyHandler::planBody(const Exchange& x, const VerifiedAuth& auth,
                                                std::optional<std::uint64_t>& payloadLength, bool& hasBody,
                                                BodyChecks& checks) const {
  if (x.req.method() == bhttp::verb::unknown) return S3Failure{S3Error::NotImplemented, "Method not implemented.", {}};
  const std::optional<std::uint64_t> wireLength = x.body.contentLength();  // nullopt: chunked transfer
  payloadLength = wireLength;
  if (isStreaming(auth.payload)) {
    payloadLength.reset();
    if (const auto* dl = findHeader(x.headers, "x-amz-decoded-content-length")) {
      payloadLength = parseLength(*dl);
      if (!payloadLength) return S3Failure{S3Error::InvalidArgument, "x-amz-decoded-content-length is not a number.", {}};
    } else if (auth.payload == PayloadMode::StreamingSigned) {
      return S3Failure{S3Error::MissingContentLength,
                       "x-amz-decoded-content-length is required for STREAMING-AWS4-HMAC-SHA256-PAYLOAD.", {}};
    }
  }
  if (payloadLength && *payloadLength > opts_.maxObjectSize)
    return S3Failure{S3Error::EntityTooLarge, {},
                     {{"ProposedSize", std::to_string(*payloadLength)}, {"MaxSizeAllowed", std::to_string(opts_.maxObjectSize)}}};
  if (isXmlBodyOp(x.op) && payloadLength && *payloadLength > kMaxRequestXml)
    return S3Failure{S3Error::MaxMessageLengthExceeded, {}, {}};
  hasBody = !x.body.done() && (!wireLength || *wireLength > 0);
  if (!hasBody && auth.payload == PayloadMode::Sha256 && auth.payloadHash != kEmptySha256Hex)
    return S3Failure{S3Error::XAmzContentSHA256Mismatch, {}, {}};
  // CompleteMultipartUpload's x-amz-checksum-* describe the whole object, not its XML body.
  const bool trailerAllowed =
      auth.payload == PayloadMode::StreamingSignedTrailer || auth.payload == PayloadMode::StreamingUnsignedTrailer;
  auto parsed = bodyChecksFor(x.headers, x.op != "CompleteMultipartUpload", trailerAllowed);
  if (auto* bad = std::get_if<S3Failure>(&parsed)) return *bad;
  checks = std::get<BodyChecks>(std::move(parsed));
  if (!hasBody) return checkEmptyBody(checks);
  return std::nullopt;
}

upstream::UpstreamRequest ProxyHandler::upstreamRequestFor(const Exchange& x, const VerifiedAuth& auth) const {
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
  return ur;
}

http::Awaitable<void> ProxyHandler::forward(Exchange& x) {
  const auto keys = keys_->get();
  AuthInput in;
  in.method = x.req.method_string();
  in.rawPath = x.routed.rawPath;
  in.decodedPath = x.routed.decodedPath;
  in.query = &x.routed.query;
  in.headers = &x.headers;
  in.now = std::chrono::system_clock::now();
  in.bucket = x.routed.bucket;
  in.virtualHosted = x.routed.virtualHosted;
  AuthResult ar;
  if (auto bad = checkSingletonHeaders(x.headers)) ar.failure = std::move(bad);
  else if (x.ctx.internal) ar.auth.accessKey = "granary-admin";  // made in this process (preload): no signature
  else ar = verifyRequest(in, *keys, opts_.auth);
  if (ar.failure) co_return co_await sendError(x, *ar.failure);
  const VerifiedAuth& auth = ar.auth;
  x.accessKey = auth.accessKey;
  if (auto bad = checkRequest(x.req.method_string(), x.op, x.routed, x.headers)) {
    if (!x.body.done()) x.out.closeAfterResponse();
    co_return co_await sendError(x, *bad);
  }
  // The key's policy, before anything else looks at the cache, the spool or the backend: a refused
  // request learns nothing of what is cached (same answer, same path, whatever is held).
  if (!auth.anonymous && !x.ctx.internal) x.client = keys->find(auth.accessKey);
  if (!authorize(x)) co_return co_await deny(x, "by its policy");
  if (auto bad = openListingMarkers(x)) co_return co_await sendError(x, *bad);
  x.upstream = upstreamFor(x, x.policy->backend);

  // What the body is and how long it will be once decoded.
  std::optional<std::uint64_t> payloadLength;
  bool hasBody = false;
  BodyChecks checks;
  if (auto bad = planBody(x, auth, payloadLength, hasBody, checks)) co_return co_await sendError(x, *bad);
  const bool trailerChecksum = checks.checksum && !checks.expected;

  std::optional<CopySource> copySource;
  if (x.op == "CopyObject" || x.op == "UploadPartCopy") {
    copySource = parseCopySource(*findHeader(x.headers, "x-amz-copy-source"));
    if (copySource && copySource->key.size() > kMaxKeyBytes) {
      const S3Failure tooLong{S3Error::KeyTooLongError, {},
                              {{"Size", std::to_string(copySource->key.size())}, {"MaxSizeAllowed", std::to_string(kMaxKeyBytes)}}};
      co_return co_await sendError(x, tooLong);
    }
    if (!copySource) {
      const S3Failure bad{S3Error::InvalidArgument,
                          "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
                          {{"ArgumentName", "x-amz-copy-source"}}};  // (named: GCC 12 coroutines)
      co_return co_await sendError(x, bad);
    }
    if (const AccessPolicy* p = x.client ? x.client->policy.get() : nullptr;
        p && !p->allowsObject(copySource->versionId.empty() ? "s3:GetObject" : "s3:GetObjectVersion", copySource->bucket,
                              copySource->key))
      co_return co_await deny(x, "the copy source by its policy");
    // A source written back but not uploaded yet: the backend must have it before it is read there.
    if (!co_await sourceUploaded(*copySource)) {
      if (!x.body.done()) x.out.closeAfterResponse();
      const S3Failure busy{S3Error::SlowDown, "The copy source is still being written back to its backend.", {}};
      co_return co_await sendError(x, busy);
    }
  }
  if (writesBack(x)) {
    if (const auto* id = findParam(x.routed.query, "uploadId"); id && isSpoolUploadId(*id))
      co_return co_await spoolMultipart(x, auth, payloadLength, std::move(checks), copySource);
    if (x.op == "CreateMultipartUpload" && co_await createSpoolUpload(x)) co_return;
  }
  if (copySource && opts_.buckets->lookup(copySource->bucket).backend != x.policy->backend)
    co_return co_await copyAcrossBackends(x, *copySource);

  if (writesBack(x)) {
    const bool versioned = findParam(x.routed.query, "versionId") != nullptr;
    if ((x.op == "GetObject" || x.op == "HeadObject") && !versioned && co_await serveWriteBack(x)) co_return;
    if (x.op == "PutObject") {
      if (co_await putWriteBack(x, auth, payloadLength, checks)) co_return;
      co_await supersedePending(x, x.routed.key);  // not spooled: written through, after what is pending
    } else if (x.op == "DeleteObject" && !versioned) {
      co_return co_await deleteWriteBack(x);
    } else if (x.op == "CopyObject" || x.op == "CompleteMultipartUpload" || x.op == "DeleteObject") {
      co_await supersedePending(x, x.routed.key);
    }
  }

  bool useCache = cache_ && cacheEligible(x);
  if (useCache && keys->hasTenants()) {
    // Cached bytes may have been fetched under another tenant's credentials: they reach this key only
    // once the backend said its own credentials may read the object.
    const BackendAccess access = co_await backendAllows(x);
    if (access == BackendAccess::Refused) co_return co_await deny(x, "by the backend (tenant credentials)");
    useCache = access == BackendAccess::Allowed;
  }
  if (useCache && co_await serveCached(x)) co_return;
  if (x.op == "ListBuckets" && !opts_.buckets->passThroughListing()) co_return co_await listBucketsMerged(x);

  upstream::UpstreamRequest ur = upstreamRequestFor(x, auth);
  if (copySource) {
    // The same backend copies server-side; it knows the source bucket by its own name.
    const std::string_view there = opts_.buckets->backendBucket(copySource->bucket);
    if (there != copySource->bucket)
      for (auto& [name, value] : ur.headers)
        if (name == "x-amz-copy-source") value = copySourceHeader(*copySource, there);
  }

  std::optional<VerifiedBody> verified;
  const bool fillOnWrite = fillsOnWrite(x, payloadLength);
  std::string written;  // fillOnWrite: the bytes the backend is sent
  std::optional<CapturingBody> capture;
  if (hasBody) {
    verified.emplace(x.body, auth, payloadLength, std::move(checks));
    ur.payloadHash = std::string(sigv4::kUnsignedPayload);  // (no ?: of temporaries: GCC 12 coroutines)
    if (auth.payload == PayloadMode::Sha256) ur.payloadHash = auth.payloadHash;
    // An XML body (DeleteObjects, CompleteMultipartUpload, tagging...) is always read whole, however it
    // is framed: Granary must see all of it to check it and to invalidate exactly what it changes.
    const bool xmlBody = isXmlBodyOp(x.op);
    const bool buffered = xmlBody || (payloadLength && *payloadLength <= opts_.verifyBeforeSend);
    // A streamed body's trailer arrives after the request went out: its checksum is verified here but
    // cannot be passed on, so the backend must not be told one is coming.
    if (!buffered && trailerChecksum) dropHeader(ur.headers, "x-amz-sdk-checksum-algorithm");
    if (buffered) {
      // Small body: verify it whole first, so a refused body never reaches the backend at all.
      const ReadWhole got = co_await readWhole(*verified, payloadLength, xmlBody ? kMaxRequestXml : opts_.verifyBeforeSend,
                                               ur.bufferedBody);
      x.bytesIn = verified->clientBytes();
      if (got != ReadWhole::Ok) {
        x.out.closeAfterResponse();
        S3Failure failure{S3Error::MaxMessageLengthExceeded, {}, {}};  // (no ?: of temporaries: GCC 12 coroutines)
        if (got != ReadWhole::TooLong) failure = verified->failure().value_or(S3Failure{S3Error::IncompleteBody, {}, {}});
        co_return co_await sendError(x, failure);
      }
      ur.contentLength = ur.bufferedBody.size();
      if (auto bad = checkRequestXml(x.op, ur.bufferedBody)) co_return co_await sendError(x, *bad);
      if (x.op == "DeleteObjects" && x.client && x.client->policy) {
        // Every key the backend would act on must be the key's to delete (S3 would answer per key; one
        // refused key refuses the request, so nothing is half-deleted on a guess).
        for (const auto& [key, versionId] : deleteObjectsKeys(ur.bufferedBody))
          if (!x.client->policy->allowsObject(versionId.empty() ? "s3:DeleteObject" : "s3:DeleteObjectVersion",
                                              x.routed.bucket, key))
            co_return co_await deny(x, "a key of DeleteObjects by its policy");
      }
      if (const auto* id = findParam(x.routed.query, "uploadId"); id && x.op == "CompleteMultipartUpload")
        if (auto bad = opts_.multipart->checkComplete(*id, ur.bufferedBody)) co_return co_await sendError(x, *bad);
      if (writesBack(x) && x.op == "DeleteObjects")  // what is pending for those keys must not land later
        for (const auto& [key, versionId] : deleteObjectsKeys(ur.bufferedBody)) co_await supersedePending(x, key);
      if (fillOnWrite) written = ur.bufferedBody;
      // The trailer's checksum (the one x-amz-trailer named, verified) becomes a header: the backend
      // stores it with the object. Other trailer fields were checked by nobody: they stay here.
      if (const auto trailer = verified->verifiedTrailerChecksum()) ur.headers.push_back(*trailer);
    } else if (fillOnWrite) {
      written.reserve(static_cast<std::size_t>(*payloadLength));
      capture.emplace(*verified, written, static_cast<std::size_t>(*payloadLength));
      ur.source = &*capture;
      ur.contentLength = payloadLength;
    } else {
      ur.source = &*verified;
      ur.contentLength = payloadLength;
    }
  } else {
    ur.contentLength = 0;
    ur.payloadHash = std::string(kEmptySha256Hex);
  }

  // A write makes what the cache holds for its key(s) unreachable: before it is sent (so no read starts
  // from the old state meanwhile) and again once the backend answered (reads that raced it).
  invalidateForWrite(x, ur);
  auto resp = co_await x.upstream->send(ur);
  invalidateForWrite(x, ur);
  if (verified) x.bytesIn = verified->clientBytes();
  if (verified && verified->failure()) {
    x.out.closeAfterResponse();  // the rest of the body may still be in flight
    co_return co_await sendError(x, *verified->failure());
  }
  if (!resp) {
    if (verified && verified->started()) x.out.closeAfterResponse();
    if (writesBack(x) && x.op == "ListMultipartUploads") co_return co_await relayUploadsWithSpool(x, nullptr);
    spdlog::warn("{} {} /{}/{}: backend failed: {}", x.requestId, x.op, logSafe(x.routed.bucket), logSafe(x.routed.key),
                 resp.error().message());
    const S3Failure failure = upstreamFailure(resp.error());
    co_return co_await sendError(x, failure);
  }
  // A backend that answered a different range than asked gets one more, absolute, request: nothing
  // has gone to the client yet.
  if (const RangeFix fix = rangeFixFor(x, **resp); fix.kind == RangeFix::Kind::Refetch && !hasBody) {
    for (auto& [name, value] : ur.headers)
      if (name == "range")
        value = "bytes=" + std::to_string(fix.first) + "-" + std::to_string(fix.first + fix.length - 1);
    resp = UpstreamResponsePtr{};
    resp = co_await x.upstream->send(ur);
    if (!resp) {
      const S3Failure failure = upstreamFailure(resp.error());
      co_return co_await sendError(x, failure);
    }
  }
  const unsigned answered = (*resp)->header().result_int();
  if (answered == 416 && x.op == "GetObject" && findHeader(x.headers, "range") &&
      (*resp)->header()[bhttp::field::content_range].empty()) {
    // S3 names the object's size in a 416 (Content-Range: bytes */size); a backend that does not (s3rver)
    // is asked for it, so clients can tell an unsatisfiable range from a missing object.
    upstream::UpstreamRequest head;
    head.method = bhttp::verb::head;
    head.bucket = x.backendBucket;
    head.key = x.routed.key;
    if (const auto* v = findParam(x.routed.query, "versionId")) head.query.emplace_back("versionId", *v);
    resp = UpstreamResponsePtr{};
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
    co_return co_await sendError(x, bad, contentRange);
  }
  if ((x.op == "GetObject" || x.op == "HeadObject") && answered == 200) {
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
  if (fillOnWrite && answered == 200 && written.size() == payloadLength.value_or(0) && (!capture || capture->complete()))
    startFillAfterWrite(x, std::string((*resp)->header()[bhttp::field::etag]), std::move(written));
  if (writesBack(x) && (x.op == "ListObjectsV2" || x.op == "ListObjects") && answered == 200 &&
      opts_.writeBack->pendingObjects() > 0)
    co_return co_await relayListingWithPending(x, **resp);
  if (writesBack(x) && x.op == "ListMultipartUploads" && (answered == 200 || answered == 501))
    co_return co_await relayUploadsWithSpool(x, &**resp);
  if (const auto* id = findParam(x.routed.query, "uploadId")) {
    const auto* part = findParam(x.routed.query, "partNumber");
    if (x.op == "UploadPart" && answered == 200 && part && payloadLength)
      opts_.multipart->partUploaded(*id, static_cast<std::uint32_t>(parseLength(*part).value_or(0)),
                                    std::string((*resp)->header()[bhttp::field::etag]), *payloadLength);
    else if (x.op == "UploadPartCopy" || x.op == "CompleteMultipartUpload" || x.op == "AbortMultipartUpload")
      opts_.multipart->forget(*id);
  }
  if (answered == 200 && ((x.backendBucket != x.routed.bucket && namesBucketInXml(x.op)) || expectedXmlRoot(x.op) ||
                          x.filterListing))
    co_return co_await relayRenamed(x, **resp);
  if (answered >= 300 && answered != 304 && x.backendBucket != x.routed.bucket && x.req.method() != bhttp::verb::head)
    co_return co_await relayErrorRenamed(x, **resp);
  co_await relay(x, **resp);
}

upstream::Upstream* ProxyHandler::upstreamFor(const Exchange& x, std::size_t backend) {
  upstream::Upstream* real = upstreams_.at(backend).get();
  if (!x.client || !x.client->backendCredentials) return real;
  std::string id = std::to_string(backend);
  id.push_back('\0');
  id += x.accessKey;
  auto& t = tenantUpstreams_[id];
  if (!t) t = std::make_unique<TenantUpstream>(*real, x.client->backendCredentials);
  else if (t->tenantCredentials() != x.client->backendCredentials.get())
    t->setTenantCredentials(x.client->backendCredentials);  // reloaded (SIGHUP)
  return t.get();
}

namespace {
constexpr std::string_view kSealed = "gr1.";  // Granary's sealed listing positions start so
/// The request parameter a listing's Next* element is given back in.
std::string_view markerParamOf(std::string_view element) {
  if (element == "NextMarker" || element == "Marker") return "marker";
  if (element == "NextContinuationToken" || element == "ContinuationToken") return "continuation-token";
  if (element == "NextKeyMarker" || element == "KeyMarker") return "key-marker";
  // A hidden key's version or upload id is no business of the key either.
  if (element == "NextVersionIdMarker" || element == "VersionIdMarker") return "version-id-marker";
  if (element == "NextUploadIdMarker" || element == "UploadIdMarker") return "upload-id-marker";
  return {};
}
/// What a sealed position is bound to: the key it was given to, the kind of listing, the bucket and the
/// parameter it goes back in. Nobody else opens it, nowhere else.
std::string sealContext(std::string_view accessKey, std::string_view op, std::string_view bucket,
                        std::string_view param) {
  std::string c(accessKey);
  for (const std::string_view part : {listingAction(op), bucket, param}) {
    c.push_back('\n');
    c.append(part);
  }
  return c;
}
}  // namespace

bool ProxyHandler::authorize(Exchange& x) const {
  const AccessPolicy* policy = x.client ? x.client->policy.get() : nullptr;
  if (!policy) return true;
  if (x.op == "ListBuckets") {
    x.filterListing = true;  // the buckets it names statements for
    return true;
  }
  const AccessNeed need = requiredAccess(x.op, x.routed.key, x.routed.query);
  if (!allows(policy, need, x.routed.bucket)) return false;
  if (need.on == AccessNeed::On::Listing && !policy->allowsBucket(need.action, x.routed.bucket)) {
    // Keys allowed only under some prefixes: a listing under a prefix none of them reaches is refused;
    // one that reaches beyond them is filtered entry by entry.
    std::string prefix;
    if (const auto* p = findParam(x.routed.query, "prefix")) prefix = *p;
    if (!policy->allowsSomeUnder(need.action, x.routed.bucket, prefix)) return false;
    // Filtered even when the prefix is all the key's: a backend that reads the parameters otherwise than
    // Granary (one that drops parameters past a count, say) might list more than the prefix.
    x.filterListing = true;
    // A position of the client's own must be one it may list: from a position among hidden keys,
    // IsTruncated with max-keys=1 tells whether more keys follow, and a search spells their names.
    // (Positions Granary gave out are sealed; what follows a shown key is the client's to ask for.)
    for (const std::string_view name : {"marker", "start-after", "key-marker"})
      if (const auto* v = findParam(x.routed.query, name);
          v && !v->empty() && !v->starts_with(kSealed) && !policy->allowsObject(need.action, x.routed.bucket, *v))
        return false;
  }
  return true;
}

std::optional<S3Failure> ProxyHandler::openListingMarkers(Exchange& x) const {
  if (listingAction(x.op).empty()) return std::nullopt;
  for (auto& [name, value] : x.routed.query) {
    if (name != "marker" && name != "continuation-token" && name != "key-marker" && name != "version-id-marker" &&
        name != "upload-id-marker")
      continue;
    if (!value.starts_with(kSealed)) continue;
    auto plain = openToken(std::string_view(value).substr(kSealed.size()),
                           sealContext(x.accessKey, x.op, x.routed.bucket, name));
    if (!plain) {
      if (x.client && x.client->policy)
        return S3Failure{S3Error::InvalidArgument, "The continuation token provided is incorrect", {{"ArgumentName", name}}};
      continue;  // a key without a policy never got one: a marker of its own that looks alike
    }
    x.sealedMarkers.emplace_back(name, value);
    value = std::move(*plain);
  }
  // The answer echoes the opened position: it goes through filterListing, which seals it again.
  if (!x.sealedMarkers.empty()) x.filterListing = true;
  return std::nullopt;
}

http::Awaitable<void> ProxyHandler::deny(Exchange& x, std::string_view what) {
  if (!x.body.done()) x.out.closeAfterResponse();
  if (opts_.requestStats) opts_.requestStats->denied(x.accessKey);
  spdlog::info("{} {} /{}/{}: denied{}{} to key {}", x.requestId, x.op, logSafe(x.routed.bucket),
               logSafe(x.routed.key), what.empty() ? "" : " ", what, logSafe(x.accessKey));
  const S3Failure denied{S3Error::AccessDenied, "Access Denied", {}};
  co_await sendError(x, denied);
}

http::Awaitable<void> ProxyHandler::relayRenamed(Exchange& x, upstream::UpstreamResponse& resp) {
  constexpr std::size_t kMaxXml = 16 << 20;
  const char* expected = expectedXmlRoot(x.op);
  // An answer that is not what the operation returns means the backend does not implement it: a 501,
  // never a wrong answer passed on as if it were right.
  const S3Failure unsupported{S3Error::NotImplemented,
                              "The backend does not implement " + std::string(x.op) + ".", {}};
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
    spdlog::warn("{} {} /{}/{}: the backend answered <{}>, not <{}>: answered NotImplemented", x.requestId, x.op,
                 logSafe(x.routed.bucket), logSafe(x.routed.key), logSafe(doc.document_element().name()), expected);
    co_return co_await sendError(x, unsupported);
  }
  renameBucket(doc.document_element(), x.backendBucket, x.routed.bucket);
  if (x.op == "CreateMultipartUpload")
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

http::Awaitable<void> ProxyHandler::listBucketsMerged(Exchange& x) {
  constexpr std::size_t kMaxListing = 16 << 20;
  const BucketMap& map = *opts_.buckets;
  std::vector<std::pair<std::string, std::string>> found;  // client name, creation date
  std::string ownerId, ownerName;
  for (const std::size_t b : map.listingBackends()) {
    upstream::UpstreamRequest r;
    r.method = bhttp::verb::get;
    auto resp = co_await upstreamFor(x, b)->send(r);
    if (!resp) co_return co_await sendError(x, upstreamFailure(resp.error()));
    if ((*resp)->header().result_int() != 200) {
      // A backend refused (credentials, say): its answer is the client's, since a listing that silently
      // lacks that backend's buckets would be wrong.
      x.upstream = upstreamFor(x, b);
      co_return co_await relay(x, **resp);
    }
    pugi::xml_document doc;
    if (!co_await readXml(**resp, kMaxListing, doc)) {
      const S3Failure bad{S3Error::InternalError, "A backend's bucket listing could not be read.", {}};
      co_return co_await sendError(x, bad);
    }
    const auto root = doc.child("ListAllMyBucketsResult");
    if (b == 0) {
      ownerId = root.child("Owner").child_value("ID");
      ownerName = root.child("Owner").child_value("DisplayName");
    }
    for (const auto& bucket : root.child("Buckets").children("Bucket"))
      for (auto& name : map.visibleNames(b, bucket.child_value("Name")))
        found.emplace_back(std::move(name), bucket.child_value("CreationDate"));
  }
  std::sort(found.begin(), found.end());
  found.erase(std::unique(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first == b.first; }),
              found.end());

  pugi::xml_document out;
  auto root = newS3Document(out, "ListAllMyBucketsResult");
  auto owner = root.append_child("Owner");
  owner.append_child("ID").text() = ownerId.c_str();
  owner.append_child("DisplayName").text() = ownerName.c_str();
  auto list = root.append_child("Buckets");
  for (const auto& [name, created] : found) {
    auto e = list.append_child("Bucket");
    e.append_child("Name").text() = name.c_str();
    e.append_child("CreationDate").text() = created.c_str();
  }
  const sigv4::HeaderList none;
  co_await sendXml(x, out, none);
}

void ProxyHandler::filterListing(const Exchange& x, pugi::xml_node root) const {
  const AccessPolicy* policy = x.client ? x.client->policy.get() : nullptr;
  if (!policy) return;
  const std::string_view name = root.name();
  if (name == "ListAllMyBucketsResult") {
    auto buckets = root.child("Buckets");
    for (auto b = buckets.child("Bucket"); b;) {
      auto next = b.next_sibling("Bucket");
      if (!policy->touchesBucket(b.child_value("Name"))) buckets.remove_child(b);
      b = next;
    }
    return;
  }
  const std::string_view action = listingAction(x.op);
  if (action.empty()) return;
  // With encoding-type=url the keys are URL-encoded in the answer, which then says so (<EncodingType>):
  // decoded before they are judged. A backend that ignores the parameter (s3rver) sends them raw, and a
  // raw "%2F" must not be read as a '/'. A key that does not decode is not shown.
  const bool encoded = std::string_view(root.child_value("EncodingType")) == "url";
  auto text = [&](pugi::xml_node n, const char* child) -> std::optional<std::string> {
    std::string v = n.child_value(child);
    if (!encoded) return v;
    return uriDecode(v);
  };
  std::string lastKey;
  std::size_t kept = 0;
  // A key that may list the whole bucket is here only to have a sealed position echoed sealed again.
  const bool wholeBucket = policy->allowsBucket(action, x.routed.bucket);
  for (auto e = root.first_child(); e && !wholeBucket;) {
    auto next = e.next_sibling();
    const std::string_view tag = e.name();
    if (tag == "Contents" || tag == "Version" || tag == "DeleteMarker" || tag == "Upload") {
      const auto key = text(e, "Key");
      if (key) lastKey = *key;
      if (key && policy->allowsObject(action, x.routed.bucket, *key)) ++kept;
      else root.remove_child(e);
    } else if (tag == "CommonPrefixes") {
      const auto prefix = text(e, "Prefix");
      if (prefix && policy->allowsSomeUnder(action, x.routed.bucket, *prefix)) ++kept;
      else root.remove_child(e);
    }
    e = next;
  }
  if (auto count = root.child("KeyCount"); count && !wholeBucket) count.text() = static_cast<unsigned long long>(kept);
  // ListObjects (v1) without a delimiter has no NextMarker: clients continue after the last key shown,
  // which filtering may have removed; S3 allows NextMarker always, so it names where the page ended.
  if (x.op == "ListObjects" && std::string_view(root.child_value("IsTruncated")) == "true" &&
      !root.child("NextMarker") && !lastKey.empty()) {
    const std::string marker = encoded ? uriEncode(lastKey, true) : lastKey;
    root.insert_child_after("NextMarker", root.child("IsTruncated")).text() = marker.c_str();
  }
  // Where the next page starts names a key (RGW's continuation tokens and every marker do), maybe one the
  // key may not see: sealed, opened again when it comes back (openListingMarkers). What the request sent
  // sealed is echoed as it was sent.
  for (auto e = root.first_child(); e; e = e.next_sibling()) {
    const std::string_view tag = e.name();
    const std::string_view param = markerParamOf(tag);
    if (param.empty()) continue;
    if (!tag.starts_with("Next")) {
      for (const auto& [name, sealed] : x.sealedMarkers)
        if (name == param) e.text() = sealed.c_str();
      continue;
    }
    std::string position = e.child_value();
    if (position.empty()) continue;  // nothing to hide (S3 sends empty version and upload id markers)
    if (encoded && (tag == "NextMarker" || tag == "NextKeyMarker")) {
      if (auto decoded = uriDecode(position)) position = std::move(*decoded);  // else sealed as it is
    }
    const std::string token =
        std::string(kSealed) + sealToken(position, sealContext(x.accessKey, x.op, x.routed.bucket, param));
    e.text() = token.c_str();
  }
}

http::Awaitable<void> ProxyHandler::sendXml(Exchange& x, pugi::xml_document& doc, const sigv4::HeaderList& extra) {
  if (x.filterListing) filterListing(x, doc.document_element());
  std::ostringstream os;
  doc.save(os, "", pugi::format_raw);
  const std::string xml = os.str();
  http::ResponseHeader h;
  for (const auto& [name, value] : extra) h.set(name, value);
  h.result(bhttp::status::ok);
  h.set(bhttp::field::content_type, "application/xml");
  h.set("x-amz-request-id", x.requestId);
  h.set(bhttp::field::content_length, std::to_string(xml.size()));
  x.status = 200;
  if (co_await x.out.writeHeader(std::move(h))) co_return;
  if (co_await x.out.writeBody(boost::asio::buffer(xml))) co_return;
  x.bytesOut = xml.size();
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
        spdlog::warn("{} {} /{}/{}: backend body failed after {} bytes: {}", x.requestId, x.op, logSafe(x.routed.bucket),
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

http::Awaitable<void> ProxyHandler::sendError(Exchange& x, const S3Failure& f, std::string contentRange) {
  const ErrorInfo& info = errorInfo(f.error);
  x.status = static_cast<unsigned>(info.status);
  x.errorCode = std::string(info.code);
  if (x.out.headerSent()) co_return;
  std::string body = renderErrorXml(info.code, f.message.empty() ? info.message : f.message,
                                    x.routed.rawPath.empty() ? std::string(splitTarget(x.req.target()).first)
                                                             : x.routed.rawPath,
                                    x.requestId, f.extra);
  http::ResponseHeader h;
  h.result(info.status);
  h.set(bhttp::field::content_type, "application/xml");
  h.set("x-amz-request-id", x.requestId);
  h.set(bhttp::field::content_length, std::to_string(body.size()));
  if (!contentRange.empty()) h.set(bhttp::field::content_range, contentRange);
  if (co_await x.out.writeHeader(std::move(h))) co_return;
  if (co_await x.out.writeBody(boost::asio::buffer(body))) co_return;
  co_await x.out.finish();
}

void ProxyHandler::logAccess(const Exchange& x) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - x.start);
  spdlog::logger& log = opts_.accessLogger ? *opts_.accessLogger : *spdlog::default_logger_raw();
  if (opts_.accessLogFormat == AccessLogFormat::Json) {
    log.info(R"({{"time":"{}","id":"{}","remote":"{}","op":"{}","method":"{}","bucket":"{}","key":"{}","status":{},)"
             R"("error":"{}","bytes_in":{},"bytes_out":{},"duration_us":{},"access_key":"{}","cache":"{}"}})",
             formatIsoTime(std::chrono::system_clock::now()), jsonEscape(x.requestId),
             x.ctx.internal ? "internal" : x.ctx.remote.address().to_string(), x.op,
             jsonEscape(x.req.method_string()), jsonEscape(x.routed.bucket), jsonEscape(x.routed.key), x.status,
             jsonEscape(x.errorCode), x.bytesIn, x.bytesOut, us.count(), jsonEscape(x.accessKey), x.cacheStatus);
    return;
  }
  if (opts_.accessLogFormat == AccessLogFormat::Common) {
    // The request line names the path only: query strings can carry presigned signatures and tokens.
    log.info("{} - {} [{}] \"{} {} HTTP/{}.{}\" {} {} id={} op={} cache={} us={}",
             x.ctx.internal ? "internal" : x.ctx.remote.address().to_string(),
             x.accessKey.empty() ? "-" : clfField(x.accessKey), clfTimeNow(), clfField(x.req.method_string()),
             clfField(x.routed.rawPath.empty() ? std::string(splitTarget(x.req.target()).first) : x.routed.rawPath),
             x.req.version() / 10, x.req.version() % 10, x.status, x.bytesOut, logField(x.requestId), logField(x.op),
             x.cacheStatus,
             us.count());
    return;
  }
  // Client text (bucket, key, access key) and backend text (error codes) are escaped: one request, one line.
  log.info("access id={} remote={} op={} method={} bucket={} key={} status={} error={} in={} out={} us={} ak={} cache={}",
           logField(x.requestId), x.ctx.internal ? "internal" : x.ctx.remote.address().to_string(), x.op,
           logField(x.req.method_string()), logField(x.routed.bucket), logField(x.routed.key), x.status,
           logField(x.errorCode), x.bytesIn, x.bytesOut, us.count(), logField(x.accessKey), x.cacheStatus);
}

}  // namespace granary::s3api

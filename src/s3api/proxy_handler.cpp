#include "s3api/proxy_handler.h"

#include "s3api/peer_chunk_source.h"

#include <boost/beast/core/string.hpp>
#include <spdlog/spdlog.h>
#include <pugixml.hpp>

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "common/log_escape.h"
#include "s3api/access_log.h"
#include "s3api/exchange.h"
#include "s3api/operation.h"
#include "s3api/policy.h"
#include "s3api/protocol_error.h"
#include "s3api/range.h"
#include "s3api/request_checks.h"
#include "s3api/request_stats.h"
#include "s3api/request_xml.h"
#include "s3api/routing.h"
#include "upstream/errors.h"

namespace granary::s3api {
namespace {

namespace bhttp = boost::beast::http;
using upstream::UpstreamResponsePtr;
constexpr std::size_t kMaxFreeBuffers = 32;

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
      buffers_(opts_.bufferSize, kMaxFreeBuffers) {
  if (opts_.cluster.enabled() && cache_) {
    peers_ = std::make_shared<PeerClient>(cache_->executor(), opts_.cluster);
    peerFetcher_ = std::make_shared<HttpPeerFetcher>(*peers_);
  }
}

void ProxyHandler::shutdownPeers() {
  if (peers_) peers_->shutdown();
}

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
  if (opts_.accessLog)  // refused before a request existed: no remote, operation or key to report
    writeAccessLine(opts_.accessLogger.get(), formatProtocolErrorLine(opts_.accessLogFormat, id, static_cast<unsigned>(status),
                                                                      code, std::chrono::system_clock::now()));
  return renderErrorXml(code, message, "", id);
}

http::Awaitable<void> ProxyHandler::handle(const http::RequestHeader& req, const http::RequestContext& ctx,
                                           http::BodyReader& body, http::ResponseWriter& out) {
  Exchange x{req, ctx, body, out, {}, std::chrono::steady_clock::now(), {}, S3Op::Unknown, {}, {}, nullptr, false, {}, 0, {}, 0, 0, "bypass",
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
    x.op = resolveOperation(req.method_string(), !x.routed.bucket.empty(), !x.routed.key.empty(), x.routed.query,
                            findHeader(x.headers, "x-amz-copy-source") != nullptr);
    const BucketMap& buckets = *opts_.buckets;
    x.policy = &buckets.lookup(x.routed.bucket);
    x.upstream = upstreams_.at(x.policy->backend).get();
    x.backendId = &buckets.backendId(x.policy->backend);
    x.backendBucket = std::string(buckets.backendBucket(x.routed.bucket));
    co_await forward(x);
  }
  if (opts_.requestStats) {
    const bool read = x.req.method() == bhttp::verb::get || x.req.method() == bhttp::verb::head;
    opts_.requestStats->record(opName(x.op), x.status, x.routed.bucket, read && !x.routed.key.empty() ? x.cacheStatus : "",
                               x.bytesIn, x.bytesOut);
  }
  if (opts_.accessLog) logAccess(x);
}

void ProxyHandler::logAccess(const Exchange& x) const {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - x.start);
  const std::string remote = x.ctx.internal ? "internal" : x.ctx.remote.address().to_string();
  const std::string path = x.routed.rawPath.empty() ? std::string(splitTarget(x.req.target()).first) : x.routed.rawPath;
  AccessRecord r;
  r.requestId = x.requestId;
  r.remote = remote;
  r.op = opName(x.op);
  r.method = x.req.method_string();
  r.bucket = x.routed.bucket;
  r.key = x.routed.key;
  r.path = path;
  r.httpVersion = x.req.version();
  r.status = x.status;
  r.error = x.errorCode;
  r.bytesIn = x.bytesIn;
  r.bytesOut = x.bytesOut;
  r.micros = us.count();
  r.accessKey = x.accessKey;
  r.cache = x.cacheStatus;
  writeAccessLine(opts_.accessLogger.get(), formatAccessLine(opts_.accessLogFormat, r, std::chrono::system_clock::now()));
}

// The front: one dispatch table of operation handlers, one per OpFamily (op_*.cpp). Adding an operation
// is a row in operation.cpp's table; adding a family, an entry here and its handler.
const ProxyHandler::OpHandler ProxyHandler::kDispatch[kOpFamilyCount] = {
    &ProxyHandler::opObjectRead,   // OpFamily::ObjectRead
    &ProxyHandler::opObjectWrite,  // OpFamily::ObjectWrite
    &ProxyHandler::opMultipart,    // OpFamily::Multipart
    &ProxyHandler::opListing,      // OpFamily::Listing
    &ProxyHandler::opRelay,        // OpFamily::Relay
};

ProxyHandler::OpHandler ProxyHandler::handlerFor(const Exchange& x) const {
  // A multipart upload held by the write-back spool is the spool's to answer, whatever the operation.
  if (writesBack(x))
    if (const auto* id = findParam(x.routed.query, "uploadId"); id && isSpoolUploadId(*id))
      return &ProxyHandler::opSpoolUpload;
  return kDispatch[static_cast<std::size_t>(opFamily(x.op))];
}

S3Result<VerifiedAuth> ProxyHandler::authenticate(const Exchange& x, const KeyTable& keys) const {
  if (auto single = checkSingletonHeaders(x.headers); !single) return single.error();
  VerifiedAuth internal;
  if (x.ctx.internal) {  // made in this process (preload): no signature
    internal.accessKey = "granary-admin";
    return internal;
  }
  AuthInput in;
  in.method = x.req.method_string();
  in.rawPath = x.routed.rawPath;
  in.decodedPath = x.routed.decodedPath;
  in.query = &x.routed.query;
  in.headers = &x.headers;
  in.now = std::chrono::system_clock::now();
  in.bucket = x.routed.bucket;
  in.virtualHosted = x.routed.virtualHosted;
  AuthResult ar = verifyRequest(in, keys, opts_.auth);
  if (ar.failure) return std::move(*ar.failure);
  return std::move(ar.auth);
}

http::Awaitable<void> ProxyHandler::forward(Exchange& x) {
  Call c;
  c.keys = keys_->get();
  auto auth = authenticate(x, *c.keys);
  if (!auth) co_return co_await sendError(x, auth.error());
  c.auth = std::move(*auth);
  x.accessKey = c.auth.accessKey;
  if (auto checked = checkRequest(x.req.method_string(), x.op, x.routed, x.headers); !checked) {
    if (!x.body.done()) x.out.closeAfterResponse();
    co_return co_await sendError(x, checked.error());
  }
  // The key's policy, before anything else looks at the cache, the spool or the backend: a refused
  // request learns nothing of what is cached (same answer, same path, whatever is held).
  if (!c.auth.anonymous && !x.ctx.internal) x.client = c.keys->find(c.auth.accessKey);
  if (!authorize(x)) co_return co_await deny(x, "by its policy");
  if (auto opened = openListingMarkers(x); !opened) co_return co_await sendError(x, opened.error());
  x.upstream = upstreamFor(x, x.policy->backend);
  // What the body is and how long it will be once decoded.
  auto body = planBody(x, c.auth);
  if (!body) co_return co_await sendError(x, body.error());
  c.body = std::move(*body);
  if (opInfo(x.op).copies && !co_await prepareCopySource(x, c)) co_return;
  co_await (this->*handlerFor(x))(x, c);
}

http::Awaitable<bool> ProxyHandler::prepareCopySource(Exchange& x, Call& c) {
  c.copySource = parseCopySource(*findHeader(x.headers, "x-amz-copy-source"));
  const auto& src = c.copySource;
  if (src && src->key.size() > kMaxKeyBytes) {
    const S3Failure tooLong{S3Error::KeyTooLongError, {},
                            {{"Size", std::to_string(src->key.size())}, {"MaxSizeAllowed", std::to_string(kMaxKeyBytes)}}};
    co_await sendError(x, tooLong);
    co_return false;
  }
  if (!src) {
    const S3Failure bad{S3Error::InvalidArgument,
                        "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
                        {{"ArgumentName", "x-amz-copy-source"}}};  // (named: GCC 12 coroutines)
    co_await sendError(x, bad);
    co_return false;
  }
  if (const AccessPolicy* p = x.client ? x.client->policy.get() : nullptr;
      p && !p->allowsObject(src->versionId.empty() ? "s3:GetObject" : "s3:GetObjectVersion", src->bucket, src->key)) {
    co_await deny(x, "the copy source by its policy");
    co_return false;
  }
  // A source written back but not uploaded yet: the backend must have it before it is read there.
  if (!co_await sourceUploaded(*src)) {
    if (!x.body.done()) x.out.closeAfterResponse();
    const S3Failure busy{S3Error::SlowDown, "The copy source is still being written back to its backend.", {}};
    co_await sendError(x, busy);
    co_return false;
  }
  co_return true;
}

S3Result<BodyPlan> ProxyHandler::planBody(const Exchange& x, const VerifiedAuth& auth) const {
  if (x.req.method() == bhttp::verb::unknown) return S3Failure{S3Error::NotImplemented, "Method not implemented.", {}};
  const std::optional<std::uint64_t> wireLength = x.body.contentLength();  // nullopt: chunked transfer
  BodyPlan plan;
  std::optional<std::uint64_t>& payloadLength = plan.payloadLength;
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
  const bool hasBody = plan.hasBody = !x.body.done() && (!wireLength || *wireLength > 0);
  if (!hasBody && auth.payload == PayloadMode::Sha256 && auth.payloadHash != kEmptySha256Hex)
    return S3Failure{S3Error::XAmzContentSHA256Mismatch, {}, {}};
  // CompleteMultipartUpload's x-amz-checksum-* describe the whole object, not its XML body.
  const bool trailerAllowed =
      auth.payload == PayloadMode::StreamingSignedTrailer || auth.payload == PayloadMode::StreamingUnsignedTrailer;
  auto parsed = bodyChecksFor(x.headers, x.op != S3Op::CompleteMultipartUpload, trailerAllowed);
  if (!parsed) return parsed.error();
  plan.checks = std::move(*parsed);
  if (!hasBody)
    if (auto empty = checkEmptyBody(plan.checks); !empty) return empty.error();
  return plan;
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

bool ProxyHandler::authorize(Exchange& x) const {
  const AccessPolicy* policy = x.client ? x.client->policy.get() : nullptr;
  if (!policy) return true;
  if (x.op == S3Op::ListBuckets) {
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

http::Awaitable<void> ProxyHandler::deny(Exchange& x, std::string_view what) {
  if (!x.body.done()) x.out.closeAfterResponse();
  if (opts_.requestStats) opts_.requestStats->denied(x.accessKey);
  spdlog::info("{} {} /{}/{}: denied{}{} to key {}", x.requestId, opName(x.op), logSafe(x.routed.bucket),
               logSafe(x.routed.key), what.empty() ? "" : " ", what, logSafe(x.accessKey));
  const S3Failure denied{S3Error::AccessDenied, "Access Denied", {}};
  co_await sendError(x, denied);
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

}  // namespace granary::s3api

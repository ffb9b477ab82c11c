// Multipart uploads into write-back buckets. Granary creates the upload itself (its id starts with
// "granary-wb-"), stores each part in the spool and acknowledges it once it is durable, and at Complete
// turns the parts into one pending write whose ETag is the multipart form S3 assigns
// (MD5 of the parts' MD5s, "-N"). The uploader later sends the object to the backend as a multipart
// upload of the same parts, so the backend assigns that same ETag. Abort, ListParts and
// ListMultipartUploads answer from the spool (the last merged with the backend's own uploads).

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <pugixml.hpp>
#include <spdlog/spdlog.h>

#include <charconv>
#include <cstdio>

#include "common/timeutil.h"
#include "common/log_escape.h"
#include "s3api/exchange.h"
#include "s3api/request_xml.h"

namespace granary::s3api {
namespace {

namespace bhttp = boost::beast::http;
constexpr std::string_view kSpoolUploadPrefix = "granary-wb-";

std::string isoTime(std::int64_t ms) {
  return formatIsoTime(std::chrono::system_clock::time_point(std::chrono::milliseconds(ms)));
}

/// The raw bytes of a quoted or bare hex MD5.
std::string md5Bytes(std::string_view etag) {
  const std::string hex = unquoteEtag(etag);
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    unsigned v = 0;
    std::from_chars(hex.data() + i, hex.data() + i + 2, v, 16);
    out.push_back(static_cast<char>(v));
  }
  return out;
}

/// The owner/initiator S3 puts in upload listings (Granary's uploads have one principal: the proxy).
void appendOwner(pugi::xml_node parent, const char* name) {
  auto o = parent.append_child(name);
  o.append_child("ID").text() = "granary";
  o.append_child("DisplayName").text() = "granary";
}

void copyPartResult(pugi::xml_document& doc, std::int64_t createdMs, const std::string& etag) {
  auto root = newS3Document(doc, "CopyPartResult");
  root.append_child("LastModified").text() = isoTime(createdMs).c_str();
  root.append_child("ETag").text() = etag.c_str();
}

/// The answer to an UploadPart stored in the spool: its ETag and its checksum, verified, echoed as S3 does.
http::ResponseHeader partUploaded(const sigv4::HeaderList& headers, const std::string& requestId,
                                  const std::string& etag, const VerifiedBody& body) {
  http::ResponseHeader h;
  h.result(bhttp::status::ok);
  h.set(bhttp::field::etag, etag);
  for (const auto& [name, value] : headers)
    if (name.starts_with("x-amz-checksum-") && name != "x-amz-checksum-algorithm") h.set(name, value);
  if (const auto& trailer = body.verifiedTrailerChecksum()) h.set(trailer->first, trailer->second);
  h.set("x-amz-request-id", requestId);
  h.set(bhttp::field::content_length, "0");
  return h;
}

}  // namespace

bool ProxyHandler::isSpoolUploadId(std::string_view id) { return id.starts_with(kSpoolUploadPrefix); }

http::Awaitable<bool> ProxyHandler::createSpoolUpload(Exchange& x) {
  for (const auto& [name, value] : x.headers)
    if (name.starts_with("x-amz-server-side-encryption-customer-")) co_return false;  // the backend's keys
  cache::SpoolUpload u;
  char id[40];
  std::snprintf(id, sizeof id, "%016llx%016llx", static_cast<unsigned long long>(rng_()),
                static_cast<unsigned long long>(rng_()));
  u.id = std::string(kSpoolUploadPrefix) + id;
  u.backend = static_cast<std::uint32_t>(x.policy->backend);
  u.bucket = x.backendBucket;
  u.key = x.routed.key;
  u.createdMs = nowMillis();
  // Part checksums are verified here as the parts arrive; the backend is not asked to expect any.
  for (const auto& [name, value] : x.headers)
    if (storedObjectHeader(name) && !name.starts_with("x-amz-checksum-")) u.headers.emplace_back(name, value);
  const std::string uploadId = u.id;
  if (auto begun = co_await opts_.writeBack->beginUpload(std::move(u)); !begun) {
    co_await sendError(x, begun.error());
    co_return true;
  }
  pugi::xml_document doc;
  auto root = newS3Document(doc, "InitiateMultipartUploadResult");
  root.append_child("Bucket").text() = x.routed.bucket.c_str();
  root.append_child("Key").text() = x.routed.key.c_str();
  root.append_child("UploadId").text() = uploadId.c_str();
  sigv4::HeaderList extra;
  if (const auto* alg = findHeader(x.headers, "x-amz-checksum-algorithm")) extra.emplace_back("x-amz-checksum-algorithm", *alg);
  co_await sendXml(x, doc, extra);
  co_return true;
}

http::Awaitable<void> ProxyHandler::spoolMultipart(Exchange& x, const VerifiedAuth& auth,
                                                   std::optional<std::uint64_t> payloadLength, BodyChecks checks,
                                                   const std::optional<CopySource>& copySource) {
  const std::string id = *findParam(x.routed.query, "uploadId");
  const auto u = opts_.writeBack->findUpload(id);
  if (!u || u->backend != x.policy->backend || u->bucket != x.backendBucket || u->key != x.routed.key) {
    if (!x.body.done()) x.out.closeAfterResponse();
    const S3Failure none{S3Error::NoSuchUpload, {}, {{"UploadId", id}}};
    co_return co_await sendError(x, none);
  }
  if (x.op == S3Op::UploadPart || x.op == S3Op::UploadPartCopy)
    co_return co_await spoolPart(x, u, auth, payloadLength, std::move(checks), copySource);
  if (x.op == S3Op::CompleteMultipartUpload)
    co_return co_await completeSpoolUpload(x, u, auth, payloadLength, std::move(checks));
  if (x.op == S3Op::ListParts) co_return co_await listSpoolParts(x, u);
  if (x.op == S3Op::AbortMultipartUpload) {
    if (auto aborted = co_await opts_.writeBack->abortUpload(id); !aborted)
      co_return co_await sendError(x, aborted.error());
    http::ResponseHeader h;
    h.result(bhttp::status::no_content);
    h.set("x-amz-request-id", x.requestId);
    x.status = 204;
    if (!co_await x.out.writeHeader(std::move(h))) co_await x.out.finish();
    co_return;
  }
  if (!x.body.done()) x.out.closeAfterResponse();
  const S3Failure unsupported{S3Error::NotImplemented,
                              "This operation is not supported on a multipart upload held by Granary's write-back spool.", {}};
  co_await sendError(x, unsupported);
}

http::Awaitable<void> ProxyHandler::spoolPart(Exchange& x, const cache::UploadPtr& u, const VerifiedAuth& auth,
                                              std::optional<std::uint64_t> payloadLength, BodyChecks checks,
                                              const std::optional<CopySource>& copySource) {
  WriteBackService& wb = *opts_.writeBack;
  const auto* partParam = findParam(x.routed.query, "partNumber");
  const auto number = partParam ? parseLength(*partParam) : std::nullopt;
  if (!number || *number < 1 || *number > 10000) {
    x.out.closeAfterResponse();
    std::string value;  // (named: GCC 12 destroys temporaries of a ?: inside a coroutine twice)
    if (partParam) value = *partParam;
    const S3Failure bad{S3Error::InvalidArgument, "Part number must be an integer between 1 and 10000, inclusive",
                        {{"ArgumentName", "partNumber"}, {"ArgumentValue", value}}};
    co_return co_await sendError(x, bad);
  }
  // The part's bytes: the client's body, or the copy source's (read at its backend, once any write of it
  // pending here has reached the backend).
  UpstreamResponsePtr source;
  std::uint64_t size = 0;
  if (copySource) {
    if (!co_await sourceUploaded(*copySource)) {
      const S3Failure busy{S3Error::SlowDown, "The copy source is still being written back to its backend.", {}};
      co_return co_await sendError(x, busy);
    }
    source = co_await readCopySource(x, *copySource);
    if (!source) co_return;
    size = *source->contentLength();
  } else if (payloadLength) {
    size = *payloadLength;
  } else {
    x.out.closeAfterResponse();
    const S3Failure bad{S3Error::MissingContentLength, {}, {}};
    co_return co_await sendError(x, bad);
  }
  std::optional<VerifiedBody> verified;
  std::optional<ResponseBody> copied;
  if (copySource) copied.emplace(*source);
  else verified.emplace(x.body, auth, payloadLength, std::move(checks));
  upstream::BodySource* src = verified ? static_cast<upstream::BodySource*>(&*verified) : &*copied;  // (pointers)
  auto stored = co_await wb.storeData(*src, size, buffers_);
  if (verified) x.bytesIn = verified->clientBytes();
  if (stored && !*stored) {
    // A part cannot fall back to the backend (the upload lives here): the client retries once the
    // uploader has made room.
    spdlog::warn("{} write-back spool full ({} of {} bytes pending): part {} of /{}/{} refused with SlowDown", x.requestId,
                 wb.spool().pendingBytes(), wb.spool().capacity(), *number, logSafe(x.routed.bucket), logSafe(x.routed.key));
    if (!copySource) x.out.closeAfterResponse();
    const S3Failure full{S3Error::SlowDown,
                         "Granary's write-back space is full; retry once pending uploads have reached the backend.", {}};
    co_return co_await sendError(x, full);
  }
  if (!stored) {
    x.out.closeAfterResponse();
    S3Failure failure = stored.error();
    if (failure.error == S3Error::IncompleteBody && verified)  // the body's own reason
      failure = verified->failure().value_or(failure);
    else if (failure.error == S3Error::IncompleteBody)
      failure = S3Failure{S3Error::ServiceUnavailable, "The copy source could not be read whole.", {}};
    co_return co_await sendError(x, failure);
  }
  cache::SpooledPart part;
  part.number = static_cast<std::uint32_t>(*number);
  part.seq = (*stored)->seq;
  part.size = size;
  part.etag = (*stored)->etag;
  part.createdMs = nowMillis();
  const std::string etag = part.etag;
  const std::int64_t created = part.createdMs;
  if (auto added = co_await wb.addPart(u->id, std::move(part)); !added) co_return co_await sendError(x, added.error());
  if (copySource) {
    pugi::xml_document doc;
    copyPartResult(doc, created, etag);
    const sigv4::HeaderList none;
    co_return co_await sendXml(x, doc, none);
  }
  http::ResponseHeader h = partUploaded(x.headers, x.requestId, etag, *verified);
  x.status = 200;
  if (!co_await x.out.writeHeader(std::move(h))) co_await x.out.finish();
}

http::Awaitable<void> ProxyHandler::completeSpoolUpload(Exchange& x, const cache::UploadPtr& u, const VerifiedAuth& auth,
                                                        std::optional<std::uint64_t> payloadLength, BodyChecks checks) {
  if (payloadLength && *payloadLength > kMaxRequestXml) {
    x.out.closeAfterResponse();
    const S3Failure bad{S3Error::MaxMessageLengthExceeded, {}, {}};
    co_return co_await sendError(x, bad);
  }
  VerifiedBody body(x.body, auth, payloadLength, std::move(checks));
  std::string xml;
  const ReadWhole got = co_await readWhole(body, payloadLength, kMaxRequestXml, xml);
  x.bytesIn = body.clientBytes();
  if (got != ReadWhole::Ok) {
    x.out.closeAfterResponse();
    S3Failure failure{S3Error::MaxMessageLengthExceeded, {}, {}};  // (no ?: of temporaries: GCC 12 coroutines)
    if (got != ReadWhole::TooLong) failure = body.failure().value_or(S3Failure{S3Error::IncompleteBody, {}, {}});
    co_return co_await sendError(x, failure);
  }
  if (auto bad = checkRequestXml(x.op, xml)) co_return co_await sendError(x, *bad);
  const auto listed = completeParts(xml);
  std::map<std::uint32_t, KnownPart> known;
  for (const auto& [n, part] : u->parts) known[n] = KnownPart{unquoteEtag(part.etag), part.size};
  if (auto bad = judgeComplete(u->id, listed, known)) co_return co_await sendError(x, *bad);

  cache::PendingWrite w = pendingOn(x, x.routed.key, 0);  // (numbered by the service)
  w.headers = u->headers;
  std::string md5s;
  for (const auto& [n, etag] : listed) {
    const auto& part = u->parts.at(n);
    w.parts.push_back(part);
    w.size += part.size;
    md5s += md5Bytes(part.etag);
  }
  Digest md5(Digest::Kind::Md5);
  md5.update(md5s);
  w.etag = "\"" + md5.finishHex() + "-" + std::to_string(listed.size()) + "\"";
  const std::string etag = w.etag;
  if (auto completed = co_await opts_.writeBack->completeUpload(u->id, std::move(w)); !completed)
    co_return co_await sendError(x, completed.error());
  invalidateForWrite(x, upstream::UpstreamRequest{});
  pugi::xml_document doc;
  auto root = newS3Document(doc, "CompleteMultipartUploadResult");
  std::string host;  // (from x.headers, not x.req: HTTP trailers land there; no ?: in a coroutine: GCC 12)
  if (const std::string* h = findHeader(x.headers, "host")) host = *h;
  root.append_child("Location").text() = ("http://" + host + "/" + x.routed.bucket + "/" + x.routed.key).c_str();
  root.append_child("Bucket").text() = x.routed.bucket.c_str();
  root.append_child("Key").text() = x.routed.key.c_str();
  root.append_child("ETag").text() = etag.c_str();
  const sigv4::HeaderList none;
  co_await sendXml(x, doc, none);
}

http::Awaitable<void> ProxyHandler::listSpoolParts(Exchange& x, const cache::UploadPtr& u) {
  const auto* maxParam = findParam(x.routed.query, "max-parts");
  const auto* markerParam = findParam(x.routed.query, "part-number-marker");
  const std::uint64_t maxParts = std::min<std::uint64_t>(maxParam ? parseLength(*maxParam).value_or(1000) : 1000, 1000);
  const std::uint64_t marker = markerParam ? parseLength(*markerParam).value_or(0) : 0;
  pugi::xml_document doc;
  auto root = newS3Document(doc, "ListPartsResult");
  root.append_child("Bucket").text() = x.routed.bucket.c_str();
  root.append_child("Key").text() = x.routed.key.c_str();
  root.append_child("UploadId").text() = u->id.c_str();
  appendOwner(root, "Initiator");
  appendOwner(root, "Owner");
  root.append_child("StorageClass").text() = "STANDARD";
  root.append_child("PartNumberMarker").text() = std::to_string(marker).c_str();
  auto next = root.append_child("NextPartNumberMarker");
  root.append_child("MaxParts").text() = std::to_string(maxParts).c_str();
  auto truncated = root.append_child("IsTruncated");
  std::uint64_t listed = 0, last = marker;
  bool more = false;
  for (auto it = u->parts.upper_bound(static_cast<std::uint32_t>(std::min<std::uint64_t>(marker, 10000)));
       it != u->parts.end(); ++it) {
    if (listed == maxParts) {
      more = true;
      break;
    }
    auto p = root.append_child("Part");
    p.append_child("PartNumber").text() = std::to_string(it->first).c_str();
    p.append_child("LastModified").text() = isoTime(it->second.createdMs).c_str();
    p.append_child("ETag").text() = it->second.etag.c_str();
    p.append_child("Size").text() = std::to_string(it->second.size).c_str();
    last = it->first;
    ++listed;
  }
  next.text() = std::to_string(last).c_str();
  truncated.text() = more ? "true" : "false";
  const sigv4::HeaderList none;
  co_await sendXml(x, doc, none);
}

http::Awaitable<void> ProxyHandler::relayUploadsWithSpool(Exchange& x, upstream::UpstreamResponse* resp) {
  // The backend's listing when it has one (s3rver answers NotImplemented; a backend that is down, none),
  // the spool's uploads added.
  pugi::xml_document doc;
  pugi::xml_node root;
  bool parsed = false;
  if (resp && resp->header().result_int() == 200) parsed = co_await readXml(*resp, 16 << 20, doc);  // (not in &&: GCC 12)
  if (parsed && std::string_view(doc.document_element().name()) == "ListMultipartUploadsResult") {
    root = doc.document_element();
    renameBucket(root, x.backendBucket, x.routed.bucket);
  } else {
    std::string ignored;
    if (resp) co_await readAll(*resp, 1 << 20, ignored);
    doc.reset();
    root = newS3Document(doc, "ListMultipartUploadsResult");
    root.append_child("Bucket").text() = x.routed.bucket.c_str();
    root.append_child("KeyMarker");
    root.append_child("UploadIdMarker");
    root.append_child("MaxUploads").text() = "1000";
    root.append_child("IsTruncated").text() = "false";
  }
  const auto* prefixParam = findParam(x.routed.query, "prefix");
  const auto* markerParam = findParam(x.routed.query, "key-marker");
  const std::string marker = markerParam ? *markerParam : std::string();
  const auto mine = opts_.writeBack->uploads(static_cast<std::uint32_t>(x.policy->backend), x.backendBucket,
                                             prefixParam ? *prefixParam : std::string());
  for (const auto& u : mine) {
    if (!marker.empty() && u->key <= marker) continue;
    auto el = root.append_child("Upload");
    el.append_child("Key").text() = u->key.c_str();
    el.append_child("UploadId").text() = u->id.c_str();
    appendOwner(el, "Initiator");
    appendOwner(el, "Owner");
    el.append_child("StorageClass").text() = "STANDARD";
    el.append_child("Initiated").text() = isoTime(u->createdMs).c_str();
  }
  const sigv4::HeaderList none;
  co_await sendXml(x, doc, none);
}

}  // namespace granary::s3api

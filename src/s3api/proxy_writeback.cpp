// Write-back buckets: a PUT is acknowledged once its bytes and its journal record are durable in the
// spool; the write-back service (writeback_service.h) owns the spool and uploads what is pending in the
// background. Until then reads, HEADs and listings through Granary see the pending state. This file holds
// the S3 side only: the thin calls into the service and the answers to clients.

#include <pugixml.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include "common/timeutil.h"
#include "common/log_escape.h"
#include "common/uri.h"
#include "s3api/local_bytes.h"

namespace granary::s3api {
namespace {

namespace bhttp = boost::beast::http;

/// Where part `number` of a pending write lies: a single PUT is its one part, a multipart upload's parts
/// are its spooled parts (their count shown). Not located when the number names no part.
PartLocation spooledPart(const cache::PendingWrite& p, const std::string* number) {
  PartLocation where;
  if (!p.parts.empty()) where.partsCount = static_cast<std::uint32_t>(p.parts.size());
  const std::uint64_t count = p.parts.empty() ? 1 : p.parts.size();
  const std::uint64_t n = number ? parseLength(*number).value_or(0) : 0;
  if (n < 1 || n > count) return where;
  if (p.parts.empty()) {
    where.range = ResolvedRange{0, p.size};
    return where;
  }
  std::uint64_t offset = 0;
  for (std::uint64_t i = 0; i + 1 < n; ++i) offset += p.parts[i].size;
  where.range = ResolvedRange{offset, p.parts[n - 1].size};
  return where;
}

}  // namespace

cache::PendingWrite ProxyHandler::pendingOn(const Exchange& x, const std::string& key, std::uint64_t seq) {
  cache::PendingWrite w;
  w.seq = seq;
  w.backend = static_cast<std::uint32_t>(x.policy->backend);
  w.bucket = x.backendBucket;
  w.key = key;
  w.createdMs = nowMillis();
  return w;
}

bool ProxyHandler::writesBack(const Exchange& x) const {
  // A tenant key's writes go through under its own credentials: the spool uploads with the backend's.
  return opts_.writeBack && x.policy && x.policy->writeMode == WriteMode::Back && !x.routed.bucket.empty() &&
         !(x.client && x.client->backendCredentials);
}

http::Awaitable<bool> ProxyHandler::putWriteBack(Exchange& x, const VerifiedAuth& auth,
                                                 std::optional<std::uint64_t> payloadLength, BodyChecks checks) {
  WriteBackService& wb = *opts_.writeBack;
  if (!payloadLength) co_return false;
  for (const auto& [name, value] : x.headers)
    if (name == "x-amz-copy-source" || name.starts_with("x-amz-server-side-encryption-customer-")) co_return false;
  VerifiedBody body(x.body, auth, payloadLength, std::move(checks));
  auto stored = co_await wb.storeData(body, *payloadLength, buffers_);
  x.bytesIn = body.clientBytes();
  if (stored && !*stored) {  // (nothing read yet: the body still goes to the backend)
    spdlog::warn("{} write-back spool full ({} of {} bytes pending) or stopping: /{}/{} is written through",
                 x.requestId, wb.spool().pendingBytes(), wb.spool().capacity(), logSafe(x.routed.bucket),
                 logSafe(x.routed.key));
    co_return false;
  }
  if (!stored) {
    x.out.closeAfterResponse();
    S3Failure failure = stored.error();
    if (failure.error == S3Error::IncompleteBody && body.failure()) failure = *body.failure();  // its own reason
    co_await sendError(x, failure);
    co_return true;
  }
  cache::PendingWrite w = pendingOn(x, x.routed.key, (*stored)->seq);
  w.size = (*stored)->size;
  w.etag = (*stored)->etag;
  for (const auto& [name, value] : x.headers)
    if (storedObjectHeader(name)) w.headers.emplace_back(name, value);
  if (const auto& trailer = body.verifiedTrailerChecksum()) w.headers.push_back(*trailer);
  const std::string etag = w.etag;
  if (auto committed = co_await wb.commit(std::move(w)); !committed) {
    co_await sendError(x, committed.error());
    co_return true;
  }
  invalidateForWrite(x, upstream::UpstreamRequest{});
  http::ResponseHeader h;
  h.result(bhttp::status::ok);
  h.set(bhttp::field::etag, etag);
  h.set("x-amz-request-id", x.requestId);
  h.set(bhttp::field::content_length, "0");
  x.status = 200;
  if (!co_await x.out.writeHeader(std::move(h))) co_await x.out.finish();
  co_return true;
}

http::Awaitable<bool> ProxyHandler::sourceUploaded(const CopySource& src) {
  if (!opts_.writeBack) co_return true;
  SpoolKey k{static_cast<std::uint32_t>(opts_.buckets->lookup(src.bucket).backend),
             std::string(opts_.buckets->backendBucket(src.bucket)), src.key};
  co_return co_await opts_.writeBack->waitUploaded(std::move(k));
}

http::Awaitable<void> ProxyHandler::deleteWriteBack(Exchange& x) {
  cache::PendingWrite w = pendingOn(x, x.routed.key, 0);  // (numbered by the service)
  w.isDelete = true;
  if (auto committed = co_await opts_.writeBack->commit(std::move(w)); !committed)
    co_return co_await sendError(x, committed.error());
  invalidateForWrite(x, upstream::UpstreamRequest{});
  http::ResponseHeader h;
  h.result(bhttp::status::no_content);
  h.set("x-amz-request-id", x.requestId);
  x.status = 204;
  if (!co_await x.out.writeHeader(std::move(h))) co_await x.out.finish();
}

http::Awaitable<void> ProxyHandler::supersedePending(const Exchange& x, const std::string& key) {
  SpoolKey k{static_cast<std::uint32_t>(x.policy->backend), x.backendBucket, key};
  co_await opts_.writeBack->supersede(std::move(k), nowMillis());
}

http::Awaitable<bool> ProxyHandler::serveWriteBack(Exchange& x) {
  cache::WriteBackSpool& spool = opts_.writeBack->spool();
  const auto p = spool.find(static_cast<std::uint32_t>(x.policy->backend), x.backendBucket, x.routed.key);
  if (!p || p->passThrough) co_return false;
  const bool head = x.req.method() == bhttp::verb::head;
  x.cacheStatus = "hit";
  if (p->isDelete) {
    if (head) {
      http::ResponseHeader h;
      h.result(bhttp::status::not_found);
      h.set("x-amz-request-id", x.requestId);
      x.status = 404;
      if (!co_await x.out.writeHeader(std::move(h))) co_await x.out.finish();
    } else {
      const S3Failure gone{S3Error::NoSuchKey, {}, {{"Key", x.routed.key}}};
      co_await sendError(x, gone);
    }
    co_return true;
  }
  // The object as S3 will describe it once uploaded: what was stored with it (not its checksums or tags:
  // a GET shows neither), a default type, its ETag, and the time of the write.
  sigv4::HeaderList stored;
  bool typed = false;
  for (const auto& [name, value] : p->headers) {
    if (name.starts_with("x-amz-checksum-") || name == "x-amz-tagging") continue;
    stored.emplace_back(name, value);
    typed = typed || name == "content-type";
  }
  if (!typed) stored.emplace_back("content-type", "binary/octet-stream");
  const auto written = std::chrono::system_clock::time_point(std::chrono::milliseconds(p->createdMs));
  stored.emplace_back("last-modified", formatHttpDate(written));
  const ObjectRequest req{head, x.accessKey.empty(), x.headers, x.routed.query};
  const ObjectFacts facts{p->size, p->etag, stored};
  const PartLocation part = spooledPart(*p, findParam(x.routed.query, "partNumber"));
  const S3Result<ObjectPlan> plan = planObject(req, facts, part);
  if (!plan) co_return co_await sendPlanError(x, plan.error());
  http::ResponseHeader h;
  if (opts_.cacheStatusHeader) h.set("x-granary-cache", "hit");
  SpoolFiles bytes(*this, p);
  co_return co_await servePlan(x, *plan, std::move(h), bytes);
}

std::vector<cache::PendingPtr> ProxyHandler::pendingListed(const Exchange& x) const {
  const auto* prefixParam = findParam(x.routed.query, "prefix");
  return opts_.writeBack->list(static_cast<std::uint32_t>(x.policy->backend), x.backendBucket,
                               prefixParam ? *prefixParam : std::string());
}

http::Awaitable<void> ProxyHandler::relayListingWithPending(Exchange& x, upstream::UpstreamResponse& resp,
                                                            std::vector<cache::PendingPtr> pending) {
  const auto* prefixParam = findParam(x.routed.query, "prefix");
  const std::string prefix = prefixParam ? *prefixParam : std::string();
  pugi::xml_document doc;
  if (!co_await readXml(resp, 64 << 20, doc)) {
    const S3Failure bad{S3Error::InternalError, "The backend's listing could not be read.", {}};
    co_return co_await sendError(x, bad);
  }
  auto root = doc.document_element();
  const auto* delimParam = findParam(x.routed.query, "delimiter");
  const std::string delimiter = delimParam ? *delimParam : std::string();
  const auto* enc = findParam(x.routed.query, "encoding-type");
  const bool urlEncoded = enc && *enc == "url";
  auto wire = [&](const std::string& k) { return urlEncoded ? uriEncode(k, false) : k; };
  // Keys are matched and ordered decoded: backends encode differently (RGW writes '/' as "%2F", this code
  // keeps it), and an encoded order is not the key order.
  auto plain = [&](const char* k) { return urlEncoded ? uriDecode(k).value_or(k) : std::string(k); };

  // The page as keys -> elements; pending operations applied up to the page's end when it is truncated.
  std::map<std::string, pugi::xml_node> contents;
  std::map<std::string, std::string> prefixes;  // decoded -> as sent
  for (auto c = root.child("Contents"); c; c = c.next_sibling("Contents")) contents[plain(c.child_value("Key"))] = c;
  for (auto c = root.child("CommonPrefixes"); c; c = c.next_sibling("CommonPrefixes"))
    prefixes.emplace(plain(c.child_value("Prefix")), c.child_value("Prefix"));
  const bool truncated = std::string_view(root.child_value("IsTruncated")) == "true";
  const std::string pageEnd = contents.empty() ? std::string() : contents.rbegin()->first;
  pugi::xml_document scratch;
  for (const auto& p : pending) {
    if (p->passThrough) continue;
    const std::string& k = p->key;
    if (truncated && k > pageEnd) continue;
    if (!delimiter.empty()) {
      const auto cut = p->key.find(delimiter, prefix.size());
      if (cut != std::string::npos) {
        const std::string cp = p->key.substr(0, cut + delimiter.size());
        if (!p->isDelete) prefixes.emplace(cp, wire(cp));
        continue;
      }
    }
    if (auto it = contents.find(k); it != contents.end()) {
      root.remove_child(it->second);
      contents.erase(it);
    }
    if (p->isDelete) continue;
    auto c = scratch.append_child("Contents");
    c.append_child("Key").text() = wire(k).c_str();
    c.append_child("LastModified").text() = formatIsoTime(std::chrono::system_clock::time_point(std::chrono::milliseconds(p->createdMs))).c_str();
    c.append_child("ETag").text() = p->etag.c_str();
    c.append_child("Size").text() = std::to_string(p->size).c_str();
    c.append_child("StorageClass").text() = "STANDARD";
    contents[k] = c;
  }
  // Rebuilt in key order.
  std::vector<pugi::xml_node> old;
  for (auto c = root.child("Contents"); c; c = c.next_sibling("Contents")) old.push_back(c);
  for (auto c = root.child("CommonPrefixes"); c; c = c.next_sibling("CommonPrefixes")) old.push_back(c);
  std::vector<std::pair<std::string, pugi::xml_node>> ordered(contents.begin(), contents.end());
  for (const auto& [k, node] : ordered) root.append_copy(node);
  for (auto& n : old) root.remove_child(n);
  for (const auto& [_, cp] : prefixes) root.append_child("CommonPrefixes").append_child("Prefix").text() = cp.c_str();
  renameBucket(root, x.backendBucket, x.routed.bucket);
  if (auto kc = root.child("KeyCount"))
    kc.text() = std::to_string(contents.size() + prefixes.size()).c_str();

  const sigv4::HeaderList none;
  co_await sendXml(x, doc, none);
}

}  // namespace granary::s3api

// Copies whose source bucket lives behind another backend than the target (CopyObject, UploadPartCopy):
// no backend can copy across, so Granary reads the source through its backend and writes it to the
// target's, streaming. Copies within one backend go to that backend as server-side copies, their
// x-amz-copy-source rewritten to the backend's bucket name.

#include <boost/beast/core/string.hpp>
#include <pugixml.hpp>
#include <spdlog/spdlog.h>


#include "common/timeutil.h"
#include "common/uri.h"
#include "s3api/exchange.h"

namespace granary::s3api {
namespace {

namespace bhttp = boost::beast::http;

/// Object headers a COPY metadata directive carries from the source to the target.
bool copiedHeader(std::string_view n) {
  return n == "content-type" || n == "content-encoding" || n == "content-disposition" || n == "content-language" ||
         n == "cache-control" || n == "expires" || n.starts_with("x-amz-meta-");
}

/// Headers of the client's copy request that describe the new object (REPLACE directive, or always).
bool targetHeader(std::string_view n) {
  return copiedHeader(n) || n == "x-amz-storage-class" || n == "x-amz-tagging" || n == "x-amz-acl" ||
         n.starts_with("x-amz-server-side-encryption") || n.starts_with("x-amz-object-lock-");
}

}  // namespace

std::optional<ProxyHandler::CopySource> ProxyHandler::parseCopySource(std::string_view v) {
  CopySource src;
  if (auto q = v.find('?'); q != std::string_view::npos) {
    std::string_view query = v.substr(q + 1);
    v = v.substr(0, q);
    if (!query.starts_with("versionId=")) return std::nullopt;
    auto vid = uriDecode(query.substr(10));
    if (!vid || vid->empty()) return std::nullopt;
    src.versionId = std::move(*vid);
  }
  if (v.starts_with('/')) v.remove_prefix(1);
  const auto slash = v.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == v.size()) return std::nullopt;
  auto bucket = uriDecode(v.substr(0, slash));
  auto key = uriDecode(v.substr(slash + 1));
  if (!bucket || !key) return std::nullopt;
  src.bucket = std::move(*bucket);
  src.key = std::move(*key);
  return src;
}

std::string ProxyHandler::copySourceHeader(const CopySource& src, std::string_view backendBucket) {
  std::string v = "/" + uriEncode(backendBucket, true) + "/" + uriEncode(src.key, false);
  if (!src.versionId.empty()) v += "?versionId=" + uriEncode(src.versionId, true);
  return v;
}

http::Awaitable<UpstreamResponsePtr> ProxyHandler::readCopySource(Exchange& x, const CopySource& src) {
  const BucketMap& map = *opts_.buckets;
  const BucketPolicy& sp = map.lookup(src.bucket);
  const bool part = x.op == S3Op::UploadPartCopy;
  // Read the source, its conditions as the backend's own.
  upstream::UpstreamRequest get;
  sigv4::HeaderList conditions;  // x-amz-copy-source-if-* as plain If-* headers
  get.method = bhttp::verb::get;
  get.bucket = std::string(map.backendBucket(src.bucket));
  get.key = src.key;
  if (!src.versionId.empty()) get.query.emplace_back("versionId", src.versionId);
  for (const auto& [name, value] : x.headers) {
    if (name.starts_with("x-amz-copy-source-if-")) conditions.emplace_back(name.substr(18), value);
    else if (name == "x-amz-copy-source-range" && part) get.headers.emplace_back("range", value);
  }
  get.headers.insert(get.headers.end(), conditions.begin(), conditions.end());
  auto source = co_await upstreamFor(x, sp.backend)->send(get);
  if (!source) {
    const S3Failure down{S3Error::ServiceUnavailable,
                         "The copy source's backend could not be reached: " + source.error().message(), {}};
    co_await sendError(x, down);
    co_return nullptr;
  }
  const auto& sh = (*source)->header();
  const unsigned sstatus = sh.result_int();
  // Checked here too: not every backend evaluates conditions (s3rver ignores If-Match).
  const bool conditionsHold = (sstatus != 200 && sstatus != 206) ||
                              evaluatePreconditions(conditions, sh[bhttp::field::etag],
                                                    parseHttpDate(sh[bhttp::field::last_modified])) == Precondition::Proceed;
  if (sstatus == 304 || sstatus == 412 || !conditionsHold) {
    const S3Failure failed{S3Error::PreconditionFailed, {}, {{"Condition", "x-amz-copy-source-If"}}};
    co_await sendError(x, failed);
    co_return nullptr;
  }
  if (sstatus != 200 && sstatus != 206) {  // NoSuchKey, AccessDenied...
    co_await relay(x, **source);
    co_return nullptr;
  }
  if (!(*source)->contentLength()) {
    const S3Failure bad{S3Error::NotImplemented, "The copy source's backend sent no Content-Length.", {}};
    co_await sendError(x, bad);
    co_return nullptr;
  }
  co_return std::move(*source);
}

http::Awaitable<void> ProxyHandler::copyAcrossBackends(Exchange& x, const CopySource& src) {
  const bool part = x.op == S3Op::UploadPartCopy;
  if (const auto* id = findParam(x.routed.query, "uploadId"); id && part) opts_.multipart->forget(*id);
  UpstreamResponsePtr source = co_await readCopySource(x, src);
  if (!source) co_return;
  const auto& sh = source->header();
  const auto length = source->contentLength();

  // Write it to the target's backend.
  upstream::UpstreamRequest put;
  put.method = bhttp::verb::put;
  put.bucket = x.backendBucket;
  put.key = x.routed.key;
  put.query = x.routed.query;
  put.retriable = false;
  const auto* directive = findHeader(x.headers, "x-amz-metadata-directive");
  const bool replace = directive && boost::beast::iequals(*directive, "REPLACE");
  if (!part) {
    if (!replace)
      for (const auto& f : sh)
        if (std::string name = lower(f.name_string()); copiedHeader(name)) put.headers.emplace_back(name, std::string(f.value()));
    for (const auto& [name, value] : x.headers)
      if (targetHeader(name) && (replace || !copiedHeader(name))) put.headers.emplace_back(name, value);
  }
  ResponseBody body(*source);
  put.source = &body;
  put.contentLength = length;
  put.payloadHash = std::string(sigv4::kUnsignedPayload);
  invalidateForWrite(x, put);
  auto written = co_await x.upstream->send(put);
  invalidateForWrite(x, put);
  if (peers_ && written && (*written)->header().result_int() < 300) co_await invalidateOnOwners(x, put);
  if (!written) {
    const S3Failure failure = upstreamFailure(written.error());
    co_return co_await sendError(x, failure);
  }
  const auto& wh = (*written)->header();
  if (wh.result_int() != 200) co_return co_await relay(x, **written);
  std::string ignored;
  (void)co_await readAll(**written, 64 * 1024, ignored);

  pugi::xml_document doc;
  auto root = newS3Document(doc, part ? "CopyPartResult" : "CopyObjectResult");
  root.append_child("LastModified").text() = formatIsoTime(std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now())).c_str();
  root.append_child("ETag").text() = std::string(wh[bhttp::field::etag]).c_str();
  sigv4::HeaderList extra;
  if (const auto vid = sh["x-amz-version-id"]; !vid.empty()) extra.emplace_back("x-amz-copy-source-version-id", std::string(vid));
  if (const auto vid = wh["x-amz-version-id"]; !vid.empty()) extra.emplace_back("x-amz-version-id", std::string(vid));
  x.bytesIn = *length;
  co_await sendXml(x, doc, extra);
}

}  // namespace granary::s3api

// Write-back buckets: a PUT is acknowledged once its bytes and its journal record are durable in the
// spool; the write-back service (writeback_service.h) owns the spool and uploads what is pending in the
// background. Until then reads, HEADs and listings through Granary see the pending state. This file holds
// the S3 side only: the thin calls into the service and the answers to clients.

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/random_access_file.hpp>
#include <boost/asio/stream_file.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <pugixml.hpp>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include "common/timeutil.h"
#include "common/log_escape.h"
#include "common/uri.h"
#include "s3api/exchange.h"

namespace granary::s3api {
namespace {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

std::string contentRange(std::uint64_t offset, std::uint64_t length, std::uint64_t size) {
  return "bytes " + std::to_string(offset) + "-" + std::to_string(offset + length - 1) + "/" + std::to_string(size);
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
  const auto lastModified = std::chrono::system_clock::time_point(std::chrono::milliseconds(p->createdMs));
  const Precondition pre = evaluatePreconditions(x.headers, p->etag,
                                                 std::chrono::floor<std::chrono::seconds>(lastModified));
  if (pre == Precondition::Failed) {
    const S3Failure failed{S3Error::PreconditionFailed, {}, {}};
    co_await sendError(x, failed);
    co_return true;
  }
  http::ResponseHeader h;
  bool typed = false;
  for (const auto& [name, value] : p->headers) {
    if (name.starts_with("x-amz-checksum-") || name == "x-amz-tagging") continue;
    h.insert(name, value);
    typed = typed || name == "content-type";
  }
  if (!typed) h.set(bhttp::field::content_type, "binary/octet-stream");
  h.set(bhttp::field::etag, p->etag);
  h.set(bhttp::field::last_modified, formatHttpDate(lastModified));
  h.set(bhttp::field::accept_ranges, "bytes");
  h.set("x-amz-request-id", x.requestId);
  if (opts_.cacheStatusHeader) h.set("x-granary-cache", "hit");
  if (pre == Precondition::NotModified) {
    h.result(bhttp::status::not_modified);
    x.status = 304;
    if (!co_await x.out.writeHeader(std::move(h))) co_await x.out.finish();
    co_return true;
  }
  std::uint64_t offset = 0, length = p->size;
  h.result(bhttp::status::ok);
  const auto* rh = findHeader(x.headers, "range");
  ByteRange br;
  if (const auto* partParam = findParam(x.routed.query, "partNumber")) {
    // A part of a multipart object is its byte range; a single PUT has part 1 only. (forward() refused
    // a number outside 1-10000 and a Range beside it: checkRequest.)
    const std::uint64_t n = parseLength(*partParam).value_or(0);
    const std::uint64_t count = p->parts.empty() ? 1 : p->parts.size();
    if (n < 1 || n > count) {
      const S3Failure bad{S3Error::InvalidPartNumber, {}, {{"PartNumberRequested", *partParam}, {"ActualPartCount", std::to_string(count)}}};
      co_await sendError(x, bad);
      co_return true;
    }
    if (!p->parts.empty()) {
      for (std::uint64_t i = 0; i + 1 < n; ++i) offset += p->parts[i].size;
      length = p->parts[n - 1].size;
      h.set("x-amz-mp-parts-count", std::to_string(count));
    }
    h.result(bhttp::status::partial_content);
    h.set(bhttp::field::content_range, contentRange(offset, length, p->size));
  } else if (rh && parseRange(*rh, br) == RangeParse::Ok) {
    const auto rr = resolveRange(br, p->size);
    if (!rr) {
      const S3Failure bad{S3Error::InvalidRange, {}, {{"RangeRequested", *rh}, {"ActualObjectSize", std::to_string(p->size)}}};
      const std::string contentRange = "bytes */" + std::to_string(p->size);  // (named: GCC 12 coroutines)
      co_await sendError(x, bad, contentRange);
      co_return true;
    }
    offset = rr->offset;
    length = rr->length;
    h.result(bhttp::status::partial_content);
    h.set(bhttp::field::content_range, contentRange(offset, length, p->size));
  }
  h.set(bhttp::field::content_length, std::to_string(length));
  // The data files holding [offset, offset + length): the object's own, or its parts'.
  struct Piece {
    std::uint64_t seq, size;
  };
  std::vector<Piece> pieces;
  if (p->parts.empty()) pieces.push_back({p->seq, p->size});
  for (const auto& part : p->parts) pieces.push_back({part.seq, part.size});
  // Opened before the header goes out: a file gone means the upload finished and dropped it meanwhile
  // (the backend has the object now), and the request can still go there.
  std::vector<std::unique_ptr<asio::random_access_file>> files;
  if (!head) {
    std::uint64_t at = 0;
    for (const auto& piece : pieces) {
      files.emplace_back();
      if (at + piece.size > offset && at < offset + length) {
        const int fd = co_await spool.openData(piece.seq, false);
        if (fd < 0) co_return false;
        // A data file of another size than its journal record says (a damaged disk) is never served:
        // a short file would cut the body after the header promised its length.
        struct stat st {};
        if (::fstat(fd, &st) != 0 || static_cast<std::uint64_t>(st.st_size) != piece.size) {
          ::close(fd);
          spdlog::error("{} write-back: {} holds {} bytes, its journal record says {}", x.requestId,
                        spool.dataPath(piece.seq), static_cast<long long>(st.st_size), piece.size);
          const S3Failure bad{S3Error::InternalError, "The write-back spool's copy of this object is damaged.", {}};
          co_await sendError(x, bad);
          co_return true;
        }
        files.back() = std::make_unique<asio::random_access_file>(co_await asio::this_coro::executor);
        boost::system::error_code ec;
        files.back()->assign(fd, ec);
      }
      at += piece.size;
    }
  }
  x.status = h.result_int();
  if (co_await x.out.writeHeader(std::move(h))) co_return true;
  if (!head) {
    BufferPool::Lease buf(buffers_);
    std::uint64_t at = 0;  // where pieces[i] starts in the object
    for (std::size_t i = 0; i < pieces.size() && length > 0; at += pieces[i].size, ++i) {
      if (at + pieces[i].size <= offset) continue;
      while (length > 0 && offset < at + pieces[i].size) {
        const std::uint64_t inPiece = at + pieces[i].size - offset;
        const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>({buf.size(), length, inPiece}));
        auto [rec, n] = co_await files[i]->async_read_some_at(offset - at, asio::buffer(buf.data(), want), kTuple);
        if (rec || n == 0) {
          spdlog::error("{} write-back: reading {} failed: {}", x.requestId, spool.dataPath(pieces[i].seq),
                        rec ? rec.message() : "end of file");
          x.errorCode = "SpoolReadFailed";
          co_return true;  // the header went out: cutting the connection is the honest signal
        }
        if (co_await x.out.writeBody(asio::buffer(buf.data(), n))) {
          x.errorCode = "ClientGone";
          co_return true;
        }
        offset += n;
        length -= n;
        x.bytesOut += n;
      }
    }
  }
  co_await x.out.finish();
  co_return true;
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

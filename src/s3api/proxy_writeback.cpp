// Write-back buckets: a PUT is acknowledged once its bytes and its journal record are durable in the
// spool (cache::WriteBackSpool); the uploader sends spooled operations to the backend in order, with
// retries and backoff. Until then reads, HEADs and listings through Granary see the pending state.

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

#include <algorithm>
#include <map>
#include <set>

#include "common/timeutil.h"
#include "common/uri.h"
#include "s3api/exchange.h"

namespace granary::s3api {
namespace {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

/// Request headers that describe the object a PUT creates (kept with a spooled write, sent on upload).
bool storedHeader(std::string_view n) {
  return n == "content-type" || n == "content-disposition" || n == "content-language" || n == "cache-control" ||
         n == "expires" || n == "x-amz-storage-class" || n == "x-amz-tagging" || n == "x-amz-website-redirect-location" ||
         n.starts_with("x-amz-meta-") || n.starts_with("x-amz-checksum-");
}

/// A spooled object's data as an upload body.
class SpoolBody final : public upstream::BodySource {
 public:
  SpoolBody(asio::random_access_file& f, std::uint64_t size) : f_(f), left_(size) {}
  upstream::Awaitable<boost::system::result<std::size_t>> read(asio::mutable_buffer buf) override {
    started_ = true;
    if (left_ == 0) co_return std::size_t{0};
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), left_));
    auto [ec, n] = co_await f_.async_read_some_at(offset_, asio::buffer(buf.data(), want), kTuple);
    if (ec || n == 0) co_return ec ? ec : make_error_code(asio::error::eof);
    offset_ += n;
    left_ -= n;
    co_return n;
  }
  bool started() const override { return started_; }

 private:
  asio::random_access_file& f_;
  std::uint64_t offset_ = 0;
  std::uint64_t left_;
  bool started_ = false;
};

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
  return opts_.writeBack && x.policy && x.policy->writeMode == WriteMode::Back && !x.routed.bucket.empty();
}

void ProxyHandler::startUploader(asio::any_io_executor ex) {
  if (!opts_.writeBack) return;
  uploaderTimer_ = std::make_unique<asio::steady_timer>(ex);
  asio::co_spawn(ex, uploader(), asio::detached);
}

http::Awaitable<bool> ProxyHandler::putWriteBack(Exchange& x, const VerifiedAuth& auth,
                                                 std::optional<std::uint64_t> payloadLength, BodyChecks checks) {
  cache::WriteBackSpool& spool = *opts_.writeBack;
  if (!payloadLength) co_return false;
  for (const auto& [name, value] : x.headers)
    if (name == "x-amz-copy-source" || name.starts_with("x-amz-server-side-encryption-customer-")) co_return false;
  const auto seq = spool.reserve(*payloadLength);
  if (!seq) {
    spdlog::warn("{} write-back spool full ({} of {} bytes pending): /{}/{} is written through", x.requestId,
                 spool.pendingBytes(), spool.capacity(), x.routed.bucket, x.routed.key);
    co_return false;
  }
  const int fd = co_await spool.openData(*seq, true);
  if (fd < 0) {
    spool.release(*seq, *payloadLength);
    spdlog::error("write-back: cannot create {}: {}", spool.dataPath(*seq), std::strerror(errno));
    co_return false;
  }
  asio::stream_file file(co_await asio::this_coro::executor);
  boost::system::error_code ec;
  file.assign(fd, ec);
  VerifiedBody body(x.body, auth, payloadLength, std::move(checks));
  Digest md5(Digest::Kind::Md5);
  BufferPool::Lease buf(buffers_);
  std::optional<S3Failure> failure;
  for (;;) {
    auto n = co_await body.read(asio::buffer(buf.data(), buf.size()));
    if (!n) {
      failure = body.failure().value_or(S3Failure{S3Error::IncompleteBody, {}, {}});
      x.out.closeAfterResponse();
      break;
    }
    if (*n == 0) break;
    md5.update(buf.data(), *n);
    auto [wec, written] = co_await asio::async_write(file, asio::buffer(buf.data(), *n), kTuple);
    if (wec) {
      spdlog::error("write-back: writing {} failed: {}", spool.dataPath(*seq), wec.message());
      failure = S3Failure{S3Error::InternalError, "The write-back spool could not store the object.", {}};
      x.out.closeAfterResponse();
      break;
    }
  }
  file.close(ec);
  x.bytesIn = body.clientBytes();
  if (failure) {
    spool.release(*seq, *payloadLength);
    co_await sendError(x, *failure);
    co_return true;
  }
  cache::PendingWrite w = pendingOn(x, x.routed.key, *seq);
  w.size = *payloadLength;
  w.etag = "\"" + md5.finishHex() + "\"";
  for (const auto& [name, value] : x.headers)
    if (storedHeader(name)) w.headers.emplace_back(name, value);
  if (const auto* trailers = body.trailers())
    for (const auto& [name, value] : *trailers)
      if (name.starts_with("x-amz-checksum-")) w.headers.emplace_back(name, value);
  const std::string etag = w.etag;
  if (!co_await spool.commit(std::move(w))) {
    const S3Failure bad{S3Error::InternalError, "The write-back spool could not make the object durable.", {}};
    co_await sendError(x, bad);
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

http::Awaitable<void> ProxyHandler::deleteWriteBack(Exchange& x) {
  cache::WriteBackSpool& spool = *opts_.writeBack;
  cache::PendingWrite w = pendingOn(x, x.routed.key, *spool.reserve(0));
  w.isDelete = true;
  if (!co_await spool.commit(std::move(w))) {
    const S3Failure bad{S3Error::InternalError, "The write-back spool could not record the delete.", {}};
    co_return co_await sendError(x, bad);
  }
  invalidateForWrite(x, upstream::UpstreamRequest{});
  http::ResponseHeader h;
  h.result(bhttp::status::no_content);
  h.set("x-amz-request-id", x.requestId);
  x.status = 204;
  if (!co_await x.out.writeHeader(std::move(h))) co_await x.out.finish();
}

http::Awaitable<void> ProxyHandler::supersedePending(const Exchange& x, const std::string& key) {
  cache::WriteBackSpool& spool = *opts_.writeBack;
  const auto backend = static_cast<std::uint32_t>(x.policy->backend);
  if (auto p = spool.find(backend, x.backendBucket, key); p && !p->passThrough) {
    cache::PendingWrite w = pendingOn(x, key, *spool.reserve(0));
    w.passThrough = true;
    co_await spool.commit(std::move(w));
  }
  // An upload of the key already on its way must land before this write does.
  asio::steady_timer wait(co_await asio::this_coro::executor);
  for (int i = 0; i < 6000 && spool.uploading(backend, x.backendBucket, key); ++i) {
    wait.expires_after(std::chrono::milliseconds(10));
    co_await wait.async_wait(kTuple);
  }
}

http::Awaitable<bool> ProxyHandler::serveWriteBack(Exchange& x) {
  cache::WriteBackSpool& spool = *opts_.writeBack;
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
  if (const auto* rh = findHeader(x.headers, "range")) {
    ByteRange br;
    if (parseRange(*rh, br) == RangeParse::Ok) {
      const auto rr = resolveRange(br, p->size);
      if (!rr) {
        const S3Failure bad{S3Error::InvalidRange, {}, {{"RangeRequested", *rh}, {"ActualObjectSize", std::to_string(p->size)}}};
        co_await sendError(x, bad, "bytes */" + std::to_string(p->size));
        co_return true;
      }
      offset = rr->offset;
      length = rr->length;
      h.result(bhttp::status::partial_content);
      h.set(bhttp::field::content_range, "bytes " + std::to_string(offset) + "-" + std::to_string(offset + length - 1) +
                                             "/" + std::to_string(p->size));
    }
  }
  h.set(bhttp::field::content_length, std::to_string(length));
  const int fd = head ? -1 : co_await spool.openData(p->seq, false);
  if (!head && fd < 0) co_return false;  // uploaded and dropped meanwhile: the backend has it now
  x.status = h.result_int();
  asio::random_access_file file(co_await asio::this_coro::executor);
  boost::system::error_code ec;
  if (fd >= 0) file.assign(fd, ec);
  if (co_await x.out.writeHeader(std::move(h))) co_return true;
  if (!head) {
    BufferPool::Lease buf(buffers_);
    while (length > 0) {
      const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), length));
      auto [rec, n] = co_await file.async_read_some_at(offset, asio::buffer(buf.data(), want), kTuple);
      if (rec || n == 0) {
        spdlog::error("{} write-back: reading {} failed: {}", x.requestId, spool.dataPath(p->seq), rec.message());
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
  co_await x.out.finish();
  co_return true;
}

http::Awaitable<void> ProxyHandler::relayListingWithPending(Exchange& x, upstream::UpstreamResponse& resp) {
  const auto* prefixParam = findParam(x.routed.query, "prefix");
  const std::string prefix = prefixParam ? *prefixParam : std::string();
  const auto pending =
      opts_.writeBack->list(static_cast<std::uint32_t>(x.policy->backend), x.backendBucket, prefix);
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

  // The page as keys -> elements; pending operations applied up to the page's end when it is truncated.
  std::map<std::string, pugi::xml_node> contents;
  std::set<std::string> prefixes;
  for (auto c = root.child("Contents"); c; c = c.next_sibling("Contents")) contents[c.child_value("Key")] = c;
  for (auto c = root.child("CommonPrefixes"); c; c = c.next_sibling("CommonPrefixes")) prefixes.insert(c.child_value("Prefix"));
  const bool truncated = std::string_view(root.child_value("IsTruncated")) == "true";
  const std::string pageEnd = contents.empty() ? std::string() : contents.rbegin()->first;
  pugi::xml_document scratch;
  for (const auto& p : pending) {
    if (p->passThrough) continue;
    const std::string k = wire(p->key);
    if (truncated && k > pageEnd) continue;
    if (!delimiter.empty()) {
      const auto cut = p->key.find(delimiter, prefix.size());
      if (cut != std::string::npos) {
        if (!p->isDelete) prefixes.insert(wire(p->key.substr(0, cut + delimiter.size())));
        continue;
      }
    }
    if (auto it = contents.find(k); it != contents.end()) {
      root.remove_child(it->second);
      contents.erase(it);
    }
    if (p->isDelete) continue;
    auto c = scratch.append_child("Contents");
    c.append_child("Key").text() = k.c_str();
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
  for (const auto& cp : prefixes) root.append_child("CommonPrefixes").append_child("Prefix").text() = cp.c_str();
  renameBucket(root, x.backendBucket, x.routed.bucket);
  if (auto kc = root.child("KeyCount"))
    kc.text() = std::to_string(contents.size() + prefixes.size()).c_str();

  const sigv4::HeaderList none;
  co_await sendXml(x, doc, none);
}

http::Awaitable<bool> ProxyHandler::upload(const cache::PendingWrite& w) {
  upstream::Upstream& up = *upstreams_.at(w.backend);
  upstream::UpstreamRequest r;
  r.bucket = w.bucket;
  r.key = w.key;
  if (w.isDelete) {
    r.method = bhttp::verb::delete_;
    auto resp = co_await up.send(r);
    if (!resp) co_return false;
    const unsigned status = (*resp)->header().result_int();
    std::string ignored;
    co_await readAll(**resp, 64 * 1024, ignored);
    co_return status == 204 || status == 200 || status == 404;
  }
  const int fd = co_await opts_.writeBack->openData(w.seq, false);
  if (fd < 0) {
    spdlog::error("write-back: the data of /{}/{} ({}) cannot be opened", w.bucket, w.key, opts_.writeBack->dataPath(w.seq));
    co_return false;
  }
  asio::random_access_file file(co_await asio::this_coro::executor);
  boost::system::error_code ec;
  file.assign(fd, ec);
  SpoolBody body(file, w.size);
  r.method = bhttp::verb::put;
  r.headers = w.headers;
  r.contentLength = w.size;
  r.payloadHash = std::string(sigv4::kUnsignedPayload);
  r.source = &body;
  auto resp = co_await up.send(r);
  if (!resp) {
    spdlog::warn("write-back: uploading /{}/{} failed: {}", w.bucket, w.key, resp.error().message());
    co_return false;
  }
  const auto& h = (*resp)->header();
  const unsigned status = h.result_int();
  const std::string etag(h[bhttp::field::etag]);
  std::string answer;
  co_await readAll(**resp, 64 * 1024, answer);
  if (status != 200) {
    spdlog::warn("write-back: uploading /{}/{}: the backend answered {}: {}", w.bucket, w.key, status, answer.substr(0, 300));
    co_return false;
  }
  if (!etag.empty() && etag != w.etag)
    spdlog::warn("write-back: /{}/{} was acknowledged with ETag {} but the backend assigned {}", w.bucket, w.key, w.etag, etag);
  co_return true;
}

http::Awaitable<void> ProxyHandler::uploader() {
  cache::WriteBackSpool& spool = *opts_.writeBack;
  asio::steady_timer& timer = *uploaderTimer_;
  const auto first = std::chrono::milliseconds(200);
  auto backoff = first;
  std::uint64_t failures = 0;
  while (!stopping_) {
    const cache::PendingPtr p = spool.next();
    if (!p) {
      timer.expires_after(std::chrono::milliseconds(50));
      co_await timer.async_wait(kTuple);
      continue;
    }
    const bool ok = p->passThrough || co_await upload(*p);
    if (ok) {
      co_await spool.complete(p);
      if (cache_)  // what the cache holds for the key predates this write
        cache_->cache().invalidateMeta(metaKeyOf(opts_.buckets->backendId(p->backend), p->bucket, p->key, {}));
      if (failures > 0) spdlog::info("write-back: uploads resumed after {} failed attempts", failures);
      backoff = first;
      failures = 0;
      continue;
    }
    spool.failed(p);
    if (++failures == 1 || failures % 10 == 0)
      spdlog::warn("write-back: {} pending ({} bytes); upload attempt {} failed, retrying in {} ms", spool.pendingObjects(),
                   spool.pendingBytes(), failures, backoff.count());
    timer.expires_after(backoff);
    co_await timer.async_wait(kTuple);
    backoff = std::min<std::chrono::milliseconds>(backoff * 2, opts_.uploadRetryMax);
  }
}

}  // namespace granary::s3api

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
#include <sstream>

#include "common/timeutil.h"
#include "common/log_escape.h"
#include "common/uri.h"
#include "s3api/local_bytes.h"

namespace granary::s3api {
namespace {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

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
                 spool.pendingBytes(), spool.capacity(), logSafe(x.routed.bucket), logSafe(x.routed.key));
    co_return false;
  }
  const int fd = co_await spool.openData(*seq, true);
  if (fd < 0) {
    spool.release(*seq, *payloadLength);
    spdlog::error("write-back: cannot create {}: {}", spool.dataPath(*seq), std::strerror(errno));
    co_return false;
  }
  VerifiedBody body(x.body, auth, payloadLength, std::move(checks));
  Digest md5(Digest::Kind::Md5);
  std::uint64_t written = 0;
  const SpoolResult stored = co_await spoolData(body, fd, md5, written);
  x.bytesIn = body.clientBytes();
  if (stored != SpoolResult::Ok) {
    spool.release(*seq, *payloadLength);
    x.out.closeAfterResponse();
    // (Named, then assigned: GCC 12 destroys temporaries of a ?: inside a coroutine twice.)
    S3Failure failure{S3Error::InternalError, "The write-back spool could not store the object.", {}};
    if (stored == SpoolResult::ReadFailed) failure = body.failure().value_or(S3Failure{S3Error::IncompleteBody, {}, {}});
    co_await sendError(x, failure);
    co_return true;
  }
  cache::PendingWrite w = pendingOn(x, x.routed.key, *seq);
  w.size = *payloadLength;
  w.etag = "\"" + md5.finishHex() + "\"";
  for (const auto& [name, value] : x.headers)
    if (storedObjectHeader(name)) w.headers.emplace_back(name, value);
  if (const auto& trailer = body.verifiedTrailerChecksum()) w.headers.push_back(*trailer);
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

http::Awaitable<ProxyHandler::SpoolResult> ProxyHandler::spoolData(upstream::BodySource& src, int fd, Digest& md5,
                                                                   std::uint64_t& written) {
  asio::stream_file file(co_await asio::this_coro::executor);
  boost::system::error_code ec;
  file.assign(fd, ec);
  BufferPool::Lease buf(buffers_);
  SpoolResult result = SpoolResult::Ok;
  for (;;) {
    auto n = co_await src.read(asio::buffer(buf.data(), buf.size()));
    if (!n) {
      result = SpoolResult::ReadFailed;
      break;
    }
    if (*n == 0) break;
    md5.update(buf.data(), *n);
    auto [wec, ignored] = co_await asio::async_write(file, asio::buffer(buf.data(), *n), kTuple);
    if (wec) {
      spdlog::error("write-back: writing to {} failed: {}", opts_.writeBack->dir(), wec.message());
      result = SpoolResult::WriteFailed;
      break;
    }
    written += *n;
  }
  file.close(ec);
  co_return result;
}

http::Awaitable<bool> ProxyHandler::sourceUploaded(const CopySource& src) {
  if (!opts_.writeBack) co_return true;
  const BucketPolicy& sp = opts_.buckets->lookup(src.bucket);
  const auto backend = static_cast<std::uint32_t>(sp.backend);
  const std::string bucket(opts_.buckets->backendBucket(src.bucket));
  asio::steady_timer wait(co_await asio::this_coro::executor);
  for (int i = 0; i < 6000; ++i) {
    const auto p = opts_.writeBack->find(backend, bucket, src.key);
    if (!p || p->passThrough) co_return true;
    wait.expires_after(std::chrono::milliseconds(10));
    co_await wait.async_wait(kTuple);
  }
  co_return false;
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
  if (!w.parts.empty()) co_return co_await uploadMultipart(w);
  r.method = bhttp::verb::put;
  r.headers = w.headers;
  const auto etag = co_await sendSpoolFile(up, r, w.seq, w.size);
  if (etag && !etag->empty() && *etag != w.etag)
    spdlog::warn("write-back: /{}/{} was acknowledged with ETag {} but the backend assigned {}", logSafe(w.bucket), logSafe(w.key),
                 w.etag, logSafe(*etag));
  co_return etag.has_value();
}

http::Awaitable<std::optional<std::string>> ProxyHandler::sendSpoolFile(upstream::Upstream& up, upstream::UpstreamRequest& r,
                                                                        std::uint64_t seq, std::uint64_t size) {
  const int fd = co_await opts_.writeBack->openData(seq, false);
  if (fd < 0) {
    spdlog::error("write-back: the data of /{}/{} ({}) cannot be opened", logSafe(r.bucket), logSafe(r.key),
                  opts_.writeBack->dataPath(seq));
    co_return std::nullopt;
  }
  asio::random_access_file file(co_await asio::this_coro::executor);
  boost::system::error_code ec;
  file.assign(fd, ec);
  SpoolBody body(file, size);
  r.contentLength = size;
  r.payloadHash = std::string(sigv4::kUnsignedPayload);
  r.source = &body;
  auto resp = co_await up.send(r);
  r.source = nullptr;
  if (!resp) {
    spdlog::warn("write-back: uploading /{}/{} failed: {}", logSafe(r.bucket), logSafe(r.key), resp.error().message());
    co_return std::nullopt;
  }
  const auto& h = (*resp)->header();
  const unsigned status = h.result_int();
  std::string etag(h[bhttp::field::etag]);
  std::string answer;
  co_await readAll(**resp, 64 * 1024, answer);
  if (status != 200) {
    spdlog::warn("write-back: uploading /{}/{}: the backend answered {}: {}", logSafe(r.bucket), logSafe(r.key), status,
                 logSafe(answer.substr(0, 300)));
    co_return std::nullopt;
  }
  co_return etag;
}

http::Awaitable<bool> ProxyHandler::uploadMultipart(const cache::PendingWrite& w) {
  // The same parts, so that the backend assigns the ETag the client was given.
  upstream::Upstream& up = *upstreams_.at(w.backend);
  upstream::UpstreamRequest create;
  create.method = bhttp::verb::post;
  create.bucket = w.bucket;
  create.key = w.key;
  create.query.emplace_back("uploads", "");
  for (const auto& [name, value] : w.headers)
    if (!name.starts_with("x-amz-checksum-")) create.headers.emplace_back(name, value);  // parts were verified here
  create.contentLength = 0;
  create.payloadHash = std::string(kEmptySha256Hex);
  auto created = co_await up.send(create);
  if (!created) {
    spdlog::warn("write-back: starting the upload of /{}/{} failed: {}", logSafe(w.bucket), logSafe(w.key),
                 created.error().message());
    co_return false;
  }
  pugi::xml_document doc;
  const unsigned createStatus = (*created)->header().result_int();
  const bool read = co_await readXml(**created, 64 * 1024, doc);
  const std::string uploadId = read ? doc.document_element().child_value("UploadId") : std::string();
  if (createStatus != 200 || uploadId.empty()) {
    spdlog::warn("write-back: starting the upload of /{}/{}: the backend answered {}", logSafe(w.bucket), logSafe(w.key),
                 createStatus);
    co_return false;
  }
  pugi::xml_document complete;
  auto root = complete.append_child("CompleteMultipartUpload");
  bool ok = true;
  for (const auto& part : w.parts) {
    upstream::UpstreamRequest r;
    r.method = bhttp::verb::put;
    r.bucket = w.bucket;
    r.key = w.key;
    r.query = {{"partNumber", std::to_string(part.number)}, {"uploadId", uploadId}};
    const auto etag = co_await sendSpoolFile(up, r, part.seq, part.size);
    if (!etag) {
      ok = false;
      break;
    }
    auto el = root.append_child("Part");
    el.append_child("PartNumber").text() = std::to_string(part.number).c_str();
    el.append_child("ETag").text() = (etag->empty() ? part.etag : *etag).c_str();
  }
  if (ok) {
    upstream::UpstreamRequest r;
    r.method = bhttp::verb::post;
    r.bucket = w.bucket;
    r.key = w.key;
    r.query = {{"uploadId", uploadId}};
    std::ostringstream os;
    complete.save(os, "", pugi::format_raw);
    r.bufferedBody = os.str();
    r.contentLength = r.bufferedBody.size();
    r.payloadHash = sha256Hex(r.bufferedBody);
    auto done = co_await up.send(r);
    pugi::xml_document answer;
    const unsigned status = done ? (*done)->header().result_int() : 0;
    // (S3 can answer 200 with an Error document when a Complete fails late.)
    bool parsed = false;
    if (done) parsed = co_await readXml(**done, 1 << 20, answer);  // (not inside &&: GCC 12 coroutines)
    ok = parsed && status == 200 && std::string_view(answer.document_element().name()) == "CompleteMultipartUploadResult";
    if (ok) {
      const std::string etag = answer.document_element().child_value("ETag");
      if (!etag.empty() && etag != w.etag)
        spdlog::warn("write-back: /{}/{} was acknowledged with ETag {} but the backend assigned {}", logSafe(w.bucket),
                     logSafe(w.key), w.etag, logSafe(etag));
    } else {
      spdlog::warn("write-back: completing the upload of /{}/{} failed ({})", logSafe(w.bucket), logSafe(w.key),
                   done ? std::to_string(status) : done.error().message());
    }
  }
  if (!ok) {  // the next attempt starts over; this one's parts are dropped
    upstream::UpstreamRequest abort;
    abort.method = bhttp::verb::delete_;
    abort.bucket = w.bucket;
    abort.key = w.key;
    abort.query = {{"uploadId", uploadId}};
    abort.contentLength = 0;
    abort.payloadHash = std::string(kEmptySha256Hex);
    if (auto r = co_await up.send(abort)) {
      std::string ignored;
      co_await readAll(**r, 64 * 1024, ignored);
    }
  }
  co_return ok;
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

// The write-back service's data: a client's body into a spool file, and a spooled operation out to its
// backend (a PUT of the file, a DELETE, or a multipart upload of the same parts, so that the backend
// assigns the ETag the client was given).

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/random_access_file.hpp>
#include <boost/asio/stream_file.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <pugixml.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <sstream>

#include "common/crypto.h"
#include "common/log_escape.h"
#include "s3api/exchange.h"
#include "s3api/writeback_service.h"

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

void warnEtag(const cache::PendingWrite& w, const std::string& assigned) {
  if (!assigned.empty() && assigned != w.etag)
    spdlog::warn("write-back: /{}/{} was acknowledged with ETag {} but the backend assigned {}", logSafe(w.bucket),
                 logSafe(w.key), w.etag, logSafe(assigned));
}

/// A request on `w`'s key with no body.
upstream::UpstreamRequest emptyRequest(bhttp::verb method, const cache::PendingWrite& w) {
  upstream::UpstreamRequest r;
  r.method = method;
  r.bucket = w.bucket;
  r.key = w.key;
  r.contentLength = 0;
  r.payloadHash = std::string(kEmptySha256Hex);
  return r;
}

}  // namespace

asio::awaitable<S3Result<std::uint64_t>> WriteBackService::writeData(upstream::BodySource& body, int fd,
                                                                    std::string& md5Hex, BufferPool& buffers) {
  asio::stream_file file(co_await asio::this_coro::executor);
  boost::system::error_code ec;
  file.assign(fd, ec);
  BufferPool::Lease buf(buffers);
  Digest md5(Digest::Kind::Md5);
  std::uint64_t written = 0;
  std::optional<S3Failure> failure;
  for (;;) {
    auto n = co_await body.read(asio::buffer(buf.data(), buf.size()));
    if (!n) {
      failure = S3Failure{S3Error::IncompleteBody, {}, {}};
      break;
    }
    if (*n == 0) break;
    md5.update(buf.data(), *n);
    auto [wec, ignored] = co_await asio::async_write(file, asio::buffer(buf.data(), *n), kTuple);
    if (wec) {
      spdlog::error("write-back: writing to {} failed: {}", spool_->dir(), wec.message());
      failure = S3Failure{S3Error::InternalError, "The write-back spool could not store the data.", {}};
      break;
    }
    written += *n;
  }
  file.close(ec);
  if (failure) co_return *failure;
  md5Hex = md5.finishHex();
  co_return written;
}

asio::awaitable<bool> WriteBackService::upload(const cache::PendingWrite& w) {
  if (w.backend >= upstreams_.size()) {
    spdlog::error("write-back: /{}/{} names backend {}, which this configuration lacks", logSafe(w.bucket),
                  logSafe(w.key), w.backend);
    co_return false;
  }
  upstream::Upstream& up = *upstreams_[w.backend];
  if (w.isDelete) {
    upstream::UpstreamRequest r = emptyRequest(bhttp::verb::delete_, w);
    auto resp = co_await up.send(r);
    if (!resp) co_return false;
    const unsigned status = (*resp)->header().result_int();
    std::string ignored;
    co_await readAll(**resp, 64 * 1024, ignored);
    co_return status == 204 || status == 200 || status == 404;
  }
  if (!w.parts.empty()) co_return co_await uploadMultipart(up, w);
  upstream::UpstreamRequest r;
  r.method = bhttp::verb::put;
  r.bucket = w.bucket;
  r.key = w.key;
  r.headers = w.headers;
  const auto etag = co_await sendSpoolFile(up, r, w.seq, w.size);
  if (etag) warnEtag(w, *etag);
  co_return etag.has_value();
}

asio::awaitable<std::optional<std::string>> WriteBackService::sendSpoolFile(upstream::Upstream& up,
                                                                           upstream::UpstreamRequest& r,
                                                                           std::uint64_t seq, std::uint64_t size) {
  const int fd = co_await spool_->openData(seq, false);
  if (fd < 0) {
    spdlog::error("write-back: the data of /{}/{} ({}) cannot be opened", logSafe(r.bucket), logSafe(r.key),
                  spool_->dataPath(seq));
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

asio::awaitable<bool> WriteBackService::uploadMultipart(upstream::Upstream& up, const cache::PendingWrite& w) {
  const std::string uploadId = co_await createMultipart(up, w);
  if (uploadId.empty()) co_return false;
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
    std::ostringstream os;
    complete.save(os, "", pugi::format_raw);
    ok = co_await completeMultipart(up, w, uploadId, os.str());
  }
  if (!ok) co_await abortMultipart(up, w, uploadId);  // the next attempt starts over
  co_return ok;
}

asio::awaitable<std::string> WriteBackService::createMultipart(upstream::Upstream& up, const cache::PendingWrite& w) {
  upstream::UpstreamRequest create = emptyRequest(bhttp::verb::post, w);
  create.query.emplace_back("uploads", "");
  for (const auto& [name, value] : w.headers)
    if (!name.starts_with("x-amz-checksum-")) create.headers.emplace_back(name, value);  // parts were verified here
  auto created = co_await up.send(create);
  if (!created) {
    spdlog::warn("write-back: starting the upload of /{}/{} failed: {}", logSafe(w.bucket), logSafe(w.key),
                 created.error().message());
    co_return std::string();
  }
  pugi::xml_document doc;
  const unsigned status = (*created)->header().result_int();
  const bool read = co_await readXml(**created, 64 * 1024, doc);
  std::string uploadId;
  if (read) uploadId = doc.document_element().child_value("UploadId");
  if (status != 200 || uploadId.empty()) {
    spdlog::warn("write-back: starting the upload of /{}/{}: the backend answered {}", logSafe(w.bucket),
                 logSafe(w.key), status);
    co_return std::string();
  }
  co_return uploadId;
}

asio::awaitable<bool> WriteBackService::completeMultipart(upstream::Upstream& up, const cache::PendingWrite& w,
                                                          const std::string& uploadId, std::string body) {
  upstream::UpstreamRequest r = emptyRequest(bhttp::verb::post, w);
  r.query = {{"uploadId", uploadId}};
  r.bufferedBody = std::move(body);
  r.contentLength = r.bufferedBody.size();
  r.payloadHash = sha256Hex(r.bufferedBody);
  auto done = co_await up.send(r);
  pugi::xml_document answer;
  const unsigned status = done ? (*done)->header().result_int() : 0;
  // (S3 can answer 200 with an Error document when a Complete fails late.)
  bool parsed = false;
  if (done) parsed = co_await readXml(**done, 1 << 20, answer);  // (not inside &&: GCC 12 coroutines)
  const bool ok =
      parsed && status == 200 && std::string_view(answer.document_element().name()) == "CompleteMultipartUploadResult";
  if (ok) {
    warnEtag(w, answer.document_element().child_value("ETag"));
  } else {
    std::string why = std::to_string(status);  // (no ?: of temporaries: GCC 12 coroutines)
    if (!done) why = done.error().message();
    spdlog::warn("write-back: completing the upload of /{}/{} failed ({})", logSafe(w.bucket), logSafe(w.key), why);
  }
  co_return ok;
}

asio::awaitable<void> WriteBackService::abortMultipart(upstream::Upstream& up, const cache::PendingWrite& w,
                                                       const std::string& uploadId) {
  upstream::UpstreamRequest abort = emptyRequest(bhttp::verb::delete_, w);
  abort.query = {{"uploadId", uploadId}};
  if (auto r = co_await up.send(abort)) {
    std::string ignored;
    co_await readAll(**r, 64 * 1024, ignored);
  }
}

}  // namespace granary::s3api

// One object server: a GET/HEAD of an object Granary holds, answered from a plan (object_plan.h) and a
// local copy of its bytes (local_bytes.h): the cache's chunks or the write-back spool's data files.

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "s3api/local_bytes.h"

namespace granary::s3api {
namespace {
namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
}  // namespace

http::Awaitable<bool> ProxyHandler::servePlan(Exchange& x, const ObjectPlan& plan, http::ResponseHeader header,
                                              LocalBytes& bytes) {
  header.result(static_cast<bhttp::status>(plan.status));
  for (const auto& [name, value] : plan.headers) header.insert(name, value);
  header.set("x-amz-request-id", x.requestId);
  x.status = plan.status;
  if (!plan.body) {  // HEAD, 304, nothing to send
    if (!co_await x.out.writeHeader(std::move(header))) co_await x.out.finish();
    co_return true;
  }
  co_return co_await bytes.stream(x, plan.body->offset, plan.body->length, std::move(header));
}

http::Awaitable<bool> ProxyHandler::sendPlanError(Exchange& x, const S3Failure& failure) {
  const std::string contentRange = unsatisfiedContentRange(failure);  // (named: GCC 12 coroutines)
  co_await sendError(x, failure, contentRange);
  co_return true;
}

http::Awaitable<bool> ProxyHandler::SpoolFiles::stream(Exchange& x, std::uint64_t offset, std::uint64_t length,
                                                       http::ResponseHeader header) {
  std::vector<Piece> pieces;
  if (pending_->parts.empty()) pieces.push_back({pending_->seq, pending_->size});
  for (const auto& part : pending_->parts) pieces.push_back({part.seq, part.size});
  // Opened before the header goes out: a file gone means the upload finished and dropped it meanwhile
  // (the backend has the object now), and the request can still go there.
  std::vector<FilePtr> files;
  const Opened opened = co_await open(x, pieces, offset, length, files);
  if (opened == Opened::Gone) co_return false;
  if (opened == Opened::Damaged) {
    const S3Failure bad{S3Error::InternalError, "The write-back spool's copy of this object is damaged.", {}};
    co_await handler_.sendError(x, bad);
    co_return true;
  }
  if (co_await x.out.writeHeader(std::move(header))) co_return true;
  if (co_await send(x, pieces, files, offset, length)) co_await x.out.finish();
  co_return true;
}

http::Awaitable<ProxyHandler::SpoolFiles::Opened> ProxyHandler::SpoolFiles::open(
    Exchange& x, const std::vector<Piece>& pieces, std::uint64_t offset, std::uint64_t length,
    std::vector<FilePtr>& files) {
  cache::WriteBackSpool& spool = handler_.opts_.writeBack->spool();
  std::uint64_t at = 0;
  for (const auto& piece : pieces) {
    files.emplace_back();
    if (at + piece.size > offset && at < offset + length) {
      const int fd = co_await spool.openData(piece.seq, false);
      if (fd < 0) co_return Opened::Gone;
      // A data file of another size than its journal record says (a damaged disk) is never served:
      // a short file would cut the body after the header promised its length.
      struct stat st {};
      if (::fstat(fd, &st) != 0 || static_cast<std::uint64_t>(st.st_size) != piece.size) {
        ::close(fd);
        spdlog::error("{} write-back: {} holds {} bytes, its journal record says {}", x.requestId,
                      spool.dataPath(piece.seq), static_cast<long long>(st.st_size), piece.size);
        co_return Opened::Damaged;
      }
      files.back() = std::make_unique<asio::random_access_file>(co_await asio::this_coro::executor);
      boost::system::error_code ec;
      files.back()->assign(fd, ec);
    }
    at += piece.size;
  }
  co_return Opened::Ok;
}

http::Awaitable<bool> ProxyHandler::SpoolFiles::send(Exchange& x, const std::vector<Piece>& pieces,
                                                     std::vector<FilePtr>& files, std::uint64_t offset,
                                                     std::uint64_t length) {
  BufferPool::Lease buf(handler_.buffers_);
  std::uint64_t at = 0;  // where pieces[i] starts in the object
  for (std::size_t i = 0; i < pieces.size() && length > 0; at += pieces[i].size, ++i) {
    if (at + pieces[i].size <= offset) continue;
    while (length > 0 && offset < at + pieces[i].size) {
      const std::uint64_t inPiece = at + pieces[i].size - offset;
      const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>({buf.size(), length, inPiece}));
      auto [rec, n] = co_await files[i]->async_read_some_at(offset - at, asio::buffer(buf.data(), want), kTuple);
      if (rec || n == 0) {
        std::string why = "end of file";  // (no ?: of class temporaries: GCC 12 coroutines)
        if (rec) why = rec.message();
        spdlog::error("{} write-back: reading {} failed: {}", x.requestId,
                      handler_.opts_.writeBack->spool().dataPath(pieces[i].seq), why);
        x.errorCode = "SpoolReadFailed";
        co_return false;  // the header went out: cutting the connection is the honest signal
      }
      if (co_await x.out.writeBody(asio::buffer(buf.data(), n))) {
        x.errorCode = "ClientGone";
        co_return false;
      }
      offset += n;
      length -= n;
      x.bytesOut += n;
    }
  }
  co_return true;
}

}  // namespace granary::s3api

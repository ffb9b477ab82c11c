#pragma once
// Internal to ProxyHandler: a local copy of an object's bytes, which ProxyHandler::servePlan sends from.
// Two copies exist: the cache's chunks (CachedChunks, proxy_cache.cpp) and the write-back spool's data
// files (SpoolFiles, object_serve.cpp).

#include <boost/asio/random_access_file.hpp>

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "s3api/exchange.h"

namespace granary::s3api {

class ProxyHandler::LocalBytes {
 public:
  virtual ~LocalBytes() = default;
  /// Sends `header`, then bytes [offset, offset + length) of the object (length > 0), then ends the
  /// response. The header goes out only once the bytes can be had, so that a copy found missing first
  /// leaves the request free to go to the backend. Bytes found missing after the header went out cut
  /// the response (x.errorCode says why); x.bytesOut counts what was sent.
  /// @return false if nothing was sent (the caller forwards the request instead); true once the client
  ///         has been answered (whole, cut, or with an error of the copy's own).
  virtual http::Awaitable<bool> stream(Exchange& x, std::uint64_t offset, std::uint64_t length,
                                       http::ResponseHeader header) = 0;
};

/// The cache's chunks of an object, fetched from the backend where missing (ProxyHandler::streamChunks).
class ProxyHandler::CachedChunks final : public ProxyHandler::LocalBytes {
 public:
  CachedChunks(ProxyHandler& handler, std::shared_ptr<const CachedObject> obj)
      : handler_(handler), obj_(std::move(obj)) {}
  http::Awaitable<bool> stream(Exchange& x, std::uint64_t offset, std::uint64_t length,
                               http::ResponseHeader header) override;

 private:
  ProxyHandler& handler_;
  std::shared_ptr<const CachedObject> obj_;
};

/// A pending write's data in the write-back spool: its data file, or its parts' files in order. A file
/// gone before the header went out (the upload finished and dropped it) sends nothing; one of another
/// size than its record says is answered InternalError (never a body cut short of its Content-Length).
class ProxyHandler::SpoolFiles final : public ProxyHandler::LocalBytes {
 public:
  SpoolFiles(ProxyHandler& handler, cache::PendingPtr pending) : handler_(handler), pending_(std::move(pending)) {}
  http::Awaitable<bool> stream(Exchange& x, std::uint64_t offset, std::uint64_t length,
                               http::ResponseHeader header) override;

 private:
  struct Piece {
    std::uint64_t seq, size;
  };
  using FilePtr = std::unique_ptr<boost::asio::random_access_file>;
  enum class Opened { Ok, Gone, Damaged };
  /// Opens the files holding [offset, offset + length) (null entries for the others).
  http::Awaitable<Opened> open(Exchange& x, const std::vector<Piece>& pieces, std::uint64_t offset,
                               std::uint64_t length, std::vector<FilePtr>& files);
  /// Sends [offset, offset + length) from the opened files. @return false when a read failed.
  http::Awaitable<bool> send(Exchange& x, const std::vector<Piece>& pieces, std::vector<FilePtr>& files,
                             std::uint64_t offset, std::uint64_t length);

  ProxyHandler& handler_;
  cache::PendingPtr pending_;
};

}  // namespace granary::s3api

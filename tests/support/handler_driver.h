#pragma once
// Drives an http::RequestHandler without sockets: a request (signed with SigV4 like an SDK would, or
// marked internal), its body from a string, and the response captured whole. For s3api unit tests that
// reach the middle of the proxy (dispatch, cache paths, write modes) in milliseconds.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "common/sigv4.h"
#include "common/uri.h"
#include "http/handler.h"

namespace granary::testing {

struct Reply {
  unsigned status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  bool finished = false;
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

class StringBody final : public http::BodyReader {
 public:
  explicit StringBody(std::string data) : data_(std::move(data)), left_(data_) {}
  http::Awaitable<boost::system::result<std::size_t>> read(boost::asio::mutable_buffer buf) override {
    const std::size_t n = left_.copy(static_cast<char*>(buf.data()), buf.size());
    left_.remove_prefix(n);
    co_return n;
  }
  std::optional<std::uint64_t> contentLength() const override { return data_.size(); }
  bool done() const override { return left_.empty(); }

 private:
  std::string data_;
  std::string_view left_;  // what is still to be read of data_
};

class CapturingWriter final : public http::ResponseWriter {
 public:
  explicit CapturingWriter(Reply& r) : r_(r) {}
  http::Awaitable<http::error_code> writeHeader(http::ResponseHeader h) override {
    sent_ = true;
    r_.status = h.result_int();
    for (const auto& f : h) {
      std::string name(f.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      r_.headers[name] = std::string(f.value());
    }
    co_return http::error_code{};
  }
  http::Awaitable<http::error_code> writeBody(boost::asio::const_buffer data) override {
    r_.body.append(static_cast<const char*>(data.data()), data.size());
    co_return http::error_code{};
  }
  http::Awaitable<http::error_code> finish() override {
    r_.finished = true;
    co_return http::error_code{};
  }
  bool headerSent() const override { return sent_; }
  bool finished() const override { return r_.finished; }
  void closeAfterResponse() override {}

 private:
  Reply& r_;
  bool sent_ = false;
};

/// A client of a handler: signs each request with its credentials (SigV4, UNSIGNED-PAYLOAD).
class Client {
 public:
  Client(http::RequestHandler& h, sigv4::Credentials creds, std::string region = "us-east-1")
      : h_(h), signer_(std::move(creds), std::move(region)) {}

  /// @param path "/bucket/key" (unencoded); @param query decoded parameters. (Arguments by value: a
  /// coroutine outlives the temporaries a caller passes.)
  http::Awaitable<Reply> call(http::beast::http::verb method, std::string path, QueryParams query = {},
                              sigv4::HeaderList headers = {}, std::string body = {}) {
    headers.emplace_back("host", "granary.test");
    const std::string encoded = uriEncode(path, false);
    signer_.sign(http::beast::http::to_string(method), encoded, query, headers, "UNSIGNED-PAYLOAD",
                 std::chrono::system_clock::now());
    std::string target = encoded;
    char sep = '?';
    for (const auto& [k, v] : query) {
      target += sep + uriEncode(k, true) + (v.empty() ? "" : "=" + uriEncode(v, true));
      sep = '&';
    }
    http::RequestHeader req;
    req.method(method);
    req.target(target);
    req.version(11);
    for (const auto& [name, value] : headers) req.set(name, value);
    if (!body.empty() || method == http::beast::http::verb::put)
      req.set(http::beast::http::field::content_length, std::to_string(body.size()));
    Reply reply;
    StringBody reader(std::move(body));
    CapturingWriter out(reply);
    http::RequestContext ctx;
    ctx.connectionId = ++connections_;
    co_await h_.handle(req, ctx, reader, out);
    co_return reply;
  }

 private:
  http::RequestHandler& h_;
  sigv4::RequestSigner signer_;
  std::uint64_t connections_ = 0;
};

}  // namespace granary::testing

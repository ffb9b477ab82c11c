#pragma once
// An upstream answer held in memory: a header and a body, read in slices of at most `slice` bytes (tests
// of code that must cope with bodies arriving in pieces). Content-Length: the header's when it names one,
// else `length` as given (nullopt: undeclared).

#include <boost/beast/http/field.hpp>

#include <algorithm>
#include <cstring>
#include <limits>
#include <optional>
#include <string>

#include "upstream/upstream.h"

namespace granary::testing {

class MemoryResponse final : public upstream::UpstreamResponse {
 public:
  MemoryResponse(upstream::ResponseHeader h, std::string body, std::optional<std::uint64_t> length,
                 std::size_t slice = std::numeric_limits<std::size_t>::max())
      : h_(std::move(h)), body_(std::move(body)), length_(length), slice_(slice) {}
  const upstream::ResponseHeader& header() const override { return h_; }
  std::optional<std::uint64_t> contentLength() const override {
    if (const auto v = h_[boost::beast::http::field::content_length]; !v.empty()) return std::stoull(std::string(v));
    return length_;
  }
  upstream::Awaitable<boost::system::result<std::size_t>> read(boost::asio::mutable_buffer buf) override {
    const std::size_t n = std::min({buf.size(), body_.size() - at_, slice_});
    std::memcpy(buf.data(), body_.data() + at_, n);
    at_ += n;
    co_return n;
  }
  bool done() const override { return at_ == body_.size(); }
  void setHeader(boost::beast::http::field f, const std::string& v) { h_.set(f, v); }

 private:
  upstream::ResponseHeader h_;
  std::string body_;
  std::optional<std::uint64_t> length_;
  std::size_t slice_;
  std::size_t at_ = 0;
};

}  // namespace granary::testing

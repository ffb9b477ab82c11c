#pragma once
// A parsed backend endpoint URL ("http://127.0.0.1:4568", "https://s3.us-east-1.amazonaws.com").

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace granary::upstream {

struct Endpoint {
  bool tls = false;
  std::string host;  // without brackets for IPv6
  std::uint16_t port = 80;
  /// The Host header value: host, plus ":port" when not the scheme's default.
  std::string hostHeader() const;
};

/// @return nullopt unless the URL is http(s)://host[:port][/] (no path, query or user info).
std::optional<Endpoint> parseEndpoint(std::string_view url);

}  // namespace granary::upstream

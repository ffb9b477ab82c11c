#include "upstream/endpoint.h"

#include <boost/url/parse.hpp>

namespace granary::upstream {

std::string Endpoint::hostHeader() const {
  std::string h;
  if (host.find(':') != std::string::npos) {
    h.append("[").append(host).append("]");
  } else {
    h = host;
  }
  if (port != (tls ? 443 : 80)) h.append(":").append(std::to_string(port));
  return h;
}

std::optional<Endpoint> parseEndpoint(std::string_view url) {
  auto r = boost::urls::parse_absolute_uri(url);
  if (!r) return std::nullopt;
  const auto& u = *r;
  Endpoint e;
  if (u.scheme() == "http") e.tls = false;
  else if (u.scheme() == "https") e.tls = true;
  else return std::nullopt;
  if (u.has_userinfo() || u.has_query() || u.has_fragment()) return std::nullopt;
  if (!u.encoded_path().empty() && u.encoded_path() != "/") return std::nullopt;
  e.host = std::string(u.host_address());
  if (e.host.empty()) return std::nullopt;
  if (u.has_port()) {
    auto p = u.port_number();
    if (p == 0) return std::nullopt;
    e.port = p;
  } else {
    e.port = e.tls ? 443 : 80;
  }
  return e;
}

}  // namespace granary::upstream

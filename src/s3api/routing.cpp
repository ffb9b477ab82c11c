#include "s3api/routing.h"

#include <algorithm>
#include <cctype>

namespace granary::s3api {
namespace {
bool iequalsSuffix(std::string_view s, std::string_view suffix) {
  if (s.size() < suffix.size()) return false;
  return std::equal(suffix.begin(), suffix.end(), s.end() - static_cast<std::ptrdiff_t>(suffix.size()),
                    [](char a, char b) { return std::tolower(static_cast<unsigned char>(a)) ==
                                                std::tolower(static_cast<unsigned char>(b)); });
}
}  // namespace

std::string_view hostWithoutPort(std::string_view host) {
  if (!host.empty() && host.front() == '[') {
    auto close = host.find(']');
    return close == std::string_view::npos ? host : host.substr(0, close + 1);
  }
  auto colon = host.rfind(':');
  if (colon != std::string_view::npos && host.find(':') == colon) return host.substr(0, colon);
  return host;
}

std::optional<AbsoluteTarget> splitAbsoluteForm(std::string_view target, bool& ok) {
  ok = true;
  auto startsWithI = [&](std::string_view prefix) {
    return target.size() >= prefix.size() &&
           std::equal(prefix.begin(), prefix.end(), target.begin(), [](char a, char b) {
             return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
           });
  };
  std::size_t schemeLen = 0;
  if (startsWithI("http://")) schemeLen = 7;
  else if (startsWithI("https://")) schemeLen = 8;
  else return std::nullopt;
  std::string_view rest = target.substr(schemeLen);
  const std::size_t end = std::min(rest.find('/'), rest.find('?'));
  AbsoluteTarget t;
  t.authority = rest.substr(0, end);
  if (end == std::string_view::npos) t.originForm = "/";
  else if (rest[end] == '?') t.originForm = "/" + std::string(rest.substr(end));
  else t.originForm = std::string(rest.substr(end));
  if (t.authority.empty() || t.authority.find('@') != std::string_view::npos) {
    ok = false;  // no host, or userinfo (never sent by S3 clients; a known source of confusion)
    return std::nullopt;
  }
  return t;
}

std::optional<RoutedRequest> route(std::string_view target, std::string_view host, std::string_view domain) {
  auto [rawPath, rawQuery] = splitTarget(target);
  if (rawPath.empty() || rawPath.front() != '/') return std::nullopt;
  auto decoded = uriDecode(rawPath);
  auto query = parseQuery(rawQuery);
  if (!decoded || !query) return std::nullopt;

  RoutedRequest r;
  r.rawPath = std::string(rawPath);
  r.decodedPath = std::move(*decoded);
  r.query = std::move(*query);

  const std::string_view h = hostWithoutPort(host);
  if (!domain.empty() && h.size() > domain.size() + 1 && iequalsSuffix(h, domain) &&
      h[h.size() - domain.size() - 1] == '.') {
    r.virtualHosted = true;
    r.bucket = std::string(h.substr(0, h.size() - domain.size() - 1));
    r.key = r.decodedPath.substr(1);
    return r;
  }
  std::string_view p = std::string_view(r.decodedPath).substr(1);
  auto slash = p.find('/');
  r.bucket = std::string(p.substr(0, slash));
  if (slash != std::string_view::npos) r.key = std::string(p.substr(slash + 1));
  // "//bucket/key" names no bucket: it is no ListBuckets and no object of any bucket, whatever a backend
  // that collapses slashes would make of it.
  if (r.bucket.empty() && slash != std::string_view::npos) return std::nullopt;
  return r;
}

}  // namespace granary::s3api

#include "common/sigv4.h"

#include <algorithm>

#include "common/timeutil.h"

namespace granary::sigv4 {

namespace {
/// Appends the value trimmed, with runs of spaces and tabs collapsed to one space.
void appendCanonicalValue(std::string& out, std::string_view v) {
  // Most values have nothing to trim or collapse: appended whole.
  const bool edge = !v.empty() && (v.front() == ' ' || v.front() == '\t' || v.back() == ' ' || v.back() == '\t');
  if (!edge && v.find('\t') == std::string_view::npos && v.find("  ") == std::string_view::npos) {
    out.append(v);
    return;
  }
  const std::size_t start = out.size();
  bool space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t') {
      space = true;
      continue;
    }
    if (space && out.size() > start) out.push_back(' ');
    space = false;
    out.push_back(c);
  }
}

template <class Names>
void appendHeaders(std::string& out, const HeaderList& headers, const Names& signedNames) {
  for (const auto& name : signedNames) {
    out.append(name);
    out.push_back(':');
    bool first = true;
    for (const auto& [k, v] : headers) {
      if (k != name) continue;
      if (!first) out.push_back(',');
      appendCanonicalValue(out, v);
      first = false;
    }
    out.push_back('\n');
  }
}
}  // namespace

std::string canonicalHeaderValue(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  appendCanonicalValue(out, v);
  return out;
}

std::string canonicalHeaders(const HeaderList& headers, const std::vector<std::string>& signedNames) {
  std::string out;
  appendHeaders(out, headers, signedNames);
  return out;
}

void appendCanonicalHeaders(std::string& out, const HeaderList& headers, const std::vector<std::string_view>& signedNames) {
  appendHeaders(out, headers, signedNames);
}

std::string joinSignedHeaders(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) {
    if (!out.empty()) out.push_back(';');
    out += n;
  }
  return out;
}

std::string canonicalRequest(std::string_view method, std::string_view uri, std::string_view query,
                             std::string_view headersBlock, std::string_view signedHeaders,
                             std::string_view payloadHash) {
  std::string out;
  out.reserve(method.size() + uri.size() + query.size() + headersBlock.size() + signedHeaders.size() + 80);
  out.append(method).append("\n").append(uri).append("\n").append(query).append("\n");
  out.append(headersBlock).append("\n").append(signedHeaders).append("\n").append(payloadHash);
  return out;
}

std::string credentialScope(std::string_view date, std::string_view region, std::string_view service) {
  std::string out;
  out.append(date).append("/").append(region).append("/").append(service).append("/aws4_request");
  return out;
}

std::string stringToSign(std::string_view amzDate, std::string_view scope, std::string_view canonicalRequest) {
  std::string out(kAlgorithm);
  out.append("\n").append(amzDate).append("\n").append(scope).append("\n").append(sha256Hex(canonicalRequest));
  return out;
}

Sha256Digest signingKey(std::string_view secret, std::string_view date, std::string_view region,
                        std::string_view service) {
  std::string k = "AWS4";
  k.append(secret);
  auto kDate = hmacSha256(k, date);
  auto kRegion = hmacSha256(kDate, region);
  auto kService = hmacSha256(kRegion, service);
  return hmacSha256(kService, "aws4_request");
}

std::string signatureHex(const Sha256Digest& key, std::string_view sts) { return toHex(hmacSha256(key, sts)); }

std::string signatureHex(const HmacSha256Key& key, std::string_view sts) { return toHex(key.sign(sts)); }

std::string chunkStringToSign(std::string_view amzDate, std::string_view scope, std::string_view prev,
                              std::string_view chunkHash) {
  std::string out = "AWS4-HMAC-SHA256-PAYLOAD\n";
  out.append(amzDate).append("\n").append(scope).append("\n").append(prev).append("\n");
  out.append(kEmptySha256Hex).append("\n").append(chunkHash);
  return out;
}

std::string trailerStringToSign(std::string_view amzDate, std::string_view scope, std::string_view prev,
                                std::string_view trailerHash) {
  std::string out = "AWS4-HMAC-SHA256-TRAILER\n";
  out.append(amzDate).append("\n").append(scope).append("\n").append(prev).append("\n").append(trailerHash);
  return out;
}

RequestSigner::RequestSigner(Credentials creds, std::string region, std::string service)
    : creds_(std::move(creds)), region_(std::move(region)), service_(std::move(service)) {}

const Sha256Digest& RequestSigner::keyFor(std::string_view date) {
  if (keyDate_ != date) {
    key_ = signingKey(creds_.secretKey, date, region_, service_);
    keyDate_ = std::string(date);
  }
  return key_;
}

void RequestSigner::sign(std::string_view method, std::string_view encodedPath, const QueryParams& query,
                         HeaderList& headers, std::string_view payloadHash,
                         std::chrono::system_clock::time_point now, const Credentials* as) {
  const std::string amzDate = formatAmzDate(now);
  const std::string date = amzDate.substr(0, 8);
  const Credentials& creds = as ? *as : creds_;
  headers.emplace_back("x-amz-date", amzDate);
  headers.emplace_back("x-amz-content-sha256", std::string(payloadHash));
  if (!creds.sessionToken.empty()) headers.emplace_back("x-amz-security-token", creds.sessionToken);

  std::vector<std::string> names;
  for (const auto& [k, v] : headers) names.push_back(k);
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());

  const std::string signedHeaders = joinSignedHeaders(names);
  const std::string scope = credentialScope(date, region_, service_);
  const std::string creq = canonicalRequest(method, encodedPath, canonicalQueryString(query),
                                            canonicalHeaders(headers, names), signedHeaders, payloadHash);
  // Other credentials than the signer's own (a tenant's) derive their key per request: four HMACs.
  const Sha256Digest key = as ? signingKey(as->secretKey, date, region_, service_) : keyFor(date);
  const std::string sig = signatureHex(key, stringToSign(amzDate, scope, creq));
  std::string auth(kAlgorithm);
  auth.append(" Credential=").append(creds.accessKey).append("/").append(scope);
  auth.append(", SignedHeaders=").append(signedHeaders).append(", Signature=").append(sig);
  headers.emplace_back("authorization", std::move(auth));
}

QueryParams RequestSigner::presign(std::string_view method, std::string_view encodedPath, QueryParams query,
                                   std::string_view host, std::chrono::seconds expires,
                                   std::chrono::system_clock::time_point now) {
  const std::string amzDate = formatAmzDate(now);
  const std::string date = amzDate.substr(0, 8);
  const std::string scope = credentialScope(date, region_, service_);
  query.emplace_back("X-Amz-Algorithm", std::string(kAlgorithm));
  query.emplace_back("X-Amz-Credential", creds_.accessKey + "/" + scope);
  query.emplace_back("X-Amz-Date", amzDate);
  query.emplace_back("X-Amz-Expires", std::to_string(expires.count()));
  if (!creds_.sessionToken.empty()) query.emplace_back("X-Amz-Security-Token", creds_.sessionToken);
  query.emplace_back("X-Amz-SignedHeaders", "host");
  HeaderList hs{{"host", std::string(host)}};
  const std::string creq = canonicalRequest(method, encodedPath, canonicalQueryString(query),
                                            canonicalHeaders(hs, {"host"}), "host", kUnsignedPayload);
  query.emplace_back("X-Amz-Signature", signatureHex(keyFor(date), stringToSign(amzDate, scope, creq)));
  return query;
}

}  // namespace granary::sigv4

#include "cluster/membership_record.h"

#include <boost/json.hpp>

#include <cmath>

namespace granary::cluster {

namespace json = boost::json;

std::string membersPrefix(std::string_view cluster) {
  return "/granary/clusters/" + std::string(cluster) + "/members/";
}

std::string memberKey(std::string_view cluster, std::string_view id) { return membersPrefix(cluster) + std::string(id); }

bool validNodeId(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
      return false;
  return true;
}

std::string recordJson(const Member& m) {
  json::object o;
  o["id"] = m.id;
  o["address"] = m.address;
  o["weight"] = m.weight;
  o["state"] = std::string(name(m.state));
  o["since"] = m.registeredMs;
  o["chunks"] = m.chunks;
  o["bytes"] = m.bytes;
  o["peer_bytes_served"] = m.peerBytesServed;
  o["peer_bytes_fetched"] = m.peerBytesFetched;
  return json::serialize(o);
}

namespace {
/// HOST:PORT or [V6]:PORT in the characters a host name or address has (an etcd record's address goes
/// into peer requests' Host header and `granary admin cluster`'s table: no control bytes, no spaces).
bool validAddress(std::string_view a) {
  const auto colon = a.rfind(':');
  if (a.size() > 300 || colon == std::string_view::npos || colon == 0 || a.size() - colon - 1 < 1 ||
      a.size() - colon - 1 > 5)
    return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const char c = a[i];
    const bool digit = c >= '0' && c <= '9';
    if (i > colon ? !digit
                  : !(digit || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '.' ||
                      c == '_' || c == ':' || c == '[' || c == ']'))
      return false;
  }
  return true;
}

bool readCount(const json::object& o, std::string_view field, std::uint64_t& out) {
  const auto* v = o.if_contains(field);
  if (!v) return true;  // absent: unknown, 0
  if (v->is_uint64()) out = v->as_uint64();
  else if (v->is_int64() && v->as_int64() >= 0) out = static_cast<std::uint64_t>(v->as_int64());
  else return false;
  return true;
}
}  // namespace

bool parseRecord(std::string_view text, std::string_view keyId, Member& out, std::string& error) {
  json::error_code ec;
  const json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) {
    error = "not a JSON object";
    return false;
  }
  const auto& o = v.as_object();
  const auto* id = o.if_contains("id");
  const auto* address = o.if_contains("address");
  if (!id || !id->is_string() || !validNodeId(id->as_string())) {
    error = "no valid 'id'";
    return false;
  }
  if (!keyId.empty() && id->as_string() != keyId) {
    error = "'id' differs from its key";
    return false;
  }
  if (!address || !address->is_string() || !validAddress(address->as_string())) {
    error = "no valid 'address' (HOST:PORT)";
    return false;
  }
  Member m = out;
  m.id = id->as_string();
  m.address = address->as_string();
  m.weight = 1.0;
  if (const auto* w = o.if_contains("weight")) {
    if (!w->is_number()) {
      error = "'weight' is not a number";
      return false;
    }
    m.weight = w->to_number<double>();
    if (!(m.weight > 0 && m.weight <= 100) || std::isnan(m.weight)) {
      error = "'weight' outside (0, 100]";
      return false;
    }
  }
  m.state = MemberState::Active;
  if (const auto* s = o.if_contains("state")) {
    if (!s->is_string() || !parseMemberState(s->as_string(), m.state)) {
      error = "unknown 'state'";
      return false;
    }
  }
  m.registeredMs = 0;
  if (const auto* s = o.if_contains("since")) {
    if (s->is_int64()) m.registeredMs = s->as_int64();
    else if (s->is_uint64()) m.registeredMs = static_cast<std::int64_t>(s->as_uint64());
    else if (s->is_double() && std::isfinite(s->as_double()) && std::abs(s->as_double()) < 9.2e18)
      m.registeredMs = static_cast<std::int64_t>(s->as_double());  // (a double beyond int64 would be UB)
  }
  m.chunks = m.bytes = m.peerBytesServed = m.peerBytesFetched = 0;
  if (!readCount(o, "chunks", m.chunks) || !readCount(o, "bytes", m.bytes) ||
      !readCount(o, "peer_bytes_served", m.peerBytesServed) || !readCount(o, "peer_bytes_fetched", m.peerBytesFetched)) {
    error = "a count is not a non-negative integer";
    return false;
  }
  out = std::move(m);
  return true;
}

}  // namespace granary::cluster

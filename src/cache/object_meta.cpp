#include "cache/object_meta.h"

#include <cstring>

namespace granary::cache {
namespace {

constexpr std::uint32_t kMagic = 0x314d5247;  // "GRM1"

template <class T>
void put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}
void putString(std::string& out, std::string_view s) {
  put<std::uint32_t>(out, static_cast<std::uint32_t>(s.size()));
  out.append(s);
}

struct Reader {
  std::string_view s;
  bool ok = true;
  template <class T>
  T get() {
    T v{};
    if (s.size() < sizeof v) {
      ok = false;
      return v;
    }
    std::memcpy(&v, s.data(), sizeof v);
    s.remove_prefix(sizeof v);
    return v;
  }
  std::string getString() {
    const auto n = get<std::uint32_t>();
    if (!ok || s.size() < n) {
      ok = false;
      return {};
    }
    std::string out(s.substr(0, n));
    s.remove_prefix(n);
    return out;
  }
};

}  // namespace

std::string serializeMeta(const ObjectMeta& m) {
  std::string out;
  put(out, kMagic);
  put(out, m.size);
  put(out, m.validatedAtMs);
  putString(out, m.etag);
  put<std::uint32_t>(out, static_cast<std::uint32_t>(m.headers.size()));
  for (const auto& [k, v] : m.headers) {
    putString(out, k);
    putString(out, v);
  }
  return out;
}

std::optional<ObjectMeta> parseMeta(std::string_view s) {
  Reader r{s};
  if (r.get<std::uint32_t>() != kMagic) return std::nullopt;
  ObjectMeta m;
  m.size = r.get<std::uint64_t>();
  m.validatedAtMs = r.get<std::int64_t>();
  m.etag = r.getString();
  const auto n = r.get<std::uint32_t>();
  if (!r.ok || n > 1024) return std::nullopt;
  for (std::uint32_t i = 0; i < n && r.ok; ++i) {
    std::string k = r.getString();
    std::string v = r.getString();
    m.headers.emplace_back(std::move(k), std::move(v));
  }
  if (!r.ok || !r.s.empty()) return std::nullopt;
  return m;
}

}  // namespace granary::cache

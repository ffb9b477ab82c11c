#include "common/log_escape.h"

namespace granary {
namespace {

/// Length of the valid UTF-8 sequence starting at s[i] (2-4), or 0 when there is none (RFC 3629: no
/// overlong forms, no surrogates, nothing past U+10FFFF). C1 controls (U+0080-U+009F) count as invalid:
/// some terminals act on them.
std::size_t utf8Sequence(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const auto cont = [&](std::size_t k) { return i + k < s.size() && (b(k) & 0xC0) == 0x80; };
  const unsigned char c = b(0);
  if (c >= 0xC2 && c <= 0xDF) return cont(1) && !(c == 0xC2 && b(1) < 0xA0) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    if (c == 0xE0 && b(1) < 0xA0) return 0;  // overlong
    if (c == 0xED && b(1) >= 0xA0) return 0;  // surrogates
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (c == 0xF0 && b(1) < 0x90) return 0;  // overlong
    if (c == 0xF4 && b(1) >= 0x90) return 0;  // past U+10FFFF
    return 4;
  }
  return 0;
}

/// Copies `s`, passing valid UTF-8 sequences and the ASCII bytes `keep` accepts as they are, and writing
/// every other byte through `escapeByte`.
template <class Keep, class EscapeByte>
std::string escapeWith(std::string_view s, Keep keep, EscapeByte escapeByte) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      if (const std::size_t n = utf8Sequence(s, i)) {
        out.append(s.substr(i, n));
        i += n;
        continue;
      }
    } else if (keep(c)) {
      out.push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    escapeByte(out, c);
    ++i;
  }
  return out;
}

constexpr char kHex[] = "0123456789abcdef";

std::string escape(std::string_view s, bool field) {
  return escapeWith(
      s, [field](unsigned char c) { return c >= 0x20 && c != 0x7f && c != '\\' && !(field && (c == ' ' || c == '"')); },
      [](std::string& out, unsigned char c) {
        out += "\\x";
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 0xf]);
      });
}

}  // namespace

std::string jsonEscape(std::string_view s) {
  return escapeWith(
      s, [](unsigned char c) { return c >= 0x20 && c != 0x7f && c != '"' && c != '\\'; },
      [](std::string& out, unsigned char c) {
        if (c == '"' || c == '\\') {
          out.push_back('\\');
          out.push_back(static_cast<char>(c));
          return;
        }
        out += "\\u00";
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 0xf]);
      });
}

std::string clfField(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (c <= 0x20 || c == '"' || c >= 0x7f) {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

std::string logSafe(std::string_view s) { return escape(s, false); }

std::string logField(std::string_view s) { return s.empty() ? std::string("-") : escape(s, true); }

}  // namespace granary

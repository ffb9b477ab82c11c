#include "s3api/request_xml.h"

#include <pugixml.hpp>

#include <algorithm>
#include <charconv>
#include <set>
#include <string>
#include <system_error>

namespace granary::s3api {
namespace {

// Whitespace-only text is kept (a key may be " "); DOCTYPE and the declaration become nodes, so they
// can be refused or checked; entities and end-of-lines are decoded as every XML parser must.
constexpr unsigned kParse = pugi::parse_default | pugi::parse_ws_pcdata | pugi::parse_doctype | pugi::parse_declaration;

S3Failure malformed(std::string why = {}) {
  return {S3Error::MalformedXML,
          why.empty() ? std::string{} : "The XML you provided was not well-formed or did not validate against our "
                                        "published schema: " + why,
          {}};
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

/// Whether `text` (character data or an attribute value as written, escapes not decoded) holds only
/// references XML defines: the five predefined entities and character references to characters XML
/// allows. pugixml keeps an undeclared entity ("&period;") as text, where a backend that decodes HTML
/// entities reads '.'; it decodes "&#0;" to a NUL that ends the key early for Granary only. Either way
/// two readers would act on different keys, and neither is well-formed XML.
bool referencesWellFormed(std::string_view text) {
  for (std::size_t i = text.find('&'); i != std::string_view::npos; i = text.find('&', i + 1)) {
    const std::string_view rest = text.substr(i + 1);
    const std::size_t semi = rest.find(';');
    if (semi == std::string_view::npos || semi == 0 || semi > 12) return false;
    const std::string_view name = rest.substr(0, semi);
    if (name == "amp" || name == "lt" || name == "gt" || name == "quot" || name == "apos") continue;
    if (name[0] != '#' || name.size() < 2) return false;
    const bool hex = name[1] == 'x';
    const std::string_view digits = name.substr(hex ? 2 : 1);
    std::uint32_t c = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), c, hex ? 16 : 10);
    if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size()) return false;
    // (XML allows 0x7F-0x9F, but HTML decoders read &#128;-&#159; as Windows-1252: refused as well.)
    const bool allowed = c == 0x9 || c == 0xA || c == 0xD || (c >= 0x20 && c <= 0x7E) || (c >= 0xA0 && c <= 0xD7FF) ||
                         (c >= 0xE000 && c <= 0xFFFD) || (c >= 0x10000 && c <= 0x10FFFF);
    if (!allowed) return false;
  }
  return true;
}

/// Whether the document, read again with escapes left as written, has only references XML defines in its
/// character data and attribute values (CDATA, comments and processing instructions hold none), and
/// only unprefixed element names (a namespace-aware backend would read <s:Key> as a Key).
bool rawWellFormed(std::string_view body) {
  pugi::xml_document raw;
  if (!raw.load_buffer(body.data(), body.size(), kParse & ~pugi::parse_escapes, pugi::encoding_utf8)) return false;
  struct Walker : pugi::xml_tree_walker {
    bool ok = true;
    bool for_each(pugi::xml_node& n) override {
      if (n.type() == pugi::node_pcdata) ok = referencesWellFormed(n.value());
      if (n.type() == pugi::node_element || n.type() == pugi::node_declaration) {
        if (std::string_view(n.name()).find(':') != std::string_view::npos) ok = false;
        std::set<std::string_view> names;  // an attribute twice (two encodings, say): read either way
        for (const auto& a : n.attributes())
          if (!referencesWellFormed(a.value()) || !names.insert(a.name()).second) ok = false;
      }
      return ok;
    }
  } w;
  raw.traverse(w);
  return w.ok;
}

/// XML 1.0 allows no NUL and no control character but tab, LF and CR, and the body must be UTF-8 as
/// Unicode defines it: no overlong forms (C0 AE, a '.' to a lenient decoder), no surrogates, nothing past
/// U+10FFFF, no U+FFFE/U+FFFF. Decoders differ on everything else.
bool charactersAllowed(std::string_view body) {
  const auto* p = reinterpret_cast<const unsigned char*>(body.data());
  const auto* end = p + body.size();
  while (p < end) {
    const unsigned c = *p;
    if (c < 0x80) {
      if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') return false;
      ++p;
      continue;
    }
    int n = 0;
    std::uint32_t cp = 0, min = 0;
    if ((c & 0xE0) == 0xC0) n = 1, cp = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0) n = 2, cp = c & 0x0F, min = 0x800;
    else if ((c & 0xF8) == 0xF0) n = 3, cp = c & 0x07, min = 0x10000;
    else return false;
    if (end - p <= n) return false;
    for (int i = 1; i <= n; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || cp == 0xFFFE || cp == 0xFFFF ||
        (cp >= 0x80 && cp <= 0x9F))
      return false;
    p += n + 1;
  }
  return true;
}

/// Parses `body` as Granary reads request XML. @return the error, or nullopt with `doc` loaded.
std::optional<S3Failure> load(std::string_view body, pugi::xml_document& doc) {
  if (!charactersAllowed(body)) return malformed("a character XML does not allow");
  if (!doc.load_buffer(body.data(), body.size(), kParse, pugi::encoding_utf8)) return malformed();
  if (!rawWellFormed(body)) return malformed("a reference XML does not define, or a prefixed element name");
  for (const auto& n : doc.children()) {
    if (n.type() == pugi::node_doctype) return malformed("a DOCTYPE is not allowed");
    if (n.type() == pugi::node_declaration) {
      const std::string_view enc = n.attribute("encoding").value();
      if (!enc.empty() && !iequals(enc, "utf-8") && !iequals(enc, "utf8"))
        return malformed("only UTF-8 is accepted");
    }
  }
  if (!doc.document_element()) return malformed();
  return std::nullopt;
}

/// All the character data of an element (split by comments or not, CDATA included); nullopt when it
/// holds an element, which readers would disagree on.
std::optional<std::string> textOf(const pugi::xml_node& e) {
  std::string out;
  for (const auto& c : e.children()) {
    if (c.type() == pugi::node_pcdata || c.type() == pugi::node_cdata) out += c.value();
    else if (c.type() == pugi::node_element) return std::nullopt;
  }
  return out;
}

/// The one child element `name` of `parent` and its text; an error when there are several, when it holds
/// an element, or (required) when there is none.
std::optional<S3Failure> onlyText(const pugi::xml_node& parent, const char* name, bool required, std::string& out) {
  pugi::xml_node found;
  for (const auto& c : parent.children(name)) {
    if (found) return malformed(std::string("more than one ") + name);
    found = c;
  }
  if (!found) return required ? std::optional(malformed(std::string("a ") + name + " is required")) : std::nullopt;
  auto t = textOf(found);
  if (!t) return malformed(std::string(name) + " holds an element");
  out = std::move(*t);
  return std::nullopt;
}

std::optional<S3Failure> checkComplete(const pugi::xml_node& root) {
  if (std::string_view(root.name()) != "CompleteMultipartUpload") return malformed("the root is not CompleteMultipartUpload");
  long previous = 0;
  bool any = false;
  for (const auto& part : root.children()) {
    if (part.type() != pugi::node_element || std::string_view(part.name()) != "Part") continue;
    any = true;
    std::string num, etag;
    if (auto bad = onlyText(part, "PartNumber", true, num)) return bad;
    if (auto bad = onlyText(part, "ETag", true, etag)) return bad;
    long n = 0;
    const auto [end, ec] = std::from_chars(num.data(), num.data() + num.size(), n);
    if (num.empty() || ec != std::errc{} || end != num.data() + num.size() || n < 1 || n > 10000)
      return malformed("PartNumber must be a number from 1 to 10000");
    if (etag.empty()) return malformed("every Part needs an ETag");
    if (n <= previous) return S3Failure{S3Error::InvalidPartOrder, {}, {}};
    previous = n;
  }
  if (!any) return malformed("no Part elements");
  return std::nullopt;
}

std::optional<S3Failure> checkDelete(const pugi::xml_node& root) {
  if (std::string_view(root.name()) != "Delete") return malformed("the root is not Delete");
  std::size_t objects = 0;
  for (const auto& obj : root.children("Object")) {
    std::string key, version;
    if (auto bad = onlyText(obj, "Key", true, key)) return bad;
    if (auto bad = onlyText(obj, "VersionId", false, version)) return bad;
    ++objects;
  }
  if (objects == 0 || objects > 1000) return malformed("a Delete request names 1 to 1000 objects");
  // Keys elsewhere than Object/Key would be read by no S3, but some parser might: refused.
  std::size_t keys = 0;
  for (const auto& k : root.select_nodes(".//Key")) (void)k, ++keys;
  if (keys != objects) return malformed("Key elements outside Object");
  return std::nullopt;
}

std::optional<S3Failure> checkTagging(const pugi::xml_node& root, std::size_t maxTags) {
  if (std::string_view(root.name()) != "Tagging") return malformed("the root is not Tagging");
  const auto set = root.child("TagSet");
  if (!set) return malformed("a TagSet is required");
  std::set<std::string> keys;
  for (const auto& tag : set.children("Tag")) {
    std::string key, value;
    if (auto bad = onlyText(tag, "Key", true, key)) return bad;
    if (auto bad = onlyText(tag, "Value", true, value)) return bad;
    if (key.empty() || key.size() > 128) return S3Failure{S3Error::InvalidTag, "The TagKey you have provided is invalid", {}};
    if (value.size() > 256) return S3Failure{S3Error::InvalidTag, "The TagValue you have provided is invalid", {}};
    if (!keys.insert(key).second) return S3Failure{S3Error::InvalidTag, "Cannot provide multiple Tags with the same key", {}};
  }
  if (keys.size() > maxTags)
    return S3Failure{S3Error::InvalidTag, "Object tags cannot be greater than " + std::to_string(maxTags), {}};
  return std::nullopt;
}

}  // namespace

bool isXmlBodyOp(S3Op op) { return opInfo(op).xmlBody; }

std::optional<S3Failure> checkRequestXml(S3Op op, std::string_view body) {
  if (op != S3Op::CompleteMultipartUpload && op != S3Op::DeleteObjects && op != S3Op::PutObjectTagging)
    return std::nullopt;
  if (body.size() > kMaxRequestXml) return S3Failure{S3Error::MaxMessageLengthExceeded, {}, {}};
  pugi::xml_document doc;
  if (auto bad = load(body, doc)) return bad;
  const pugi::xml_node root = doc.document_element();
  if (op == S3Op::CompleteMultipartUpload) return checkComplete(root);
  if (op == S3Op::DeleteObjects) return checkDelete(root);
  return checkTagging(root, 10);
}

std::vector<std::pair<std::uint32_t, std::string>> completeParts(std::string_view body) {
  std::vector<std::pair<std::uint32_t, std::string>> parts;
  pugi::xml_document doc;
  if (load(body, doc)) return parts;
  for (const auto& p : doc.document_element().children("Part")) {
    std::string num, etag;
    if (onlyText(p, "PartNumber", true, num) || onlyText(p, "ETag", true, etag)) continue;
    std::uint32_t n = 0;
    std::from_chars(num.data(), num.data() + num.size(), n);
    parts.emplace_back(n, std::move(etag));
  }
  return parts;
}

std::vector<std::pair<std::string, std::string>> deleteObjectsKeys(std::string_view body) {
  std::vector<std::pair<std::string, std::string>> keys;
  pugi::xml_document doc;
  if (load(body, doc)) return keys;
  // Every Key in the document, wherever it is: a superset of what the backend deletes.
  for (const auto& k : doc.document_element().select_nodes(".//Key")) {
    const pugi::xml_node key = k.node();
    auto text = textOf(key);
    if (!text || text->empty()) continue;
    std::string version;
    if (auto v = key.parent().child("VersionId")) version = textOf(v).value_or("");
    keys.emplace_back(std::move(*text), std::move(version));
  }
  return keys;
}

}  // namespace granary::s3api

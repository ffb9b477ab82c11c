// The XML bodies Granary checks before forwarding: S3's error for each way they go wrong.

#include <catch2/catch.hpp>

#include "s3api/request_xml.h"

using namespace granary::s3api;

namespace {
std::string code(S3Op op, std::string_view body) {
  auto f = checkRequestXml(op, body);
  return f ? std::string(errorInfo(f->error).code) : "ok";
}
}  // namespace

TEST_CASE("request xml: CompleteMultipartUpload", "[s3api]") {
  const char* ns = R"(<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">)";
  CHECK(code(S3Op::CompleteMultipartUpload, std::string(ns) +
                                            "<Part><PartNumber>1</PartNumber><ETag>\"a\"</ETag></Part>"
                                            "<Part><PartNumber>3</PartNumber><ETag>\"b\"</ETag></Part>"
                                            "</CompleteMultipartUpload>") == "ok");
  CHECK(code(S3Op::CompleteMultipartUpload, "<CompleteMultipartUpload><Part><PartNumber>2</PartNumber><ETag>a</ETag></Part>"
                                        "<Part><PartNumber>1</PartNumber><ETag>b</ETag></Part></CompleteMultipartUpload>") ==
        "InvalidPartOrder");
  CHECK(code(S3Op::CompleteMultipartUpload, "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>a</ETag></Part>"
                                        "<Part><PartNumber>1</PartNumber><ETag>b</ETag></Part></CompleteMultipartUpload>") ==
        "InvalidPartOrder");
  CHECK(code(S3Op::CompleteMultipartUpload, "<CompleteMultipartUpload></CompleteMultipartUpload>") == "MalformedXML");
  CHECK(code(S3Op::CompleteMultipartUpload, "<CompleteMultipartUpload><Part><PartNumber>x</PartNumber><ETag>a</ETag></Part>"
                                        "</CompleteMultipartUpload>") == "MalformedXML");
  CHECK(code(S3Op::CompleteMultipartUpload, "<CompleteMultipartUpload><Part><PartNumber>10001</PartNumber><ETag>a</ETag>"
                                        "</Part></CompleteMultipartUpload>") == "MalformedXML");
  CHECK(code(S3Op::CompleteMultipartUpload, "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part>"
                                        "</CompleteMultipartUpload>") == "MalformedXML");
  CHECK(code(S3Op::CompleteMultipartUpload, "<Complete") == "MalformedXML");
  CHECK(code(S3Op::CompleteMultipartUpload, "<Other/>") == "MalformedXML");
}

TEST_CASE("request xml: DeleteObjects", "[s3api]") {
  CHECK(code(S3Op::DeleteObjects, "<Delete><Quiet>true</Quiet><Object><Key>a</Key></Object></Delete>") == "ok");
  CHECK(code(S3Op::DeleteObjects, "<Delete></Delete>") == "MalformedXML");
  CHECK(code(S3Op::DeleteObjects, "<Delete><Object><VersionId>1</VersionId></Object></Delete>") == "MalformedXML");
  std::string many = "<Delete>";
  for (int i = 0; i < 1001; ++i) many += "<Object><Key>k" + std::to_string(i) + "</Key></Object>";
  CHECK(code(S3Op::DeleteObjects, many + "</Delete>") == "MalformedXML");
  CHECK(code(S3Op::PutObject, "not xml at all") == "ok");  // not a body Granary reads
}

TEST_CASE("request xml: keys are read as every XML parser reads them", "[s3api]") {
  using Keys = std::vector<std::pair<std::string, std::string>>;
  // A comment splits the text, CDATA and character references are decoded, whitespace is kept.
  CHECK(deleteObjectsKeys("<Delete><Object><Key>fo<!-- x -->o</Key></Object></Delete>") == Keys{{"foo", ""}});
  CHECK(deleteObjectsKeys("<Delete><Object><Key><![CDATA[a<b>&c]]></Key></Object></Delete>") == Keys{{"a<b>&c", ""}});
  CHECK(deleteObjectsKeys("<Delete><Object><Key>&#x66;&#111;o&amp;</Key><VersionId>v1</VersionId></Object></Delete>") ==
        Keys{{"foo&", "v1"}});
  CHECK(deleteObjectsKeys("<Delete><Object><Key> </Key></Object></Delete>") == Keys{{" ", ""}});
  CHECK(deleteObjectsKeys("<Delete><Object><Key>a\r\nb</Key></Object></Delete>") == Keys{{"a\nb", ""}});
  CHECK(code(S3Op::DeleteObjects, "<Delete><Object><Key>fo<!-- x -->o</Key></Object></Delete>") == "ok");
}

TEST_CASE("request xml: what two parsers could read differently is refused", "[s3api]") {
  // A DOCTYPE can define entities some parsers expand; another encoding, another reading of the bytes.
  CHECK(code(S3Op::DeleteObjects, "<!DOCTYPE d [<!ENTITY e \"foo\">]><Delete><Object><Key>&e;</Key></Object></Delete>") ==
        "MalformedXML");
  CHECK(code(S3Op::DeleteObjects, "<!DOCTYPE Delete><Delete><Object><Key>a</Key></Object></Delete>") == "MalformedXML");
  CHECK(code(S3Op::DeleteObjects, "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><Delete><Object><Key>\xe9</Key></Object></Delete>") ==
        "MalformedXML");
  CHECK(code(S3Op::DeleteObjects, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Delete><Object><Key>a</Key></Object></Delete>") == "ok");
  CHECK(code(S3Op::DeleteObjects, std::string("\xff\xfe<\0D\0", 6)) == "MalformedXML");  // UTF-16
  // Two keys in one Object, an element inside a key, a key outside any Object.
  CHECK(code(S3Op::DeleteObjects, "<Delete><Object><Key>a</Key><Key>b</Key></Object></Delete>") == "MalformedXML");
  CHECK(code(S3Op::DeleteObjects, "<Delete><Object><Key>a<b/>c</Key></Object></Delete>") == "MalformedXML");
  CHECK(code(S3Op::DeleteObjects, "<Delete><Object><Key>a</Key></Object><X><Key>b</Key></X></Delete>") == "MalformedXML");
  // Still: every Key anywhere is a key to invalidate.
  CHECK(deleteObjectsKeys("<Delete><Object><Key>a</Key></Object><X><Key>b</Key></X></Delete>").size() == 2);
}

TEST_CASE("request xml: tagging and sizes", "[s3api]") {
  auto tags = [](int n, const std::string& value = "v") {
    std::string b = "<Tagging><TagSet>";
    for (int i = 0; i < n; ++i) b += "<Tag><Key>k" + std::to_string(i) + "</Key><Value>" + value + "</Value></Tag>";
    return b + "</TagSet></Tagging>";
  };
  CHECK(code(S3Op::PutObjectTagging, tags(10)) == "ok");
  CHECK(code(S3Op::PutObjectTagging, tags(11)) == "InvalidTag");
  CHECK(code(S3Op::PutObjectTagging, tags(1, std::string(257, 'v'))) == "InvalidTag");
  CHECK(code(S3Op::PutObjectTagging, "<Tagging><TagSet><Tag><Key>a</Key><Value>1</Value></Tag><Tag><Key>a</Key><Value>2</Value></Tag></TagSet></Tagging>") ==
        "InvalidTag");
  CHECK(code(S3Op::PutObjectTagging, "<Tagging/>") == "MalformedXML");
  CHECK(code(S3Op::DeleteObjects, "<Delete>" + std::string(kMaxRequestXml, ' ') + "</Delete>") == "MaxMessageLengthExceeded");
  CHECK(isXmlBodyOp(S3Op::DeleteObjects));
  CHECK(isXmlBodyOp(S3Op::CompleteMultipartUpload));
  CHECK_FALSE(isXmlBodyOp(S3Op::PutObject));
  CHECK_FALSE(isXmlBodyOp(S3Op::UploadPart));
}

TEST_CASE("request XML: an entity reference XML does not define is malformed (a backend might decode it)", "[unit][xml]") {
  // pugixml keeps "&period;" as text, where an HTML-decoding backend reads '.': the two would act on
  // different keys.
  using Keys = std::vector<std::pair<std::string, std::string>>;
  CHECK(deleteObjectsKeys("<Delete><Object><Key>a/&period;&period;/b</Key></Object></Delete>").empty());
  CHECK(checkRequestXml(S3Op::DeleteObjects, "<Delete><Object><Key>a/&period;&period;/b</Key></Object></Delete>"));
  CHECK(checkRequestXml(S3Op::DeleteObjects, "<Delete><Object><Key>a&b</Key></Object></Delete>"));
  CHECK(checkRequestXml(S3Op::DeleteObjects, "<Delete><Object><Key>a&#xZZ;</Key></Object></Delete>"));
  CHECK_FALSE(checkRequestXml(S3Op::DeleteObjects, "<Delete><Object><Key>a&amp;b&#46;&#x2E;&lt;&gt;&quot;&apos;</Key></Object></Delete>"));
  CHECK(deleteObjectsKeys("<Delete><Object><Key>a&amp;b&#46;&#x2E;</Key></Object></Delete>") == Keys{{"a&b..", ""}});
  // Not hidden by a "<!--" inside an attribute value, which is no comment.
  CHECK(checkRequestXml(S3Op::DeleteObjects, "<Delete><Object a=\"<!--\"><Key>a/&period;/b</Key></Object><Object b=\"-->\"><Key>x</Key></Object></Delete>"));
  CHECK(checkRequestXml(S3Op::DeleteObjects, "<Delete><Object a=\"&bogus;\"><Key>x</Key></Object></Delete>"));
  // References to characters XML forbids, and such characters written raw.
  CHECK(checkRequestXml(S3Op::DeleteObjects, "<Delete><Object><Key>team-a/x&#0;/../b</Key></Object></Delete>"));
  CHECK(checkRequestXml(S3Op::DeleteObjects, "<Delete><Object><Key>x&#x1;</Key></Object></Delete>"));
  CHECK(checkRequestXml(S3Op::DeleteObjects, "<Delete><Object><Key>x&#xD800;</Key></Object></Delete>"));
  CHECK(checkRequestXml(S3Op::DeleteObjects, "<Delete><Object><Key>x&#x110000;</Key></Object></Delete>"));
  static constexpr char kNul[] = "<Delete><Object><Key>x\0/../b</Key></Object></Delete>";
  CHECK(checkRequestXml(S3Op::DeleteObjects, std::string_view(kNul, sizeof kNul - 1)));
  CHECK_FALSE(checkRequestXml(S3Op::DeleteObjects, "<Delete><Object><Key>x/../b</Key></Object></Delete>"));  // the same, no NUL
  CHECK_FALSE(checkRequestXml(S3Op::DeleteObjects, "<Delete><Object><Key>tab&#9;nl&#10;&#x1F600;</Key></Object></Delete>"));
  // UTF-8 as Unicode defines it, and nothing HTML decoders read otherwise.
  CHECK(checkRequestXml(S3Op::DeleteObjects, "<Delete><Object><Key>a/\xC0\xAE\xC0\xAE/b</Key></Object></Delete>"));
  CHECK(checkRequestXml(S3Op::DeleteObjects, "<Delete><Object><Key>a\xEF\xBF\xBE</Key></Object></Delete>"));
  CHECK(checkRequestXml(S3Op::DeleteObjects, "<Delete><Object><Key>a\xED\xA0\x80</Key></Object></Delete>"));
  CHECK(checkRequestXml(S3Op::DeleteObjects, "<Delete><Object><Key>a\xE2\x82</Key></Object></Delete>"));
  CHECK(checkRequestXml(S3Op::DeleteObjects, "<Delete><Object><Key>a&#128;</Key></Object></Delete>"));
  CHECK_FALSE(checkRequestXml(S3Op::DeleteObjects, "<Delete><Object><Key>caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80</Key></Object></Delete>"));
  CHECK(checkRequestXml(S3Op::DeleteObjects, "<?xml version=\"1.0\" encoding=\"UTF-8\" encoding=\"ISO-8859-1\"?><Delete><Object><Key>a</Key></Object></Delete>"));
  // A prefixed element is what a namespace-aware backend might read as a Key.
  CHECK(checkRequestXml(S3Op::DeleteObjects, "<Delete xmlns:s=\"http://s3.amazonaws.com/doc/2006-03-01/\"><s:Object><s:Key>b</s:Key></s:Object><Object><Key>a</Key></Object></Delete>"));
  // Inside CDATA and comments '&' is text.
  CHECK_FALSE(checkRequestXml(S3Op::DeleteObjects, "<Delete><!-- a & b --><Object><Key><![CDATA[&x]]></Key></Object></Delete>"));
}

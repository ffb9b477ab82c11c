// The XML bodies Granary checks before forwarding: S3's error for each way they go wrong.

#include <catch2/catch.hpp>

#include "s3api/request_xml.h"

using namespace granary::s3api;

namespace {
std::string code(std::string_view op, std::string_view body) {
  auto f = checkRequestXml(op, body);
  return f ? std::string(errorInfo(f->error).code) : "ok";
}
}  // namespace

TEST_CASE("request xml: CompleteMultipartUpload", "[s3api]") {
  const char* ns = R"(<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">)";
  CHECK(code("CompleteMultipartUpload", std::string(ns) +
                                            "<Part><PartNumber>1</PartNumber><ETag>\"a\"</ETag></Part>"
                                            "<Part><PartNumber>3</PartNumber><ETag>\"b\"</ETag></Part>"
                                            "</CompleteMultipartUpload>") == "ok");
  CHECK(code("CompleteMultipartUpload", "<CompleteMultipartUpload><Part><PartNumber>2</PartNumber><ETag>a</ETag></Part>"
                                        "<Part><PartNumber>1</PartNumber><ETag>b</ETag></Part></CompleteMultipartUpload>") ==
        "InvalidPartOrder");
  CHECK(code("CompleteMultipartUpload", "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>a</ETag></Part>"
                                        "<Part><PartNumber>1</PartNumber><ETag>b</ETag></Part></CompleteMultipartUpload>") ==
        "InvalidPartOrder");
  CHECK(code("CompleteMultipartUpload", "<CompleteMultipartUpload></CompleteMultipartUpload>") == "MalformedXML");
  CHECK(code("CompleteMultipartUpload", "<CompleteMultipartUpload><Part><PartNumber>x</PartNumber><ETag>a</ETag></Part>"
                                        "</CompleteMultipartUpload>") == "MalformedXML");
  CHECK(code("CompleteMultipartUpload", "<CompleteMultipartUpload><Part><PartNumber>10001</PartNumber><ETag>a</ETag>"
                                        "</Part></CompleteMultipartUpload>") == "MalformedXML");
  CHECK(code("CompleteMultipartUpload", "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part>"
                                        "</CompleteMultipartUpload>") == "MalformedXML");
  CHECK(code("CompleteMultipartUpload", "<Complete") == "MalformedXML");
  CHECK(code("CompleteMultipartUpload", "<Other/>") == "MalformedXML");
}

TEST_CASE("request xml: DeleteObjects", "[s3api]") {
  CHECK(code("DeleteObjects", "<Delete><Quiet>true</Quiet><Object><Key>a</Key></Object></Delete>") == "ok");
  CHECK(code("DeleteObjects", "<Delete></Delete>") == "MalformedXML");
  CHECK(code("DeleteObjects", "<Delete><Object><VersionId>1</VersionId></Object></Delete>") == "MalformedXML");
  std::string many = "<Delete>";
  for (int i = 0; i < 1001; ++i) many += "<Object><Key>k" + std::to_string(i) + "</Key></Object>";
  CHECK(code("DeleteObjects", many + "</Delete>") == "MalformedXML");
  CHECK(code("PutObject", "not xml at all") == "ok");  // not a body Granary reads
}

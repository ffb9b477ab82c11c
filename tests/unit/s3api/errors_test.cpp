#include <catch2/catch.hpp>
#include <pugixml.hpp>

#include "s3api/errors.h"

using namespace granary::s3api;

TEST_CASE("every error maps to S3's status and code", "[unit][errors]") {
  using S = boost::beast::http::status;
  CHECK(errorInfo(S3Error::SignatureDoesNotMatch).status == S::forbidden);
  CHECK(errorInfo(S3Error::SignatureDoesNotMatch).code == "SignatureDoesNotMatch");
  CHECK(errorInfo(S3Error::InvalidAccessKeyId).status == S::forbidden);
  CHECK(errorInfo(S3Error::RequestTimeTooSkewed).status == S::forbidden);
  CHECK(errorInfo(S3Error::AccessDenied).status == S::forbidden);
  CHECK(errorInfo(S3Error::InvalidRange).status == S::range_not_satisfiable);
  CHECK(errorInfo(S3Error::MissingContentLength).status == S::length_required);
  CHECK(errorInfo(S3Error::NotImplemented).status == S::not_implemented);
  CHECK(errorInfo(S3Error::ServiceUnavailable).status == S::service_unavailable);
  CHECK(errorInfo(S3Error::XAmzContentSHA256Mismatch).code == "XAmzContentSHA256Mismatch");
  for (int e = 0; e <= static_cast<int>(S3Error::XAmzContentSHA256Mismatch); ++e) {
    const auto& i = errorInfo(static_cast<S3Error>(e));
    CHECK_FALSE(i.code.empty());
    CHECK(static_cast<unsigned>(i.status) >= 400);
  }
}

TEST_CASE("error XML is well formed and escapes what it carries", "[unit][errors]") {
  auto xml = renderErrorXml("NoSuchKey", "The <key> & \"more\"", "/b/a&b<c>", "REQ1",
                            {{"StringToSign", "AWS4-HMAC-SHA256\n2013"}});
  pugi::xml_document doc;
  REQUIRE(doc.load_string(xml.c_str()));
  auto err = doc.child("Error");
  CHECK(std::string(err.child_value("Code")) == "NoSuchKey");
  CHECK(std::string(err.child_value("Message")) == "The <key> & \"more\"");
  CHECK(std::string(err.child_value("Resource")) == "/b/a&b<c>");
  CHECK(std::string(err.child_value("RequestId")) == "REQ1");
  CHECK(std::string(err.child_value("StringToSign")) == "AWS4-HMAC-SHA256\n2013");
  CHECK(xml.rfind("<?xml version=\"1.0\" encoding=\"UTF-8\"?>", 0) == 0);
}

#include <catch2/catch.hpp>

#include "s3api/protocol_error.h"

using granary::http::ProtocolError;
using granary::http::Status;
using granary::s3api::s3Code;

TEST_CASE("each protocol error of the HTTP server has its S3 code and status", "[s3api][protocol_error]") {
  CHECK(s3Code(ProtocolError::BadRequest) == "BadRequest");
  CHECK(s3Code(ProtocolError::RequestLineTooLong) == "InvalidURI");
  CHECK(s3Code(ProtocolError::HeaderTooLarge) == "RequestHeaderSectionTooLarge");
  CHECK(s3Code(ProtocolError::NotImplemented) == "NotImplemented");
  CHECK(s3Code(ProtocolError::VersionNotSupported) == "HttpVersionNotSupported");

  CHECK(statusOf(ProtocolError::BadRequest) == Status::bad_request);
  CHECK(statusOf(ProtocolError::RequestLineTooLong) == Status::bad_request);
  CHECK(statusOf(ProtocolError::HeaderTooLarge) == Status::request_header_fields_too_large);
  CHECK(statusOf(ProtocolError::NotImplemented) == Status::not_implemented);
  CHECK(statusOf(ProtocolError::VersionNotSupported) == Status::http_version_not_supported);
}

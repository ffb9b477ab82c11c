#include "s3api/protocol_error.h"

namespace granary::s3api {

std::string_view s3Code(http::ProtocolError e) {
  using P = http::ProtocolError;
  switch (e) {
    case P::BadRequest: return "BadRequest";
    case P::RequestLineTooLong: return "InvalidURI";  // what S3 answers a request line too long
    case P::HeaderTooLarge: return "RequestHeaderSectionTooLarge";
    case P::NotImplemented: return "NotImplemented";
    case P::VersionNotSupported: return "HttpVersionNotSupported";
  }
  return "BadRequest";
}

}  // namespace granary::s3api

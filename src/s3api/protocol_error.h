#pragma once
// The S3 face of the HTTP server's own refusals (http::ProtocolError): which S3 error code a request the
// server rejects before any handler sees it is answered with.

#include <string_view>

#include "http/handler.h"

namespace granary::s3api {

/// The S3 error code for a protocol error (the status is http::statusOf(e)).
std::string_view s3Code(http::ProtocolError e);

}  // namespace granary::s3api

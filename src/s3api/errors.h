#pragma once
// S3 wire errors: the one place that maps a condition to an HTTP status, an S3 error code and an XML body.

#include <ostream>  // (before Boost: its string_view needs a complete std::ostream)

#include <boost/beast/http/status.hpp>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace granary::s3api {

enum class S3Error {
  AccessDenied,
  AuthorizationHeaderMalformed,
  AuthorizationQueryParametersError,
  BadDigest,
  EntityTooLarge,
  EntityTooSmall,
  IncompleteBody,
  InternalError,
  InvalidAccessKeyId,
  InvalidArgument,
  InvalidBucketName,
  InvalidDigest,
  InvalidPart,
  InvalidPartNumber,
  InvalidPartOrder,
  InvalidRange,
  InvalidRedirectLocation,
  InvalidRequest,
  InvalidStorageClass,
  InvalidTag,
  InvalidURI,
  KeyTooLongError,
  MalformedXML,
  MalformedTrailerError,
  MaxMessageLengthExceeded,
  MetadataTooLarge,
  MissingContentLength,
  MissingSecurityHeader,
  NoSuchKey,
  NoSuchUpload,
  NotImplemented,
  PreconditionFailed,
  RequestTimeout,
  RequestTimeTooSkewed,
  ServiceUnavailable,
  GatewayTimeout,
  SignatureDoesNotMatch,
  SlowDown,
  XAmzContentSHA256Mismatch,
};

struct ErrorInfo {
  boost::beast::http::status status;
  std::string_view code;
  std::string_view message;  // S3's default wording
};

/// Status, code and default message of an error.
const ErrorInfo& errorInfo(S3Error e);

/// Extra <Name>value</Name> elements some errors carry (StringToSign, ActualObjectSize...).
using ErrorFields = std::vector<std::pair<std::string, std::string>>;

/// <?xml ...?><Error><Code/><Message/>[extra]<Resource/><RequestId/></Error>
std::string renderErrorXml(std::string_view code, std::string_view message, std::string_view resource,
                           std::string_view requestId, const ErrorFields& extra = {});

/// An error with its message and extra fields, carried as a value through the request path.
struct S3Failure {
  S3Error error;
  std::string message;  // empty = the default message
  ErrorFields extra;
};

}  // namespace granary::s3api

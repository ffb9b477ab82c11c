#include "s3api/errors.h"

#include <pugixml.hpp>

#include <sstream>

namespace granary::s3api {

const ErrorInfo& errorInfo(S3Error e) {
  using S = boost::beast::http::status;
  static const ErrorInfo kTable[] = {
      {S::forbidden, "AccessDenied", "Access Denied"},
      {S::bad_request, "AuthorizationHeaderMalformed", "The authorization header is malformed."},
      {S::bad_request, "AuthorizationQueryParametersError", "Error parsing the X-Amz-Credential parameter."},
      {S::bad_request, "BadDigest", "The Content-MD5 you specified did not match what we received."},
      {S::bad_request, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed object size."},
      {S::bad_request, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed object size."},
      {S::bad_request, "IncompleteBody", "You did not provide the number of bytes specified by the Content-Length HTTP header."},
      {S::internal_server_error, "InternalError", "We encountered an internal error. Please try again."},
      {S::forbidden, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records."},
      {S::bad_request, "InvalidArgument", "Invalid Argument"},
      {S::bad_request, "InvalidBucketName", "The specified bucket is not valid."},
      {S::bad_request, "InvalidDigest", "The Content-MD5 you specified was invalid."},
      {S::bad_request, "InvalidPart", "One or more of the specified parts could not be found. The part might not have been uploaded, or the specified entity tag might not have matched the part's entity tag."},
      {S::range_not_satisfiable, "InvalidPartNumber", "The requested partnumber is not satisfiable"},
      {S::bad_request, "InvalidPartOrder", "The list of parts was not in ascending order. The parts list must be specified in order by part number."},
      {S::range_not_satisfiable, "InvalidRange", "The requested range is not satisfiable"},
      {S::bad_request, "InvalidRedirectLocation", "The website redirect location must have a prefix of 'http://' or 'https://' or '/'."},
      {S::bad_request, "InvalidRequest", "Invalid Request"},
      {S::bad_request, "InvalidStorageClass", "The storage class you specified is not valid."},
      {S::bad_request, "InvalidTag", "The tag provided was not a valid tag."},
      {S::bad_request, "InvalidURI", "Couldn't parse the specified URI."},
      {S::bad_request, "KeyTooLongError", "Your key is too long"},
      {S::bad_request, "MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema."},
      {S::bad_request, "MalformedTrailerError", "The request contained trailing data that was not well-formed or did not conform to our published schema."},
      {S::bad_request, "MaxMessageLengthExceeded", "Your request was too big."},
      {S::bad_request, "MetadataTooLarge", "Your metadata headers exceed the maximum allowed metadata size."},
      {S::length_required, "MissingContentLength", "You must provide the Content-Length HTTP header."},
      {S::bad_request, "MissingSecurityHeader", "Your request is missing a required header."},
      {S::not_found, "NoSuchKey", "The specified key does not exist."},
      {S::not_found, "NoSuchUpload", "The specified multipart upload does not exist. The upload ID might be invalid, or the multipart upload might have been aborted or completed."},
      {S::not_implemented, "NotImplemented", "A header you provided implies functionality that is not implemented."},
      {S::precondition_failed, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold"},
      {S::bad_request, "RequestTimeout", "Your socket connection to the server was not read from or written to within the timeout period."},
      {S::forbidden, "RequestTimeTooSkewed", "The difference between the request time and the server's time is too large."},
      {S::service_unavailable, "ServiceUnavailable", "Reduce your request rate."},
      {S::gateway_timeout, "GatewayTimeout", "The backend did not answer in time."},
      {S::forbidden, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your key and signing method."},
      {S::service_unavailable, "SlowDown", "Please reduce your request rate."},
      {S::bad_request, "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed."},
  };
  return kTable[static_cast<int>(e)];
}

std::string renderErrorXml(std::string_view code, std::string_view message, std::string_view resource,
                           std::string_view requestId, const ErrorFields& extra) {
  pugi::xml_document doc;
  auto decl = doc.append_child(pugi::node_declaration);
  decl.append_attribute("version") = "1.0";
  decl.append_attribute("encoding") = "UTF-8";
  auto err = doc.append_child("Error");
  err.append_child("Code").text().set(std::string(code).c_str());
  err.append_child("Message").text().set(std::string(message).c_str());
  for (const auto& [k, v] : extra) err.append_child(k.c_str()).text().set(v.c_str());
  err.append_child("Resource").text().set(std::string(resource).c_str());
  err.append_child("RequestId").text().set(std::string(requestId).c_str());
  std::ostringstream os;
  doc.save(os, "", pugi::format_raw);
  return os.str();
}

}  // namespace granary::s3api

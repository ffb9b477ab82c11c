#pragma once
// Checks of a routed, authenticated request before it goes anywhere, with S3's errors: the sizes a client
// controls (key, bucket name, user metadata), values that would reach a response header, and part
// numbers. Pure: no I/O.

#include <optional>
#include <string_view>

#include "common/sigv4.h"
#include "s3api/errors.h"
#include "s3api/operation.h"
#include "s3api/result.h"
#include "s3api/routing.h"

namespace granary::s3api {

inline constexpr std::size_t kMaxKeyBytes = 1024;          // S3's limit on an object key (UTF-8 bytes)
inline constexpr std::size_t kMaxBucketNameBytes = 255;    // the legacy us-east-1 limit (new buckets: 63)
inline constexpr std::size_t kMaxUserMetadataBytes = 2048;  // x-amz-meta-* names (past the prefix) and values
inline constexpr std::uint32_t kMaxPartNumber = 10000;
inline constexpr std::size_t kMaxQueryParams = 100;  // per request (presigned URLs with headers as parameters included)

/// A header value that can be sent as it is: no control bytes (CR, LF, NUL and the rest of C0, DEL) but
/// horizontal tab.
bool isSafeHeaderValue(std::string_view v);

/// Headers a request may carry once (Host, Authorization, x-amz-date, x-amz-content-sha256, Range,
/// x-amz-copy-source, Content-MD5, ...): two of one could be read one way here and another way at the
/// backend. Checked before the signature. @return InvalidRequest naming the header, or success.
S3Result<void> checkSingletonHeaders(const sigv4::HeaderList& headers);

/// Headers stored with a new object, checked as S3 checks them (x-amz-tagging, x-amz-storage-class,
/// x-amz-website-redirect-location, x-amz-acl): a write-back bucket acknowledges a PUT before the backend
/// sees it, so what the backend would refuse must be refused here, or its upload would fail forever.
/// @return InvalidTag, InvalidStorageClass, InvalidRedirectLocation, InvalidArgument; or success.
S3Result<void> checkStoredHeaders(const sigv4::HeaderList& headers);

/// @param method the request method; @param op its operation (resolveOperation).
/// @return the error S3 answers, or success. Possible errors: KeyTooLongError, InvalidBucketName,
///         InvalidRequest (partNumber with Range), InvalidArgument (a response-*
///         override with control bytes; a part number outside 1-10000), MetadataTooLarge.
S3Result<void> checkRequest(std::string_view method, S3Op op, const RoutedRequest& r,
                            const sigv4::HeaderList& headers);

/// The number of parts an S3 ETag says its object has: N for a multipart ETag "<md5>-N", else 1.
std::uint32_t partCountOf(std::string_view etag);

}  // namespace granary::s3api

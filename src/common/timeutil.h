#pragma once
// Time formats S3 uses: ISO 8601 basic ("20130524T000000Z") and HTTP dates (RFC 7231).

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace granary {

/// "YYYYMMDDTHHMMSSZ" in UTC.
std::string formatAmzDate(std::chrono::system_clock::time_point t);
/// Parses "YYYYMMDDTHHMMSSZ"; nullopt when malformed.
std::optional<std::chrono::system_clock::time_point> parseAmzDate(std::string_view s);
/// "Fri, 24 May 2013 00:00:00 GMT"
std::string formatHttpDate(std::chrono::system_clock::time_point t);
/// "2013-05-24T00:00:00.123Z" in UTC: the LastModified of S3's XML answers.
std::string formatIsoTime(std::chrono::system_clock::time_point t);
/// Milliseconds since the Unix epoch, now (plus what advanceClockForTesting added).
std::int64_t nowMillis();
/// Tests only: a fake clock for metadata TTLs and stale-if-error windows. Moves nowMillis() forward by
/// `by` for the rest of the process (never called outside tests).
void advanceClockForTesting(std::chrono::milliseconds by);
/// Parses RFC 1123 dates ("Fri, 24 May 2013 00:00:00 GMT", or "+0000" for GMT); nullopt when malformed.
std::optional<std::chrono::system_clock::time_point> parseHttpDate(std::string_view s);

}  // namespace granary

#pragma once
// The access log: one line per request, in one of three formats. Pure formatting (the caller logs the
// line): client-controlled text is escaped so that one request is always one line.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace spdlog {
class logger;
}

namespace granary::s3api {

enum class AccessLogFormat {
  Text,    // "access id=... op=... status=..." (key=value), after the log's time and level
  Json,    // one JSON object per line, nothing else on it
  Common,  // NCSA common log format, then id=, op=, cache=, us= fields
};

/// What one request's line says.
struct AccessRecord {
  std::string_view requestId;
  std::string_view remote;  // the client's address, or "internal"
  std::string_view op;      // the operation's name (opName)
  std::string_view method;
  std::string_view bucket, key;
  std::string_view path;    // the request's path, without its query (CLF's request line)
  unsigned httpVersion = 11;  // 10, 11
  unsigned status = 0;
  std::string_view error;   // S3 error code, or why the request stopped
  std::uint64_t bytesIn = 0, bytesOut = 0;
  std::int64_t micros = 0;  // time taken
  std::string_view accessKey;
  std::string_view cache;   // x-granary-cache ("hit", "miss", "bypass"...)
};

/// @param now the time written in the JSON and CLF lines.
std::string formatAccessLine(AccessLogFormat format, const AccessRecord& r, std::chrono::system_clock::time_point now);

/// The line of a request refused before it was parsed (no remote, operation or key to report).
std::string formatProtocolErrorLine(AccessLogFormat format, std::string_view requestId, unsigned status,
                                    std::string_view code, std::chrono::system_clock::time_point now);

/// CLF's time: "27/Nov/2026:13:53:44 +0000".
std::string clfTime(std::chrono::system_clock::time_point t);

/// Writes `line` at info level to `log` (null: the default logger).
void writeAccessLine(spdlog::logger* log, const std::string& line);

}  // namespace granary::s3api

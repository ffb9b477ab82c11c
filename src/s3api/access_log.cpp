#include "s3api/access_log.h"

#include <ctime>

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include "common/log_escape.h"
#include "common/timeutil.h"

namespace granary::s3api {

std::string clfTime(std::chrono::system_clock::time_point now) {
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%d/%b/%Y:%H:%M:%S +0000", &tm);
  return buf;
}

std::string formatAccessLine(AccessLogFormat format, const AccessRecord& r, std::chrono::system_clock::time_point now) {
  switch (format) {
    case AccessLogFormat::Json:
      return fmt::format(
          R"({{"time":"{}","id":"{}","remote":"{}","op":"{}","method":"{}","bucket":"{}","key":"{}","status":{},)"
          R"("error":"{}","bytes_in":{},"bytes_out":{},"duration_us":{},"access_key":"{}","cache":"{}"}})",
          formatIsoTime(now), jsonEscape(r.requestId), r.remote, r.op, jsonEscape(r.method), jsonEscape(r.bucket),
          jsonEscape(r.key), r.status, jsonEscape(r.error), r.bytesIn, r.bytesOut, r.micros, jsonEscape(r.accessKey),
          r.cache);
    case AccessLogFormat::Common:
      // The request line names the path only: query strings can carry presigned signatures and tokens.
      return fmt::format("{} - {} [{}] \"{} {} HTTP/{}.{}\" {} {} id={} op={} cache={} us={}", r.remote,
                         r.accessKey.empty() ? "-" : clfField(r.accessKey), clfTime(now), clfField(r.method),
                         clfField(r.path), r.httpVersion / 10, r.httpVersion % 10, r.status, r.bytesOut,
                         logField(r.requestId), logField(r.op), r.cache, r.micros);
    case AccessLogFormat::Text:
      break;
  }
  // Client text (bucket, key, access key) and backend text (error codes) are escaped: one request, one line.
  return fmt::format("access id={} remote={} op={} method={} bucket={} key={} status={} error={} in={} out={} us={} ak={} cache={}",
                     logField(r.requestId), r.remote, r.op, logField(r.method), logField(r.bucket), logField(r.key),
                     r.status, logField(r.error), r.bytesIn, r.bytesOut, r.micros, logField(r.accessKey), r.cache);
}

std::string formatProtocolErrorLine(AccessLogFormat format, std::string_view id, unsigned status, std::string_view code,
                                    std::chrono::system_clock::time_point now) {
  switch (format) {
    case AccessLogFormat::Json:
      return fmt::format(R"({{"time":"{}","id":"{}","op":"-","status":{},"error":"{}","bytes_in":0,"bytes_out":0}})",
                         formatIsoTime(now), id, status, jsonEscape(code));
    case AccessLogFormat::Common:
      return fmt::format("- - - [{}] \"-\" {} 0 id={} op=- error={}", clfTime(now), status, id, code);
    case AccessLogFormat::Text:
      break;
  }
  return fmt::format("access id={} op=- status={} error={} in=0 out=0", id, status, code);
}

void writeAccessLine(spdlog::logger* log, const std::string& line) {
  (log ? *log : *spdlog::default_logger_raw()).info("{}", line);
}

}  // namespace granary::s3api

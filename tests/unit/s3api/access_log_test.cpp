// The access log's three formats: every field where it belongs, client-controlled text escaped so that
// one request is always one line (and, in JSON, one valid object).

#include <catch2/catch.hpp>

#include <chrono>
#include <string>

#include "s3api/access_log.h"

using namespace granary::s3api;

namespace {
// 2026-11-27T13:53:44Z
const auto kNow = std::chrono::system_clock::time_point(std::chrono::seconds(1795787624));

AccessRecord sample() {
  AccessRecord r;
  r.requestId = "0123456789ABCDEF";
  r.remote = "10.0.0.7";
  r.op = "GetObject";
  r.method = "GET";
  r.bucket = "data";
  r.key = "dir/file.bin";
  r.path = "/data/dir/file.bin";
  r.httpVersion = 11;
  r.status = 206;
  r.error = "";
  r.bytesIn = 0;
  r.bytesOut = 4096;
  r.micros = 1234;
  r.accessKey = "AKIDEXAMPLE";
  r.cache = "hit";
  return r;
}
}  // namespace

TEST_CASE("access log: CLF time", "[unit][access_log]") {
  CHECK(clfTime(kNow) == "27/Nov/2026:13:53:44 +0000");
}

TEST_CASE("access log: text format", "[unit][access_log]") {
  CHECK(formatAccessLine(AccessLogFormat::Text, sample(), kNow) ==
        "access id=0123456789ABCDEF remote=10.0.0.7 op=GetObject method=GET bucket=data key=dir/file.bin status=206 "
        "error=- in=0 out=4096 us=1234 ak=AKIDEXAMPLE cache=hit");
  // Client text cannot start a second line or a second field.
  AccessRecord r = sample();
  r.key = "a\nb c";
  r.accessKey = "k\r\nop=Forged";
  r.error = "Bad Thing";
  const std::string line = formatAccessLine(AccessLogFormat::Text, r, kNow);
  CHECK(line.find('\n') == std::string::npos);
  CHECK(line.find('\r') == std::string::npos);
  CHECK(line.find(" op=Forged") == std::string::npos);
  CHECK(line.find("key=a b c") == std::string::npos);
}

TEST_CASE("access log: JSON format", "[unit][access_log]") {
  CHECK(formatAccessLine(AccessLogFormat::Json, sample(), kNow) ==
        R"({"time":"2026-11-27T13:53:44.000Z","id":"0123456789ABCDEF","remote":"10.0.0.7","op":"GetObject",)"
        R"("method":"GET","bucket":"data","key":"dir/file.bin","status":206,"error":"","bytes_in":0,"bytes_out":4096,)"
        R"("duration_us":1234,"access_key":"AKIDEXAMPLE","cache":"hit"})");
  AccessRecord r = sample();
  r.key = "q\"uote\\back\nline";
  r.bucket = "b\"";
  r.accessKey = "\x01";
  const std::string line = formatAccessLine(AccessLogFormat::Json, r, kNow);
  CHECK(line.find('\n') == std::string::npos);
  CHECK(line.find(R"("key":"q\"uote\\back\u000aline")") != std::string::npos);
  CHECK(line.find(R"("bucket":"b\"")") != std::string::npos);
  CHECK(line.find(R"("access_key":"\u0001")") != std::string::npos);
}

TEST_CASE("access log: common log format", "[unit][access_log]") {
  CHECK(formatAccessLine(AccessLogFormat::Common, sample(), kNow) ==
        "10.0.0.7 - AKIDEXAMPLE [27/Nov/2026:13:53:44 +0000] \"GET /data/dir/file.bin HTTP/1.1\" 206 4096 "
        "id=0123456789ABCDEF op=GetObject cache=hit us=1234");
  AccessRecord r = sample();
  r.accessKey = "";
  r.httpVersion = 10;
  CHECK(formatAccessLine(AccessLogFormat::Common, r, kNow).starts_with("10.0.0.7 - - [") );
  CHECK(formatAccessLine(AccessLogFormat::Common, r, kNow).find("HTTP/1.0\"") != std::string::npos);
  // A path or key that would close the quoted request line or start a new line is escaped.
  r.path = "/data/a\" 200 0\nforged";
  r.accessKey = "a b";
  const std::string line = formatAccessLine(AccessLogFormat::Common, r, kNow);
  CHECK(line.find('\n') == std::string::npos);
  CHECK(line.find("a\" 200") == std::string::npos);
  CHECK(line.find(" - a b [") == std::string::npos);
}

TEST_CASE("access log: a request refused before it was parsed", "[unit][access_log]") {
  CHECK(formatProtocolErrorLine(AccessLogFormat::Text, "ID1", 400, "BadRequest", kNow) ==
        "access id=ID1 op=- status=400 error=BadRequest in=0 out=0");
  CHECK(formatProtocolErrorLine(AccessLogFormat::Json, "ID1", 431, "RequestHeaderSectionTooLarge", kNow) ==
        R"({"time":"2026-11-27T13:53:44.000Z","id":"ID1","op":"-","status":431,"error":"RequestHeaderSectionTooLarge",)"
        R"("bytes_in":0,"bytes_out":0})");
  CHECK(formatProtocolErrorLine(AccessLogFormat::Common, "ID1", 400, "BadRequest", kNow) ==
        "- - - [27/Nov/2026:13:53:44 +0000] \"-\" 400 0 id=ID1 op=- error=BadRequest");
}

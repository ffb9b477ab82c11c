#include "common/timeutil.h"

#include <atomic>
#include <cstdio>
#include <ctime>

namespace granary {
namespace {
bool allDigits(std::string_view s) {
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return !s.empty();
}
int num(std::string_view s) {
  int v = 0;
  for (char c : s) v = v * 10 + (c - '0');
  return v;
}
std::optional<std::chrono::system_clock::time_point> fromTm(std::tm& tm) {
  if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
      tm.tm_min > 59 || tm.tm_sec > 60)
    return std::nullopt;
  time_t t = timegm(&tm);
  if (t == static_cast<time_t>(-1)) return std::nullopt;
  // system_clock counts nanoseconds in 64 bits (years 1678 to 2262): a date outside, which any client
  // may send ("99991231T235959Z"), would overflow the conversion. A year's margin keeps the arithmetic
  // done on parsed times (presigned expiry, clock skew) in range too.
  constexpr time_t kLimit =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::duration::max()).count() -
      366 * 86400;
  if (t > kLimit || t < -kLimit) return std::nullopt;
  return std::chrono::system_clock::from_time_t(t);
}
}  // namespace

std::string formatAmzDate(std::chrono::system_clock::time_point t) {
  time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::optional<std::chrono::system_clock::time_point> parseAmzDate(std::string_view s) {
  if (s.size() != 16 || s[8] != 'T' || s[15] != 'Z') return std::nullopt;
  if (!allDigits(s.substr(0, 8)) || !allDigits(s.substr(9, 6))) return std::nullopt;
  std::tm tm{};
  tm.tm_year = num(s.substr(0, 4)) - 1900;
  tm.tm_mon = num(s.substr(4, 2)) - 1;
  tm.tm_mday = num(s.substr(6, 2));
  tm.tm_hour = num(s.substr(9, 2));
  tm.tm_min = num(s.substr(11, 2));
  tm.tm_sec = num(s.substr(13, 2));
  return fromTm(tm);
}

std::string formatHttpDate(std::chrono::system_clock::time_point t) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm.tm_wday], tm.tm_mday,
                kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

std::string formatIsoTime(std::chrono::system_clock::time_point t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const time_t tt = static_cast<time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
  return buf;
}

namespace {
std::atomic<std::int64_t> clockOffsetMs{0};  // advanceClockForTesting
}  // namespace

std::int64_t nowMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
             .count() +
         clockOffsetMs.load(std::memory_order_relaxed);
}

void advanceClockForTesting(std::chrono::milliseconds by) { clockOffsetMs.fetch_add(by.count(), std::memory_order_relaxed); }

std::optional<std::chrono::system_clock::time_point> parseHttpDate(std::string_view s) {
  // "Fri, 24 May 2013 00:00:00 GMT"
  static constexpr std::string_view kMonths = "JanFebMarAprMayJunJulAugSepOctNovDec";
  if (s.size() == 31 && s.substr(25) == " +0000") s = s.substr(0, 26);  // "... 19:36:42 +0000" (UTC)
  else if (s.size() != 29 || s.substr(26) != "GMT") return std::nullopt;
  if (s[3] != ',') return std::nullopt;
  std::string_view day = s.substr(5, 2), mon = s.substr(8, 3), year = s.substr(12, 4);
  std::string_view hh = s.substr(17, 2), mm = s.substr(20, 2), ss = s.substr(23, 2);
  if (!allDigits(day) || !allDigits(year) || !allDigits(hh) || !allDigits(mm) || !allDigits(ss))
    return std::nullopt;
  auto m = kMonths.find(mon);
  if (m == std::string_view::npos || m % 3 != 0) return std::nullopt;
  std::tm tm{};
  tm.tm_year = num(year) - 1900;
  tm.tm_mon = static_cast<int>(m / 3);
  tm.tm_mday = num(day);
  tm.tm_hour = num(hh);
  tm.tm_min = num(mm);
  tm.tm_sec = num(ss);
  return fromTm(tm);
}

}  // namespace granary

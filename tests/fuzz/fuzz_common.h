#pragma once
// Shared by the fuzz targets (tests/fuzz/*.cpp): a reader that turns the fuzz input into choices and
// data, a scratch directory for targets that replay files, and FUZZ_CHECK for the properties each
// target asserts beyond "does not crash". Plain C++: the same sources build as libFuzzer targets
// (clang, build-fuzz/) and as corpus replayers (GCC, build/ and build-asan/, replay_main.cpp).

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

namespace granary::fuzz {

/// Consumes the input from the front. Past its end every number reads as 0 and every string as empty,
/// so a short input is still a valid (if dull) test case.
class Input {
 public:
  Input(const std::uint8_t* data, std::size_t size) : p_(reinterpret_cast<const char*>(data)), n_(size) {}

  std::size_t remaining() const { return n_; }
  bool empty() const { return n_ == 0; }

  std::uint8_t u8() {
    if (n_ == 0) return 0;
    const auto v = static_cast<std::uint8_t>(*p_);
    ++p_, --n_;
    return v;
  }
  std::uint16_t u16() { return static_cast<std::uint16_t>(u8() | (u8() << 8)); }
  std::uint32_t u32() { return static_cast<std::uint32_t>(u16()) | (static_cast<std::uint32_t>(u16()) << 16); }
  std::uint64_t u64() { return static_cast<std::uint64_t>(u32()) | (static_cast<std::uint64_t>(u32()) << 32); }
  bool flag() { return (u8() & 1) != 0; }
  /// A value in [lo, hi] (hi >= lo).
  std::uint64_t range(std::uint64_t lo, std::uint64_t hi) {
    const std::uint64_t span = hi - lo;
    if (span == 0) return lo;
    std::uint64_t v = span < 0x100 ? u8() : span < 0x10000 ? u16() : span < 0x100000000ull ? u32() : u64();
    return lo + (span == ~std::uint64_t{0} ? v : v % (span + 1));
  }
  /// Up to `n` bytes.
  std::string_view bytes(std::size_t n) {
    if (n > n_) n = n_;
    std::string_view s(p_, n);
    p_ += n, n_ -= n;
    return s;
  }
  /// Up to (not including) the next `sep`, which is consumed; the rest when there is none.
  std::string_view until(char sep) {
    const void* hit = std::memchr(p_, sep, n_);
    if (!hit) return rest();
    const std::size_t len = static_cast<std::size_t>(static_cast<const char*>(hit) - p_);
    std::string_view s(p_, len);
    p_ += len + 1, n_ -= len + 1;
    return s;
  }
  std::string_view line() { return until('\n'); }
  std::string_view rest() { return bytes(n_); }

 private:
  const char* p_;
  std::size_t n_;
};

/// A deterministic stream of numbers from a seed (xorshift64*), for slice sizes and the like.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : s_(seed * 0x9E3779B97F4A7C15ull + 1) {}
  std::uint64_t next() {
    s_ ^= s_ >> 12, s_ ^= s_ << 25, s_ ^= s_ >> 27;
    return s_ * 0x2545F4914F6CDD1Dull;
  }
  /// In [1, max] (max >= 1).
  std::size_t upTo(std::size_t max) { return 1 + static_cast<std::size_t>(next() % max); }

 private:
  std::uint64_t s_;
};

/// One scratch directory per process, on tmpfs when there is one (/dev/shm): the journal targets write
/// files on every run, and fsync there costs nothing. Removed at exit.
inline const std::string& scratchDir() {
  static const std::string dir = [] {
    std::string base = "/tmp";
    if (const char* t = std::getenv("GRANARY_FUZZ_TMP")) base = t;
    else if (::access("/dev/shm", W_OK) == 0) base = "/dev/shm";
    else if (const char* t = std::getenv("TMPDIR")) base = t;
    std::string tmpl = base + "/granary-fuzz-XXXXXX";
    if (!::mkdtemp(tmpl.data())) {
      std::perror("mkdtemp");
      std::abort();
    }
    static struct Cleanup {
      std::string path;
      ~Cleanup() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
      }
    } cleanup{tmpl};
    return tmpl;
  }();
  return dir;
}

/// Empties (creating) `dir`.
inline void resetDir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  std::filesystem::create_directories(dir);
}

inline void writeFile(const std::string& path, std::string_view data) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) {
    std::perror(path.c_str());
    std::abort();
  }
  if (!data.empty() && std::fwrite(data.data(), 1, data.size(), f) != data.size()) std::abort();
  std::fclose(f);
}

inline std::string readFile(const std::string& path) {
  std::string out;
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return out;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  std::fclose(f);
  return out;
}

/// GRANARY_FUZZ_TRACE=1: targets print what each input led to (to check that seeds reach their code).
inline bool tracing() {
  static const bool on = std::getenv("GRANARY_FUZZ_TRACE") != nullptr;
  return on;
}
#define FUZZ_TRACE(...)                                                 \
  do {                                                                  \
    if (::granary::fuzz::tracing()) std::fprintf(stderr, __VA_ARGS__); \
  } while (0)

[[noreturn]] inline void checkFailed(const char* expr, const char* file, int line, const std::string& what) {
  std::fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed%s%s\n", file, line, expr, what.empty() ? "" : ": ", what.c_str());
  std::abort();
}

}  // namespace granary::fuzz

/// A property the target asserts: on failure prints it and aborts (a crash to libFuzzer).
#define FUZZ_CHECK(cond, ...)                                                                    \
  do {                                                                                           \
    if (!(cond)) ::granary::fuzz::checkFailed(#cond, __FILE__, __LINE__, std::string{__VA_ARGS__}); \
  } while (0)

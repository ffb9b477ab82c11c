#pragma once
// A fresh directory under /tmp for one test, removed with everything in it when the test ends.

#include <stdlib.h>

#include <filesystem>
#include <string>

namespace granary::test {

struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& prefix = "granary-test") {
    std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
    path = ::mkdtemp(tmpl.data());
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() { std::filesystem::remove_all(path); }
};

}  // namespace granary::test

// Fuzz target: Granary's configuration file (src/config.h) as `granary --config` / `--check-config` read
// it: loadConfigFile from a file holding the input, then validate() and describe(). ConfigError is the
// expected answer to a bad file; any other exception, or a crash, is a bug.
// Property: the effective configuration describe() prints is itself a valid file that describes the same
// way (secrets stay masked).
//
// Input: the TOML file as is. corpus/config/ holds the example config and the test data files.

#include <string>

#include "config.h"
#include "fuzz_common.h"

using namespace granary;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 64 * 1024) return 0;
  const std::string path = fuzz::scratchDir() + "/config.toml";
  fuzz::writeFile(path, std::string_view(reinterpret_cast<const char*>(data), size));

  Config cfg;
  try {
    loadConfigFile(path, cfg);
    validate(cfg);
  } catch (const ConfigError& e) {
    FUZZ_TRACE("config: %s\n", e.what());
    return 0;  // refused with a message naming the problem
  }
  FUZZ_TRACE("config: valid\n");
  const std::string described = describe(cfg);

  // What --check-config prints reads back as the same configuration.
  fuzz::writeFile(path, described);
  Config again;
  try {
    loadConfigFile(path, again);
  } catch (const ConfigError& e) {
    FUZZ_CHECK(false, std::string("describe() printed a file that does not load: ") + e.what() + "\n" + described);
  }
  FUZZ_CHECK(describe(again) == described, "describe(load(describe(c))) != describe(c):\n" + described +
                                               "\n---\n" + describe(again));
  return 0;
}

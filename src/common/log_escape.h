#pragma once
// Client-supplied text (keys, bucket names, header values, backend answers) on its way into a log line.
// Nothing a client sends may end a line, forge the next one, or drive a terminal: control bytes, DEL,
// the backslash and bytes that are not valid UTF-8 become \xNN escapes. Valid UTF-8 passes unchanged.

#include <string>
#include <string_view>

namespace granary {

/// `s` with C0 controls, DEL, '\' and invalid UTF-8 escaped as \xNN.
std::string logSafe(std::string_view s);

/// logSafe(s), with space and '"' escaped too: one field of a space-separated key=value line. An empty
/// value is "-".
std::string logField(std::string_view s);

/// The inside of a JSON string literal: '"', '\' and control bytes escaped as JSON does, and bytes
/// that are not valid UTF-8 as \u00XX (so every line stays valid JSON).
std::string jsonEscape(std::string_view s);

/// A field of a common-log-format line: space, '"', control bytes and every byte past 0x7e as %XX.
std::string clfField(std::string_view s);

}  // namespace granary

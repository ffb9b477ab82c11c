#pragma once
// What every admin job's JSON (GET /admin/jobs) starts with, load and prefetch alike.

#include <boost/json/object.hpp>

#include <string>
#include <string_view>

namespace granary::admin {

inline boost::json::object jobJsonHead(std::string_view id, std::string_view kind, std::string_view bucket,
                                       std::string_view prefix, std::string_view state, std::string_view error) {
  boost::json::object o;
  o["id"] = id;
  o["kind"] = kind;
  o["bucket"] = bucket;
  o["prefix"] = prefix;
  o["state"] = state;
  if (!error.empty()) o["error"] = error;
  return o;
}

}  // namespace granary::admin

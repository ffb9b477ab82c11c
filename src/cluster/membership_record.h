#pragma once
// A member's record in etcd, under /granary/clusters/NAME/members/ID, as JSON:
//   {"id":"n1","address":"10.0.0.5:9100","weight":1,"state":"active","since":1764262800000,
//    "chunks":1200,"bytes":1258291200,"peer_bytes_served":0,"peer_bytes_fetched":0}
// Pure: writing and reading it, and the keys. The lease and revision come from etcd, not the record.

#include <string>
#include <string_view>

#include "cluster/member_set.h"

namespace granary::cluster {

/// "/granary/clusters/NAME/members/" (every member's key starts with it).
std::string membersPrefix(std::string_view cluster);
/// membersPrefix(cluster) + id.
std::string memberKey(std::string_view cluster, std::string_view id);

/// The record of `m` (id, address, weight, state, since = registeredMs, and the published numbers).
std::string recordJson(const Member& m);

/// Reads a record into `out` (lease and revision left as they are). False, with `error`, for text that is
/// not such a record: malformed JSON, a missing or ill-typed id/address, an unknown state, a weight
/// outside (0, 100], or an id that differs from `keyId` (the last part of its key; "" = not checked).
bool parseRecord(std::string_view json, std::string_view keyId, Member& out, std::string& error);

/// Whether `id` is a valid node id (1-128 letters, digits, '-', '_', '.').
bool validNodeId(std::string_view id);

}  // namespace granary::cluster

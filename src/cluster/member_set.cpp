#include "cluster/member_set.h"

#include <xxhash.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace granary::cluster {

std::string_view name(MemberState s) {
  switch (s) {
    case MemberState::Joining: return "joining";
    case MemberState::Active: return "active";
    case MemberState::Draining: return "draining";
  }
  return "active";
}

bool parseMemberState(std::string_view s, MemberState& out) {
  if (s == "joining") out = MemberState::Joining;
  else if (s == "active") out = MemberState::Active;
  else if (s == "draining") out = MemberState::Draining;
  else return false;
  return true;
}

MemberSet::MemberSet(std::vector<Member> members, std::string self, std::uint64_t revision)
    : members_(std::move(members)), self_(std::move(self)), revision_(revision) {
  std::sort(members_.begin(), members_.end(), [](const Member& a, const Member& b) { return a.id < b.id; });
}

const Member* MemberSet::find(std::string_view id) const {
  auto it = std::lower_bound(members_.begin(), members_.end(), id,
                             [](const Member& m, std::string_view v) { return m.id < v; });
  return it != members_.end() && it->id == id ? &*it : nullptr;
}

std::vector<const Member*> MemberSet::rank(std::string_view key, std::size_t k,
                                           const std::vector<std::string_view>& exclude) const {
  std::vector<std::pair<double, const Member*>> scored;
  scored.reserve(members_.size());
  for (const auto& m : members_) {
    if (m.state != MemberState::Active || m.weight <= 0) continue;
    if (std::find(exclude.begin(), exclude.end(), std::string_view(m.id)) != exclude.end()) continue;
    const std::uint64_t seed = XXH64(m.id.data(), m.id.size(), 0x6772616e617279ULL);
    const std::uint64_t h = XXH64(key.data(), key.size(), seed);
    // The top 53 bits as a double strictly inside (0, 1).
    const double u = (static_cast<double>(h >> 11) + 0.5) / 9007199254740992.0;
    scored.emplace_back(-m.weight / std::log(u), &m);
  }
  const std::size_t n = std::min(k, scored.size());
  std::partial_sort(scored.begin(), scored.begin() + static_cast<std::ptrdiff_t>(n), scored.end(),
                    [](const auto& a, const auto& b) {
                      return a.first != b.first ? a.first > b.first : a.second->id < b.second->id;
                    });
  std::vector<const Member*> out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) out.push_back(scored[i].second);
  return out;
}

std::vector<Member> parseStaticMembers(const std::vector<std::string>& entries) {
  std::vector<Member> out;
  for (const auto& e : entries) {
    const auto eq = e.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == e.size())
      throw std::invalid_argument("cluster member '" + e + "' must be ID=ADDR:PORT");
    Member m;
    m.id = e.substr(0, eq);
    m.address = e.substr(eq + 1);
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace granary::cluster

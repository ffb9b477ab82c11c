#pragma once
// Who is in the cluster, as one immutable snapshot, and who owns what in it: weighted rendezvous
// (highest random weight) hashing over the active members. Pure: no etcd, no sockets. Membership
// (membership.h) publishes a new MemberSet each time etcd says the members changed; readers take the
// current one (MemberSource::current) and rank a chunk's owners in it.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace granary::cluster {

/// A member's place in its life: a node registers as Joining, becomes Active once it has seen the
/// membership, and an operator's `granary admin drain` makes it Draining (it serves, owns nothing).
enum class MemberState : std::uint8_t { Joining, Active, Draining };

std::string_view name(MemberState s);
/// "joining", "active", "draining"; false for anything else.
bool parseMemberState(std::string_view s, MemberState& out);

struct Member {
  std::string id;       // the node id: letters, digits, '-', '_', '.'
  std::string address;  // the peer port other nodes dial, "ADDR:PORT"
  double weight = 1.0;  // its share of ownership
  MemberState state = MemberState::Active;
  std::int64_t leaseId = 0;        // its etcd lease (0: a static member)
  std::int64_t registeredMs = 0;   // wall clock of its registration (record's "since")
  std::uint64_t modRevision = 0;   // etcd revision of its record's last change
  // What the member last published about itself (refreshed with its record; 0 when unknown).
  std::uint64_t chunks = 0, bytes = 0, peerBytesServed = 0, peerBytesFetched = 0;
};

/// One view of the cluster. Immutable once published; shared by every thread that reads it.
class MemberSet {
 public:
  MemberSet() = default;
  /// @param members any order (kept sorted by id); @param self this node's id (it may be absent: a node
  ///        whose record etcd has not shown yet).
  MemberSet(std::vector<Member> members, std::string self, std::uint64_t revision = 0);

  const std::vector<Member>& members() const { return members_; }
  const std::string& self() const { return self_; }
  /// The etcd revision this view was read at (0: static).
  std::uint64_t revision() const { return revision_; }
  const Member* find(std::string_view id) const;

  /// The Active members ranked for `key` by weighted rendezvous hashing, best first, at most `k`.
  /// Score of member m: -weight(m) / ln(u), u = xxh64(key, seed = xxh64(m.id)) mapped into (0, 1):
  /// a member with twice the weight owns twice the keys, and a member joining or leaving moves only
  /// the keys it wins or held. Members named in `exclude` are skipped (a lazy join's "previous owner"
  /// is rank(key, 1, {self})).
  std::vector<const Member*> rank(std::string_view key, std::size_t k,
                                  const std::vector<std::string_view>& exclude = {}) const;

 private:
  std::vector<Member> members_;
  std::string self_;
  std::uint64_t revision_ = 0;
};
using MemberSetPtr = std::shared_ptr<const MemberSet>;

/// Where readers get the current view. Thread-safe; current() is cheap (a shared_ptr copy under a short
/// lock) and never blocks on etcd.
class MemberSource {
 public:
  virtual ~MemberSource() = default;
  virtual MemberSetPtr current() const = 0;
};

/// A fixed view (cluster.members, tests).
class StaticMembers final : public MemberSource {
 public:
  explicit StaticMembers(MemberSetPtr set) : set_(std::move(set)) {}
  MemberSetPtr current() const override { return set_; }

 private:
  MemberSetPtr set_;
};

/// "ID=ADDR:PORT" entries (cluster.members) as Active members of weight 1; throws std::invalid_argument.
std::vector<Member> parseStaticMembers(const std::vector<std::string>& entries);

}  // namespace granary::cluster

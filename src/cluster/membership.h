#pragma once
// This node's membership in an etcd-coordinated cluster, and the members it sees (a MemberSource).
//
// On its own thread (one io_context, the EtcdClient on it; nothing here runs on Granary's I/O threads):
//  - registration: grants a lease of lease_ttl, puts this node's record (membership_record.h) under
//    /granary/clusters/NAME/members/ID attached to it, renews it every TTL/3 and republishes the record
//    when its state or numbers change. A lease etcd no longer knows (expired while etcd was away) is
//    granted again and the record put again. A renewal that fails is counted and retried; the node keeps
//    serving meanwhile.
//  - view: lists the prefix (one consistent snapshot at revision R), publishes it, and watches from R+1,
//    applying each put and delete. A compacted start revision, a broken stream or an unreachable etcd
//    ends the watch: it lists again (backing off while etcd is away). Until then the last view stays
//    published and status() says it is not current.
//  - states: the node registers as Joining and becomes Active once a view that holds its own record has
//    been seen; drain() makes it Draining (it keeps serving, owns nothing). stop() revokes the lease so
//    the others drop the record at once rather than after the TTL.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cluster/member_set.h"

namespace granary::cluster {

/// What a node publishes about itself (refreshed into its record).
struct MemberNumbers {
  std::uint64_t chunks = 0, bytes = 0, peerBytesServed = 0, peerBytesFetched = 0;
};

struct MembershipOptions {
  std::vector<std::string> etcd;  // gateway URLs
  std::string cluster = "granary";
  std::string nodeId;
  std::string address;            // peer_advertise
  double weight = 1.0;
  std::chrono::milliseconds leaseTtl{10'000};
  std::chrono::milliseconds callTimeout{3'000};  // each etcd call, connect included
  std::chrono::milliseconds numbersInterval{10'000};  // how often changed numbers are republished
  /// Called on the membership thread; must be thread-safe and quick. May be empty.
  std::function<MemberNumbers()> numbers;
};

/// A point-in-time report (admin, /readyz, /metrics).
struct MembershipStatus {
  bool etcdReachable = false;     // the last call to etcd answered
  bool current = false;           // the view follows etcd (a watch is open on a fresh listing)
  bool everListed = false;        // a listing has been seen since start
  MemberState selfState = MemberState::Joining;
  std::int64_t leaseId = 0;       // 0: not registered
  std::int64_t registeredMs = 0;  // wall clock of the current registration
  std::int64_t lastUpdateMs = 0;  // wall clock of the last view etcd confirmed (now while current)
  std::int64_t lastContactMs = 0; // wall clock of the last answer from etcd
  std::uint64_t revision = 0;
  std::uint64_t leaseRenewFailures = 0, relists = 0, registrations = 0;
  std::string lastError;
};

class Membership final : public MemberSource {
 public:
  explicit Membership(MembershipOptions opts);
  ~Membership() override;
  Membership(const Membership&) = delete;
  Membership& operator=(const Membership&) = delete;

  /// Starts the thread (returns at once; registration happens in the background, etcd may be down).
  void start();
  /// Revokes the lease (bounded by callTimeout) and stops the thread. Idempotent.
  void stop();
  /// This node becomes Draining (republished at once, kept across re-registrations).
  void drain();

  MemberSetPtr current() const override;
  MembershipStatus status() const;
  const MembershipOptions& options() const { return opts_; }

 private:
  struct Loop;
  void publishLocked();

  MembershipOptions opts_;
  std::unique_ptr<Loop> loop_;
  std::thread thread_;
  std::atomic<bool> started_{false}, stopped_{false};

  mutable std::mutex mu_;
  struct Synced {
    std::vector<Member> seen;  // the etcd view, self's record as etcd has it (if it does)
    bool haveView = false;
    std::uint64_t revision = 0;
    MembershipStatus status;
    MemberSetPtr set;
  } synced_;
};

/// Wall clock in milliseconds since the epoch.
std::int64_t wallMs();

}  // namespace granary::cluster

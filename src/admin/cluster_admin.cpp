#include "admin/cluster_admin.h"

#include <boost/json.hpp>

#include <cstdio>

namespace granary::admin {

namespace json = boost::json;

namespace {
double ageSeconds(std::int64_t thenMs, std::int64_t nowMs) {
  return thenMs > 0 && nowMs >= thenMs ? double(nowMs - thenMs) / 1000.0 : 0.0;
}

std::string seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1fs", s);
  return buf;
}
}  // namespace

json::object clusterJson(const ClusterView& v) {
  json::object o;
  o["cluster"] = v.name;
  if (!v.members) {
    o["enabled"] = false;
    o["members"] = json::array();
    return o;
  }
  o["enabled"] = true;
  const auto set = v.members->current();
  const std::int64_t now = cluster::wallMs();
  o["self"] = set->self();
  o["source"] = v.membership ? "etcd" : "static";
  if (v.membership) {
    const auto s = v.membership->status();
    o["current"] = s.current;
    o["etcd_reachable"] = s.etcdReachable;
    o["revision"] = s.revision;
    o["last_update_age_s"] = s.everListed ? ageSeconds(s.lastUpdateMs, now) : -1.0;
    o["lease"] = s.leaseId;
    o["lease_renew_failures"] = s.leaseRenewFailures;
    o["registrations"] = s.registrations;
    if (!s.lastError.empty()) o["last_error"] = s.lastError;
  } else {
    o["current"] = true;
  }
  json::array members;
  for (const auto& m : set->members()) {
    json::object e;
    e["id"] = m.id;
    e["address"] = m.address;
    e["state"] = std::string(cluster::name(m.state));
    e["weight"] = m.weight;
    e["self"] = m.id == set->self();
    e["lease"] = m.leaseId;
    e["since"] = m.registeredMs;
    e["age_s"] = ageSeconds(m.registeredMs, now);
    e["chunks"] = m.chunks;
    e["bytes"] = m.bytes;
    e["peer_bytes_served"] = m.peerBytesServed;
    e["peer_bytes_fetched"] = m.peerBytesFetched;
    members.push_back(std::move(e));
  }
  o["members"] = std::move(members);
  return o;
}

std::string clusterReadiness(const ClusterView& v) {
  if (!v.members) return {};
  const auto set = v.members->current();
  const std::string n = std::to_string(set->members().size()) + " member(s)";
  if (!v.membership) return "cluster " + v.name + ": static membership, " + n + "\n";
  const auto s = v.membership->status();
  const std::string self = "this node " + std::string(cluster::name(s.selfState));
  if (s.current)
    return "cluster " + v.name + ": membership current (etcd revision " + std::to_string(s.revision) + "), " + n +
           ", " + self + "\n";
  if (!s.everListed)
    return "cluster " + v.name + ": waiting for etcd (" + (s.lastError.empty() ? "connecting" : s.lastError) +
           "); serving alone, " + self + "\n";
  return "cluster " + v.name + ": last membership seen " + seconds(ageSeconds(s.lastUpdateMs, cluster::wallMs())) +
         " ago (etcd " + (s.etcdReachable ? "reconnecting" : "unreachable") + "), " + n + ", " + self + "\n";
}

void clusterMetrics(metrics::TextWriter& w, const ClusterView& v) {
  if (!v.members) return;
  const auto set = v.members->current();
  std::uint64_t byState[3] = {0, 0, 0};
  for (const auto& m : set->members()) ++byState[static_cast<int>(m.state)];
  w.family("granary_cluster_members", "gauge", "Cluster members this node sees, by state.");
  for (auto st : {cluster::MemberState::Joining, cluster::MemberState::Active, cluster::MemberState::Draining})
    w.sample("granary_cluster_members", {{"state", std::string(cluster::name(st))}}, byState[static_cast<int>(st)]);
  if (!v.membership) return;
  const auto s = v.membership->status();
  w.family("granary_cluster_etcd_reachable", "gauge", "1 when the last call to etcd answered.");
  w.sample("granary_cluster_etcd_reachable", std::uint64_t{s.etcdReachable ? 1u : 0u});
  w.family("granary_cluster_membership_current", "gauge",
           "1 while the membership follows etcd; 0 while it is the last one seen.");
  w.sample("granary_cluster_membership_current", std::uint64_t{s.current ? 1u : 0u});
  w.family("granary_cluster_membership_age_seconds", "gauge", "Seconds since etcd last confirmed the membership.");
  w.sample("granary_cluster_membership_age_seconds", {},
           s.everListed ? ageSeconds(s.lastUpdateMs, cluster::wallMs()) : -1.0);
  w.family("granary_cluster_lease_renew_failures_total", "counter", "Lease renewals that etcd did not answer.");
  w.sample("granary_cluster_lease_renew_failures_total", s.leaseRenewFailures);
  w.family("granary_cluster_registrations_total", "counter", "Leases granted to this node (1 + re-registrations).");
  w.sample("granary_cluster_registrations_total", s.registrations);
}

}  // namespace granary::admin

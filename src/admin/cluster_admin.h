#pragma once
// The cluster's side of the admin endpoint: GET /admin/cluster (the members as this node sees them),
// POST /admin/cluster/drain, its lines in /readyz and its families in /metrics. Pure formatting over a
// MemberSource and, with etcd, the Membership's status; no I/O.

#include <memory>
#include <string>

#include <boost/json/object.hpp>

#include "cluster/member_set.h"
#include "cluster/membership.h"
#include "common/metrics.h"

namespace granary::admin {

struct ClusterView {
  std::string name;                                  // cluster.name
  std::shared_ptr<cluster::MemberSource> members;    // null: no [cluster]
  std::shared_ptr<cluster::Membership> membership;   // null: a static member list
};

/// GET /admin/cluster: {"cluster","self","source":"etcd"|"static","current","etcd_reachable","revision",
/// "last_update_age_s","lease_renew_failures","members":[{"id","address","state","weight","self",
/// "lease","since","age_s","chunks","bytes","peer_bytes_served","peer_bytes_fetched"}]}.
boost::json::object clusterJson(const ClusterView& v);

/// The /readyz line: whether the membership is current or the last one seen. Never fails readiness.
std::string clusterReadiness(const ClusterView& v);

/// granary_cluster_members{state}, granary_cluster_etcd_reachable, granary_cluster_membership_age_seconds,
/// granary_cluster_membership_current, granary_cluster_lease_renew_failures_total.
void clusterMetrics(metrics::TextWriter& w, const ClusterView& v);

}  // namespace granary::admin

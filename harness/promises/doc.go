// Package promises derives the impact matrix of one rack from the documented
// matrix and the rack's topology, and says every difference with its reason.
//
// The documented matrix is written for seed 001's shape: separate load
// balancers, three servers, a NAS outside the cluster. Its rows are read here
// as promises about what is lost, not about machine names: "one server lost,
// quorum kept" (server-kill-1), "etcd below quorum" (server-kill-2), "the VIP
// moves" (lb-master-lost), "the API's load balancing gone" (cp-lb-lost), "the
// NAS gone" (nfs-lost), "a workload node gone" (worker-lost), "the VPS gone"
// (tunnel-server-lost). A fault on another shape of rack is then the sum of
// what it takes there (fault.Plan.Loses): a machine that holds several roles
// loses them all at once, a server loss below quorum promises the API down,
// an ingress IP that is the API's VIP makes the LAN follow the VIP.
//
// When the fault's target is chosen at injection (the etcd leader's server),
// every possible choice is derived and a cell keeps a promise only where all
// choices agree.
package promises

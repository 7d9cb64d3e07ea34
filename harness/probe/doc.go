// Package probe owns observing the rack: the Probe interface, the Sampler that
// runs every probe concurrently at a fixed interval into timelines, and the seven
// probes of the impact matrix: api (a quorum read through the VIP), heal (a pod
// deleted and replaced), lan and internet (HTTP to the demo app through the
// ingress IP and through the tunnel), and apps, storage and data, answered by the
// in-cluster agent (package agent) on each node.
//
// Probes never assert: they report what they saw, and package matrix judges.
package probe

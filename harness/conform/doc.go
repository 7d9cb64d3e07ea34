// Package conform owns the conformance checks: each compares one part of the
// running rack with the field of its topology that documents it (the node
// list, the VIP and its SANs, HAProxy and keepalived, MetalLB's pool and the
// ingress IP, the tunnel, the StorageClasses, taints and labels, the nodes'
// architectures and the images' platforms, certificates, the UPS, the pods'
// health) and returns an error naming that field and what the rack showed.
// Checks only read the rack, except the storage round-trip, which writes
// records into the harness's own probe volume. The suites turn each Check into
// one spec; harness code never asserts.
package conform

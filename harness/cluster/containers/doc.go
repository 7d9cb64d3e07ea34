// Package containers is the default provider: the rack as Docker containers on
// one machine, built with testcontainers-go from the lab's images (package lab).
// Up makes the networks, the machines (systemd as PID 1, the flags that replace
// --privileged here), the API load balancers, kubeadm's HA control plane and
// workers, the pod network, MetalLB, the ingress controller, the probe
// workloads, the NAS, the tunnel and the UPS, each step timed and, on failure,
// named with its node and the end of that node's journal.
//
// Every container, network and volume carries the label rackdrill.dev/rack, and
// everything here finds the rack's objects by that label alone, so a rack left
// by a crashed run is found and removed the same way.
package containers

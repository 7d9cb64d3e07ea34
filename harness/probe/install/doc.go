// Package install puts the probes' workloads on a rack rackdrill adopts (the
// ssh provider) and takes them away again: the agent image, built for the
// nodes' architectures and loaded into each node's containerd over SSH (or
// the rack's own registry's image), then the workloads applied server-side
// through the API. The lab and k3d providers deploy the same workloads while
// they build the rack.
package install

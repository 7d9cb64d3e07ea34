// Package preflight owns what must hold before an upgrade of a rack: the
// Kubernetes version skew policy between the running components and the
// target, an etcd snapshot taken to the artifacts folder and verified, a drain
// report per node (what eviction would move, what would block it), and the
// objects that use APIs the target no longer serves. Nothing here changes the
// rack: evictions are asked with dryRun, the snapshot file is removed from the
// server once copied.
package preflight

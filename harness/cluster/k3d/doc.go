// Package k3d is the provider of a K3s rack in k3d: the k3d.io/v1alpha5
// config of a topology (Config), the machines k3d does not have (the NAS's
// NFS server and the VPS's frps, as containers), what the topology documents
// installed through the API, applied server-side (Manifests, Install), and the rack's
// containers acted on through Docker by the lab's labels (Nodes).
//
// k3d's module is not on the Go module proxy: the config types follow k3d's
// documented schema (https://k3d.io/stable/usage/configfile/), and a config
// rackdrill writes must decode into them strictly (golden tests). k3d and its
// images cannot be fetched on the offline machine this is developed on: the
// config, the manifests (validated by a real API server) and the install
// steps that need no k3d are tested there; k3d's own start runs in the
// nightly workflow.
package k3d

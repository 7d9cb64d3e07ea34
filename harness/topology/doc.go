// Package topology owns the rack model: the versioned YAML file (apiVersion
// rackdrill.dev/v1alpha1, kind Rack) that describes a rack as its architecture
// document does, its strict decoding, its defaults and its validation.
//
// Every provider, fault and probe reads the rack only through this model, so one
// file describes the offline lab, a k3d cluster and a real rack alike. Errors name
// the file and the field path (spec.nodes[2].address) so that a user can fix a
// file without reading the code.
package topology

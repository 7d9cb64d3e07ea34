// Package render renders a package's embedded templates (the lab's configs,
// k3d's manifests) by name.
package render

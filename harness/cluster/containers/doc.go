// Package containers is the default provider: the rack as Docker containers on
// one machine, reached through the Docker API (the client testcontainers-go
// configures). Every container, network and volume carries the label
// rackdrill.dev/rack=<rack>, and everything here finds the rack's objects by that
// label alone, so a rack left by a crashed run is found and removed the same way.
//
// Building the lab (Up, Kubeconfig) comes with the default-lab issue; what is here
// now is what faults and `rackdrill recover` need: the rack's nodes, acting on
// them, and removing the rack.
package containers

// Package rackstate reads the state of a rack that drills care about, through
// the provider's nodes and the rack's API: who holds the API VIP, which server
// holds the etcd leader, and a snapshot of what must be the same before and
// after a fault (the residue check). It also dumps what an SRE reads after a
// failed drill. Every command it runs on a node only reads.
package rackstate

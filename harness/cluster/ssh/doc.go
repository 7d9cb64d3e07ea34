// Package ssh is the provider of a real rack: it adopts the machines a
// topology lists, reaching each over SSH (golang.org/x/crypto/ssh) with the
// inventory's user, port, key or agent and sudo, every host key checked
// against known_hosts. A wrong key refuses the host, naming it and both
// fingerprints; a host not yet known is refused too, unless the user asked to
// record new keys. One connection per machine is kept and reused.
//
// It reaches the machines, runs commands on them (the faults of a real rack
// stop and start services this way) and reads the rack's kubeconfig. It never
// powers a machine off (Stop and Kill are not supported: a real rack's power
// drill is upsmon's own shutdown); Start powers one on as its
// spec.nodes[].power says, or asks a person to.
package ssh

// Package ssh is the provider of a real rack: it adopts the machines a
// topology lists, reaching each over SSH (golang.org/x/crypto/ssh) with the
// inventory's user, port, key or agent and sudo, every host key checked
// against known_hosts. A wrong key refuses the host, naming it and both
// fingerprints; a host not yet known is refused too, unless the user asked to
// record new keys. One connection per machine is kept and reused.
//
// This version reaches the machines, runs commands on them and reads the
// rack's kubeconfig; it powers nothing off or on (Stop, Start and Kill are not
// supported yet), so the faults of a real rack are still to come.
package ssh

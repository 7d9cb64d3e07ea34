// Package frp is the rack's FRP tunnel as rackdrill installs it, the same in
// every provider that runs one (the containers lab, k3d): frpc in the
// cluster, forwarding the VPS's public ports to the ingress, and frps's
// configuration on the VPS.
package frp

#!/bin/sh
# k3s-killall.sh of the rackdrill lab: what K3s's installer puts at this path
# does on a real machine, written for the lab. It takes the machine's Kubernetes
# down at once, leaving K3s installed and its data in place:
#   1. stops the k3s and k3s-agent units (the server or agent process);
#   2. kills every container with its containerd shim (SIGKILL to each shim
#      and all its descendants: the pods die, not only the shims);
#   3. unmounts what the pods and K3s mounted (/run/k3s, the kubelet's pod
#      volumes and plugins, the pods' network namespaces) and removes them;
#   4. removes the Kubernetes and CNI rules from iptables (KUBE-*, CNI-*).
# `systemctl start k3s` (or k3s-agent) brings it all back.
set -u
[ "$(id -u)" -eq 0 ] || exec sudo "$0" "$@"

for unit in k3s k3s-agent; do
  systemctl stop "$unit" 2>/dev/null || true
done

# pids of $1 and of every process below it.
tree() {
  echo "$1"
  for child in $(ps -e -o ppid= -o pid= | awk -v p="$1" '$1 == p {print $2}'); do
    tree "$child"
  done
}
for shim in $(pgrep -f 'containerd-shim' || true); do
  kill -9 $(tree "$shim") 2>/dev/null || true
done

# Unmount everything under each path, deepest first, then remove the path.
unmount_and_remove() {
  awk -v p="$1" 'index($2, p) == 1 {print $2}' /proc/self/mounts | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
  case "$1" in
    /run/netns/cni-) rm -f /run/netns/cni-* ;;
    *) rm -rf "$1" ;;
  esac
}
unmount_and_remove /run/k3s
unmount_and_remove /var/lib/kubelet/pods
unmount_and_remove /var/lib/kubelet/plugins
unmount_and_remove /run/netns/cni-
# The mounts below K3s's data directory (its containerd's snapshots), which stays.
awk 'index($2, "/var/lib/rancher/k3s/") == 1 {print $2}' /proc/self/mounts | sort -r | while read -r m; do
  umount -l "$m" 2>/dev/null || true
done
rm -rf /var/lib/cni/

iptables-save | grep -v -e KUBE- -e CNI- | iptables-restore
exit 0

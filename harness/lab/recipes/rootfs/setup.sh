#!/bin/sh
# Runs inside the debootstrapped rootfs (chroot) to make it a container's OS.
set -eu
# Units that belong to a physical machine, not a container: consoles, udev, the
# kernel's tmpfiles and the login manager (kind masks the same set), and the
# NFS client's rpc_pipefs, which this kernel lacks (the NAS serves from user space).
for u in getty.target console-getty.service systemd-udevd.service systemd-udevd-control.socket \
         systemd-udevd-kernel.socket systemd-logind.service systemd-tmpfiles-setup.service \
         systemd-remount-fs.service systemd-modules-load.service sys-kernel-config.mount \
         sys-kernel-debug.mount sys-kernel-tracing.mount apt-daily.timer apt-daily-upgrade.timer \
         e2scrub_all.timer fstrim.timer run-rpc_pipefs.mount; do
  ln -sf /dev/null "/etc/systemd/system/$u"
done
# Role services start only on the machines that hold the role: the provider
# enables them. None of them starts by default.
for s in containerd haproxy keepalived nfs-ganesha rpcbind rpcbind.socket ssh nut-server nut-monitor nut-driver nut-driver-enumerator; do
  systemctl disable "$s" >/dev/null 2>&1 || true
done
# iptables through nftables, as the host does.
update-alternatives --set iptables /usr/sbin/iptables-nft >/dev/null
update-alternatives --set ip6tables /usr/sbin/ip6tables-nft >/dev/null
# No machine id: systemd makes one at first boot, so that clones differ.
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id
# SSH host keys are made per machine at first boot, not shared by every clone.
rm -f /etc/ssh/ssh_host_*
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /usr/share/doc/* /usr/share/man/* /usr/share/locale/*

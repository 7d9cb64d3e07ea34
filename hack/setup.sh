#!/usr/bin/env bash
# Prepares a fresh Debian machine for rackdrill: Debian's Docker engine (started
# here if nothing runs it), what the tests drive (Chromium, xmllint), QEMU's
# emulators for ARM machines, and checks for Go. Idempotent: a second run does
# nothing but the checks. Needs root (or sudo) for apt-get and dockerd.
set -euo pipefail

log() { printf 'setup: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

export PATH="$PATH:/usr/local/go/bin"
# The Go version go.mod's go directive asks for.
want=$(sed -n 's/^go \([0-9.]*\).*/\1/p' "$(dirname "$0")/../go.mod")
if ! command -v go >/dev/null 2>&1; then
  log "Go is not installed: rackdrill needs Go $want or newer (go.mod; https://go.dev/doc/install)"
  exit 2
fi
have=$(cd / && GOTOOLCHAIN=local go env GOVERSION | sed 's/^go//')
if [ "$(printf '%s\n%s\n' "$want" "$have" | sort -V | head -n1)" != "$want" ]; then
  log "Go $have is too old: go.mod asks for Go $want or newer (https://go.dev/doc/install)"
  exit 2
fi

# Debian's docker.io is the engine and iptables its networks; the lab's images
# need debootstrap (the machines' Debian) and a static C toolchain (pause).
need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v iptables >/dev/null 2>&1 || need+=(iptables)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v gcc >/dev/null 2>&1 || need+=(gcc)
[ -e /usr/lib/x86_64-linux-gnu/libc.a ] || need+=(libc6-dev)
[ -e /usr/include/seccomp.h ] || need+=(libseccomp-dev) # runc for the K3s lab
# The report's tests: headless Chromium opens report.html, xmllint checks
# junit.xml against the JUnit schema.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v xmllint >/dev/null 2>&1 || need+=(libxml2-utils)
# ARM machines (Raspberry Pi workers, arm64 and arm/v7) run here under Debian's
# QEMU user-mode emulators, registered with the kernel's binfmt_misc below.
command -v qemu-aarch64-static >/dev/null 2>&1 || need+=(qemu-user-static)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]} from Debian (a minute or two)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get install -y -qq "${need[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    log "starting docker with systemd"
    as_root systemctl start docker
  else
    # No init system (a container-like VM): run dockerd ourselves.
    log "starting dockerd (log: /var/log/rackdrill-dockerd.log)"
    as_root sh -c 'nohup dockerd >/var/log/rackdrill-dockerd.log 2>&1 &'
  fi
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  if ! docker info >/dev/null 2>&1; then
    log "dockerd did not come up within 60s; see /var/log/rackdrill-dockerd.log"
    exit 2
  fi
fi
# binfmt_misc: the kernel runs an arm64 or arm/v7 binary through its QEMU
# emulator once that emulator is registered, with the F flag (the interpreter
# opened now, so that it runs inside containers too). Debian's package
# registers them on a systemd machine; elsewhere they are registered here from
# the package's own binfmt.d files.
binfmt=/proc/sys/fs/binfmt_misc
if [ ! -e $binfmt/register ]; then
  as_root mount -t binfmt_misc binfmt_misc $binfmt || log "could not mount binfmt_misc: ARM machines cannot run here"
fi
for emu in aarch64 arm; do
  if [ -e $binfmt/register ] && [ ! -e $binfmt/qemu-$emu ]; then
    conf=/usr/lib/binfmt.d/qemu-$emu.conf
    if [ -r "$conf" ]; then
      log "registering qemu-$emu with binfmt_misc ($conf)"
      grep -v '^[#;]' "$conf" | grep . | as_root tee $binfmt/register >/dev/null || log "could not register qemu-$emu"
    else
      log "no $conf: ARM ($emu) binaries cannot run here"
    fi
  fi
done

# Each lab machine's containerd and kubelet take inotify instances from the
# host's per-user limit (128 on Debian): a K3s machine started beside a running
# lab found none left ("failed to create fsnotify watcher: too many open files").
for kv in fs.inotify.max_user_instances=512 fs.inotify.max_user_watches=524288; do
  k=${kv%=*} v=${kv#*=}
  if [ "$(sysctl -n "$k" 2>/dev/null || echo 0)" -lt "$v" ]; then
    log "raising $k to $v (every lab machine watches files)"
    as_root sysctl -qw "$kv" || log "could not raise $k: a large lab may fail with 'too many open files'"
  fi
done
log "ready: $(go version | cut -d' ' -f3), Docker $(docker version --format '{{.Server.Version}}')"

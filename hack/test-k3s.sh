#!/bin/sh
# make test-k3s: K3s in the lab, end to end. First the gate (K3s built from source,
# one server Ready, three servers, one killed: TestIntegrationK3sServer), then the
# K3s lab of kind-configs/lab-k3s.yaml: up, every probe green, the conformance suite,
# one server-kill drill, and down, whatever failed. Not part of `make test`: a cold
# K3s build alone takes about 13 minutes on 2 cores (docs/lab.md, "K3s in the lab").
set -u
GO=${GO:-go}
topology=kind-configs/lab-k3s.yaml
art=${ARTIFACTS:-_artifacts}/k3s
start=$(date +%s)
step() { echo "== test-k3s: $* ($(( $(date +%s) - start ))s)"; }

step "the gate: TestIntegrationK3sServer"
RACKDRILL_K3S=1 $GO test -count=1 -timeout 60m -run TestIntegrationK3sServer -v ./harness/lab || exit 1
$GO build -o bin/rackdrill ./cmd/rackdrill || exit 1

if docker ps -q --filter label=rackdrill.dev/rack=lab-k3s | grep -q .; then
  echo "test-k3s: the K3s lab is up already: rackdrill down --topology $topology first" >&2
  exit 2
fi
trap 'step "down"; bin/rackdrill down --topology "$topology"' EXIT INT TERM

step "up"
bin/rackdrill up --topology "$topology" --artifacts "$art" || exit 1
step "every probe green"
bin/rackdrill status --resources --topology "$topology" --artifacts "$art" | tee "$art/status.txt"
if grep -q ' RED ' "$art/status.txt" || ! grep -q '^probes: .*green' "$art/status.txt"; then
  echo "test-k3s: a probe is not green on the K3s lab" >&2
  exit 1
fi
step "conformance"
bin/rackdrill run --topology "$topology" --artifacts "$art/conformance" --label-filter conformance || exit 1
step "one server killed: server-kill-1"
bin/rackdrill run --topology "$topology" --artifacts "$art/server-kill-1" --scenario server-kill-1 || exit 1
step "passed"

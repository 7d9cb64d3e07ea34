# rackdrill: chaos and conformance drills for self-hosted HA Kubernetes racks.
#
# Common uses:
#   make setup          install and start what rackdrill needs (Docker) on Debian
#   make test           every test of the repo (unit, integration with Docker)
#   make conformance    the conformance and chaos suites on the default lab (built if needed; KEEP=1 keeps it)
#   make images         build the offline lab's images (cached: a second run takes seconds)
#   make plan           what each fault would do to the default lab; touches nothing
#   make preflight TO=v1.34.x   is the running rack safe to upgrade? (conformance + pre-upgrade checks)
#   make rehearse TO=v1.34.4    upgrade the lab to TO machine by machine, as the rack's operator would
#                               (FROM=v1.33.6: the lab starts at the real rack's release)
#   make test-k3s       K3s from source: the gate, then the K3s lab: probes, conformance, server-kill-1 (not in make test)
#   make fuzz           fuzz the topology decoder (FUZZTIME=60s)
#   make killtest       SIGKILL rackdrill run at random moments on the lab, then recover (TRIALS=2 per fault)
#   make killtest-ssh   the same over SSH, nothing run after the kill: the dead-man timers bring the rack back
#   make own-rack       the README's own-rack steps, as written, by an installed rackdrill against the lab over SSH

SHELL := bash
.DEFAULT_GOAL := help

GO        ?= go
PROVIDER  ?=
# The k3d provider's rack is kind-configs/k3d-ha.yaml unless TOPOLOGY says otherwise.
TOPOLOGY  ?= $(if $(filter k3d,$(PROVIDER)),kind-configs/k3d-ha.yaml,kind-configs/lab.yaml)
ARTIFACTS ?= _artifacts
FUZZTIME  ?= 60s
LABELS    ?=
GINKGO    := $(GO) tool ginkgo

# testcontainers-go on this kind of machine: no Ryuk (its image cannot be pulled;
# cleanup is by label), loopback for mapped ports (see lab-notes).
export TESTCONTAINERS_RYUK_DISABLED ?= true
export TESTCONTAINERS_HOST_OVERRIDE ?= 127.0.0.1

.PHONY: help
help: ## this list
	@echo "Common uses:"
	@sed -n 's/^#   /  /p' $(MAKEFILE_LIST)
	@echo
	@echo "All targets:"
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

.PHONY: setup
setup: ## install and start Docker (Debian), check Go
	hack/setup.sh

.PHONY: build
build: ## build bin/rackdrill and bin/rackdrill-agent
	$(GO) build -o bin/ ./cmd/...

.PHONY: vet
vet: ## go vet and gofmt
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

.PHONY: test
# The suites are drills against a rack (make conformance): here they are only
# compiled, and their wiring is tested by suites/framework. The lab images are
# built by TestIntegrationLabImages: seconds when they exist, a cold build
# (about 17 minutes on 2 cores) on a fresh machine.
# The tests' runs keep their fault ledgers here, not in the user's state folder.
test: export RACKDRILL_STATE_DIR ?= $(abspath $(ARTIFACTS))/test-state
test: vet images lint-workflows ## every test of the repo (Docker-backed ones too)
	$(GO) test -count=1 -run '^$$' ./suites/...
	$(GO) test -count=1 -timeout 75m $$($(GO) list ./... | grep -vE '/suites/(chaos|conformance|preupgrade)$$')

.PHONY: test-k3s
# Not part of make test: builds K3s from ../shared/third_party's source (cold:
# 8-13 minutes on 2 cores, with K3s's modules), brings one `k3s server --cluster-init`
# to a Ready node in a lab machine (issue 19's gate), then two more servers join
# it and the first is killed; then the K3s lab: up, probes, conformance, server-kill-1.
test-k3s: ## K3s from source: the gate (one server, three, one killed), then the K3s lab up, probes, conformance, server-kill-1, down
	GO=$(GO) ARTIFACTS=$(ARTIFACTS) sh hack/test-k3s.sh

.PHONY: fuzz
fuzz: ## fuzz the topology decoder for FUZZTIME
	$(GO) test ./harness/topology -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)

.PHONY: lint-workflows
lint-workflows: ## actionlint on .github/workflows (built from the Go module proxy)
	$(GO) tool actionlint -no-color .github/workflows/*.yml

.PHONY: images
images: ## build the offline lab's images from the Go module proxy and Debian
	$(GO) run ./cmd/rackdrill images

.PHONY: plan
plan: ## what each fault of the matrix would do to TOPOLOGY
	$(GO) run ./cmd/rackdrill plan --topology $(TOPOLOGY)

# Built, then run: its own exit code (0 held, 1 a promise broken, 2 bad input or
# environment) is the one make reports ("Error 1" / "Error 2").
RACKDRILL := $(GO) build -o bin/rackdrill ./cmd/rackdrill && bin/rackdrill

.PHONY: lab
lab: images ## bring the lab of TOPOLOGY up, unless it is up already
	@if $(RACKDRILL) status --topology $(TOPOLOGY) --artifacts $(ARTIFACTS) 2>/dev/null | grep -q "no machine of rack"; then \
	  $(RACKDRILL) up --topology $(TOPOLOGY) --artifacts $(ARTIFACTS); \
	else echo "lab: $(TOPOLOGY) is up already (rackdrill status)"; fi

.PHONY: down
down: ## remove the lab of TOPOLOGY
	$(RACKDRILL) down --topology $(TOPOLOGY)

.PHONY: conformance
# rackdrill run builds the images and the lab when they are missing, runs the
# conformance suite then the chaos suite, writes junit.xml, run.json and
# report.html into ARTIFACTS, and removes a lab it built unless KEEP=1.
conformance: ## conformance and chaos suites on TOPOLOGY (the lab by default), reports in ARTIFACTS
	$(RACKDRILL) run --topology $(TOPOLOGY) --artifacts $(ARTIFACTS) $(if $(PROVIDER),--provider $(PROVIDER)) \
	  $(if $(LABELS),--label-filter '$(LABELS)') $(if $(filter 1,$(KEEP)),--keep)

.PHONY: preflight
preflight: ## pre-upgrade checks of the running rack towards TO (e.g. TO=v1.34.x); read-only
	@test -n "$(TO)" || { echo "preflight: give the target release, e.g. make preflight TO=v1.34.x"; exit 2; }
	$(RACKDRILL) preflight --to $(TO) --topology $(TOPOLOGY) --artifacts $(ARTIFACTS)

.PHONY: rehearse
# Not part of make test: builds TO's images and kit (cold, tens of minutes), brings
# the lab up if it is not, and upgrades it machine by machine; the lab stays up,
# at TO (rackdrill down removes it).
rehearse: ## upgrade the lab to TO the way the rack's operator would (e.g. TO=v1.34.4)
	@test -n "$(TO)" || { echo "rehearse: give the target release, e.g. make rehearse TO=v1.34.4"; exit 2; }
	$(RACKDRILL) rehearse --to $(TO) $(if $(FROM),--from $(FROM)) --topology $(TOPOLOGY) --artifacts $(ARTIFACTS)

.PHONY: killtest
# A benchmark of the revert promise, not part of make test: for each fault of
# the matrix, TRIALS runs killed at a random moment of settle, injection,
# observation or revert, each followed by rackdrill recover and a residue
# check; prints "killtest: recovered R/N, residue clean C/N" and writes
# ARTIFACTS/killtest/killtest.json.
TRIALS ?= 2
killtest: lab ## kill rackdrill run at random moments on the lab, recover, check the residue
	$(GO) build -o bin/rackdrill ./cmd/rackdrill
	$(GO) run ./hack/killtest -topology $(TOPOLOGY) -rackdrill bin/rackdrill -trials $(TRIALS) -out $(ARTIFACTS)/killtest $(if $(FAULTS),-faults $(FAULTS))

.PHONY: killtest-ssh
# The same, against the lab adopted over SSH (kind-configs/lab-ssh.yaml), and
# nothing run after the kill: each trial passes when the rack is whole again
# by its dead-man timers alone (DEADMAN each) within the timer plus the row's
# recovery budget; only then recover clears the ledger. ups-power-loss is left
# out: no timer on a machine that is off can power it on.
DEADMAN ?= 30s
SSH_FAULTS ?= server-kill-1,server-kill-2,lb-master-lost,cp-lb-lost,metallb-dropped,tunnel-client-cut,tunnel-server-lost,nfs-lost,worker-lost
killtest-ssh: lab ## kill rackdrill run over SSH at random moments, recover nothing: the dead-man timers must bring the rack back
	$(GO) build -o bin/rackdrill ./cmd/rackdrill
	$(GO) run ./hack/killtest -no-recover -topology kind-configs/lab-ssh.yaml -dead-man $(DEADMAN) -rackdrill bin/rackdrill \
	  -trials $(or $(TRIALS_SSH),1) -out $(ARTIFACTS)/killtest-ssh -faults $(or $(FAULTS),$(SSH_FAULTS))

.PHONY: own-rack
# The README's "Point it at your machines" section followed as written: rackdrill
# installed from this commit's module zip, run from an empty directory against
# the lab adopted over SSH (kind-configs/lab-ssh.yaml), in a terminal, "yes"
# answered where it asks.
own-rack: lab ## follow the README's own-rack section with an installed rackdrill against the lab over SSH
	$(GO) run ./hack/ownrack -topology kind-configs/lab-ssh.yaml -ssh $(ARTIFACTS)/ssh

.PHONY: clean
clean: ## remove build output and artifacts
	rm -rf bin $(ARTIFACTS)

// Package preupgrade is what must hold before an upgrade of a real rack: no
// fault left by an earlier run, the version skew policy towards the target
// release (--to), an etcd snapshot saved and verified, every node drainable,
// no object on an API the target removes. Its reports go into
// <artifacts>/preflight/. `rackdrill preflight` runs it after the conformance
// suite. Importing the package declares the specs.
package preupgrade

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // ginkgo's DSL reads as prose

	"rackdrill.dev/rackdrill/harness/conform"
	"rackdrill.dev/rackdrill/harness/preflight"
	"rackdrill.dev/rackdrill/suites/framework"
)

func init() { framework.DeclareUpgrade("preupgrade", 2, specs) }

// check runs fn as a recorded pre-upgrade check: its observation goes into
// run.json and the report, its error fails the spec.
func check(ctx context.Context, name, field string, fn func(context.Context, *framework.Env) (string, error)) {
	env := framework.Current()
	ctx, cancel := context.WithTimeout(ctx, framework.CheckLimit)
	defer cancel()
	obs, err := fn(ctx, env)
	res := conform.Result{Check: name, Family: "preupgrade", Field: field, Observed: obs, Passed: err == nil}
	if err != nil {
		res.Error = err.Error()
	}
	env.RecordCheck(res)
	AddReportEntry("observed", obs, ReportEntryVisibilityFailureOrVerbose)
	if err != nil {
		Fail(err.Error())
	}
}

func outDir(env *framework.Env) string { return filepath.Join(env.Artifacts, "preflight") }

func writeJSON(env *framework.Env, name string, v any) (string, error) {
	if err := os.MkdirAll(outDir(env), 0o755); err != nil {
		return "", err
	}
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return "", err
	}
	p := filepath.Join(outDir(env), name)
	return p, os.WriteFile(p, data, 0o644)
}

func specs() {
	Describe("upgrade", Label("preupgrade"), Ordered, func() {
		It("no fault of an earlier run is still in place (the fault ledger is empty) [state/ledger]", func(ctx context.Context) {
			check(ctx, "no fault of an earlier run is still in place", "state/ledger", func(_ context.Context, env *framework.Env) (string, error) {
				live, err := env.Ledger.Entries()
				if err != nil {
					return "", err
				}
				if len(live) > 0 {
					return "", fmt.Errorf("%d faults of an earlier run are still recorded: run `rackdrill recover` before upgrading (the ledger: %s)", len(live), env.Ledger.Dir())
				}
				return "the fault ledger is empty", nil
			})
		})
		It("every component and the target release obey the version skew policy [spec.kubernetes.version]", func(ctx context.Context) {
			check(ctx, "every component and the target release obey the version skew policy", "spec.kubernetes.version", checkSkew)
		})
		It("an etcd snapshot is saved into the artifacts folder and verified [spec.nodes[roles=server]]", func(ctx context.Context) {
			check(ctx, "an etcd snapshot is saved into the artifacts folder and verified", "spec.nodes[roles=server]", func(ctx context.Context, env *framework.Env) (string, error) {
				etcdutl, err := env.Etcdutl(ctx)
				if err != nil {
					return "", fmt.Errorf("etcdutl: %w", err)
				}
				t, err := env.Target(ctx)
				if err != nil {
					return "", err
				}
				s, err := preflight.EtcdSnapshot(ctx, t.Nodes, outDir(env), etcdutl)
				if err != nil {
					return "", err
				}
				return fmt.Sprintf("%s from %s: %d bytes, revision %d, %d keys, hash %08x (etcdutl snapshot status)",
					s.Path, s.Node, s.Size, s.Status.Revision, s.Status.TotalKey, s.Status.Hash), nil
			})
		})
		It("every node can be drained [spec.nodes]", func(ctx context.Context) {
			check(ctx, "every node can be drained", "spec.nodes", checkDrain)
		})
		It("no object uses an API the target release removes [spec.kubernetes.version]", func(ctx context.Context) {
			check(ctx, "no object uses an API the target release removes", "spec.kubernetes.version", func(ctx context.Context, env *framework.Env) (string, error) {
				target, t, err := upgradeInputs(ctx, env)
				if err != nil {
					return "", err
				}
				uses, err := preflight.RemovedAPIs(ctx, t.Kube, t.Dynamic, target)
				if err != nil {
					return "", err
				}
				p, err := writeJSON(env, "removed-apis.json", uses)
				if err != nil {
					return "", err
				}
				if len(uses) > 0 {
					var lines []string
					for _, u := range uses {
						lines = append(lines, fmt.Sprintf("%s (removed in %s): objects [%s], requested by clients: %t", u.API, u.RemovedIn, strings.Join(u.Objects, ", "), u.Requested))
					}
					return p, fmt.Errorf("spec.kubernetes.version: APIs removed by %s are in use:\n%s", target, strings.Join(lines, "\n"))
				}
				return "none; report " + p, nil
			})
		})
	})
}

// upgradeInputs are what the checks of an upgrade read: the target release
// (--to) and the rack.
func upgradeInputs(ctx context.Context, env *framework.Env) (preflight.Minor, *conform.Target, error) {
	target, err := env.UpgradeTarget()
	if err != nil {
		return target, nil, err
	}
	t, err := env.Target(ctx)
	return target, t, err
}

func checkSkew(ctx context.Context, env *framework.Env) (string, error) {
	target, t, err := upgradeInputs(ctx, env)
	if err != nil {
		return "", err
	}
	v, err := preflight.ReadVersions(ctx, t.Kube)
	if err != nil {
		return "", err
	}
	if _, err := writeJSON(env, "versions.json", v); err != nil {
		return "", err
	}
	obs := fmt.Sprintf("kube-apiserver %s, kubelets %s, target %s", summary(v.APIServer), summary(v.Kubelet), target)
	if problems := preflight.CheckSkew(v, target); len(problems) > 0 {
		return obs, fmt.Errorf("spec.kubernetes.version: the upgrade to %s breaks the version skew policy:\n%s", target, strings.Join(problems, "\n"))
	}
	return obs, nil
}

// summary writes a component's versions as "v1.33.13 ×3".
func summary(m map[string]string) string {
	count := map[string]int{}
	for _, v := range m {
		count[v]++
	}
	var parts []string
	for v, n := range count {
		parts = append(parts, fmt.Sprintf("%s ×%d", v, n))
	}
	return strings.Join(parts, ", ")
}

func checkDrain(ctx context.Context, env *framework.Env) (string, error) {
	t, err := env.Target(ctx)
	if err != nil {
		return "", err
	}
	report, err := preflight.DrainReport(ctx, t.Kube)
	if err != nil {
		return "", err
	}
	p, err := writeJSON(env, "drain-report.json", report)
	if err != nil {
		return "", err
	}
	var text strings.Builder
	var blocked []string
	for _, d := range report {
		state := "drainable"
		if !d.Drainable {
			state = "BLOCKED"
			blocked = append(blocked, d.Node)
		}
		fmt.Fprintf(&text, "%s: %s, %d pods to evict\n", d.Node, state, len(d.Evict))
		for _, b := range d.Blocked {
			fmt.Fprintf(&text, "  blocked: %s\n", b)
		}
		if d.Warning != "" {
			fmt.Fprintf(&text, "  warning: %s\n", d.Warning)
		}
	}
	if err := os.WriteFile(filepath.Join(outDir(env), "drain-report.txt"), []byte(text.String()), 0o644); err != nil {
		return "", err
	}
	obs := fmt.Sprintf("%d of %d nodes drainable; report %s", len(report)-len(blocked), len(report), p)
	if len(blocked) > 0 {
		return obs, fmt.Errorf("spec.nodes: %s cannot be drained:\n%s", strings.Join(blocked, ", "), text.String())
	}
	return obs, nil
}

// Package framework is what the suites share: their flags (topology, provider,
// artifacts folder, matrix), loading and checking those inputs before any spec
// runs, connecting to the rack, and writing the run's reports into the
// artifacts folder (JUnit, ginkgo's JSON, run.json).
package framework

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/types"
	"github.com/onsi/gomega"

	"rackdrill.dev/rackdrill/harness/cluster"
	"rackdrill.dev/rackdrill/harness/cluster/containers"
	"rackdrill.dev/rackdrill/harness/cluster/providers"
	"rackdrill.dev/rackdrill/harness/conform"
	"rackdrill.dev/rackdrill/harness/fault"
	"rackdrill.dev/rackdrill/harness/lab"
	"rackdrill.dev/rackdrill/harness/matrix"
	"rackdrill.dev/rackdrill/harness/probe/install"
	"rackdrill.dev/rackdrill/harness/promises"
	"rackdrill.dev/rackdrill/harness/rackclient"
	"rackdrill.dev/rackdrill/harness/rackstate"
	"rackdrill.dev/rackdrill/harness/runrecord"
	"rackdrill.dev/rackdrill/harness/topology"
	"rackdrill.dev/rackdrill/scenarios"
)

// Flags of every suite; paths default to the repository's own files.
var (
	topologyFlag   = flag.String("topology", "", "rack topology file (default kind-configs/lab.yaml)")
	providerFlag   = flag.String("provider", "", "containers, k3d or ssh (default: the topology's spec.provider)")
	artifactsFlag  = flag.String("artifacts", "", "folder for reports and the fault ledger (default _artifacts, or $ARTIFACTS)")
	matrixFlag     = flag.String("matrix", "", "impact matrix (default: the topology's spec.matrix, else the documented one built in)")
	deviationsFlag = flag.String("deviations", "", "known deviations overlay (default: scenarios/deviations-<provider>.yaml, or deviations-<provider>-k3s.yaml for K3s, built in, if it exists)")
	toFlag         = flag.String("to", "", "the release an upgrade goes to, for the pre-upgrade suite (v1.34.x)")
)

// Env is a suite's view of the rack under test.
type Env struct {
	Rack     *topology.Rack
	Provider topology.ProviderName
	// Matrix is the rack's own: the documented matrix (MatrixFile), its
	// promises derived for this rack's topology; drills are judged by it.
	Matrix     *matrix.Matrix
	MatrixFile string
	// Derivation says how Matrix differs from the documented one, and why.
	Derivation *promises.Derivation
	// TopologyFile is the absolute path of the topology.
	TopologyFile string
	Deviations   *matrix.Deviations
	Artifacts    string
	Ledger       *fault.Ledger
	// StateDir is the rack's state folder (fault.RackDir): the ledger and
	// the steady state kept for recover.
	StateDir string
	Log      logr.Logger
	Nodes    cluster.NodeLister
	// Client is the rack's API through its control-plane endpoint, for the
	// checks and the harness's operations; Kube is the faults' client of it
	// (each request bounded by rackclient.FaultTimeout). Both are made once,
	// at Connect, and reach the rack on first use.
	Client *rackclient.Client
	Kube   fault.KubeClient
	// Progress, when set, is told each drill's phase as it enters it; Live,
	// each change of the probes' states.
	Progress func(fault, phase string)
	Live     func(fault string, states map[string]bool)
	// UpgradeTo is the release the pre-upgrade suite checks an upgrade to.
	UpgradeTo string
	// Checked, when set, is told each check's result as it ends.
	Checked func(conform.Result)
	// AcceptNewHostKeys lets the ssh provider record host keys it sees for
	// the first time (--accept-new-host-keys).
	AcceptNewHostKeys bool
	// Kubeconfig, KubeconfigFallback: the ssh provider's kubeconfig from
	// files (--kubeconfig, or $KUBECONFIG when no server gives one).
	Kubeconfig         string
	KubeconfigFallback bool

	suite string
	// approved are the chaos rows a real rack's safety gate let through;
	// a drill of any other row on a real rack refuses to inject.
	approved []string
	// installApproved: the run's confirmation covers installing the probe
	// workloads on a real rack; safety asks otherwise.
	installApproved bool
	safety          *Safety
	// previewing: ginkgo is previewing the specs (SelectedRows), not running them.
	previewing bool
	target     targetCache
	mu         sync.Mutex
	outcomes   []scenarios.Outcome
	checks     []conform.Result
	// failed are the specs of this run that failed so far.
	failed  []string
	started time.Time
}

// FailedSpecs are the specs of the run that failed before now: the
// rehearsal does not upgrade a rack that did not pass its checks.
func (e *Env) FailedSpecs() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.failed)
}

// Options are the inputs of a run; empty fields take the defaults of the
// suites' flags.
type Options struct {
	Topology, Provider, Artifacts, Matrix, Deviations string
	// UpgradeTo is the target release of the pre-upgrade suite.
	UpgradeTo string
	// KubernetesVersion, if set, is the release the rack runs instead of its
	// topology's spec.kubernetes.version (rehearse --from: the lab started
	// at the real rack's release).
	KubernetesVersion string
	// AcceptNewHostKeys, Kubeconfig, KubeconfigFallback: see Env's.
	AcceptNewHostKeys  bool
	Kubeconfig         string
	KubeconfigFallback bool
	// WarningsShown: the caller printed the topology's warnings already
	// (the CLI loads it first); they are logged at debug level only.
	WarningsShown bool
}

func flagOptions() Options {
	return Options{Topology: *topologyFlag, Provider: *providerFlag, Artifacts: *artifactsFlag,
		Matrix: *matrixFlag, Deviations: *deviationsFlag, UpgradeTo: *toFlag}
}

// Load reads and checks every input of a suite. A bad input is an error naming
// the file and field, before any spec runs.
func Load(log logr.Logger, o Options) (*Env, error) {
	// Relative paths are the repository's when run from it (ginkgo runs the
	// suites from their own folder); a rackdrill installed on its own reads
	// them from the working directory.
	root, err := lab.RepoRoot()
	if err != nil {
		if root, err = os.Getwd(); err != nil {
			return nil, err
		}
	}
	def := func(v, d string) string {
		if v == "" {
			v = d
		}
		if !filepath.IsAbs(v) {
			v = filepath.Join(root, v)
		}
		return v
	}
	artifacts := o.Artifacts
	if artifacts == "" {
		artifacts = os.Getenv("ARTIFACTS")
	}
	env := &Env{Artifacts: def(artifacts, "_artifacts"), Log: log, started: time.Now(), UpgradeTo: o.UpgradeTo, AcceptNewHostKeys: o.AcceptNewHostKeys,
		Kubeconfig: o.Kubeconfig, KubeconfigFallback: o.KubeconfigFallback}
	env.TopologyFile = def(o.Topology, "kind-configs/lab.yaml")
	// The ledger and the steady state name the file: recover, run from
	// another folder, reads it again.
	if abs, err := filepath.Abs(env.TopologyFile); err == nil {
		env.TopologyFile = abs
	}
	r, warns, err := topology.Load(env.TopologyFile)
	if err != nil {
		return nil, err
	}
	for _, w := range warns {
		if o.WarningsShown {
			log.V(1).Info("topology warning", "warning", w.String())
		} else {
			log.Info("topology warning", "warning", w.String())
		}
	}
	if o.KubernetesVersion != "" {
		r.Spec.Kubernetes.Version = o.KubernetesVersion
	}
	env.Rack = r
	env.Provider = r.Spec.Provider
	if o.Provider != "" {
		env.Provider = topology.ProviderName(o.Provider)
	}
	matrixFile := o.Matrix
	if matrixFile != "" {
		matrixFile = def(matrixFile, "")
	}
	documented, matrixName, err := scenarios.MatrixFor(matrixFile, env.TopologyFile, r)
	if err != nil {
		return nil, err
	}
	env.MatrixFile = matrixName
	if env.Derivation, err = promises.Derive(documented, r, env.Provider); err != nil {
		return nil, err
	}
	env.Matrix = env.Derivation.Matrix
	devFile := o.Deviations
	if devFile != "" {
		devFile = def(devFile, "")
	}
	var devName string
	// The overlay is written against the documented matrix; what this rack's
	// derived matrix already promises is no deviation here.
	if env.Deviations, devName, err = scenarios.DeviationsFor(devFile, env.Provider, r.Spec.Kubernetes.Distribution, documented); err != nil {
		return nil, err
	}
	if env.Deviations != nil {
		if err := env.Deviations.For(string(env.Provider), r.Metadata.Name); err != nil {
			return nil, fmt.Errorf("%s: %w", devName, err)
		}
		for _, dv := range env.Deviations.Promised(env.Matrix) {
			log.Info("deviation not needed: this rack's derived matrix promises it", "overlay", devName, "fault", dv.Fault, "probe", dv.Probe, "observed", dv.Observed)
		}
	}
	// One ledger per rack, in the user's state folder, whatever folder the
	// run started from: recover finds it from anywhere. Nothing is created
	// before a fault is recorded, nor the artifacts folder before the specs
	// run, so a dry run writes nothing.
	if env.StateDir, err = fault.RackDir(r.Metadata.Name); err != nil {
		return nil, err
	}
	if env.Ledger, err = fault.LedgerFor(r.Metadata.Name); err != nil {
		return nil, err
	}
	return env, nil
}

// Connect finds the rack's machines through the provider and checks that every
// machine of the topology is there. It fails, saying how to bring the rack up,
// when the rack does not exist.
func (e *Env) Connect(ctx context.Context) error {
	// Past the gate: the run writes its reports and dumps from here on.
	if err := os.MkdirAll(e.Artifacts, 0o755); err != nil {
		return fmt.Errorf("artifacts folder: %w", err)
	}
	r := *e.Rack
	r.Spec.Provider = e.Provider
	p, err := providers.For(&r, providers.WithLogger(e.Log), providers.WithArtifacts(e.Artifacts),
		providers.WithAcceptNewHostKeys(e.AcceptNewHostKeys), providers.WithKubeconfig(e.Kubeconfig, e.KubeconfigFallback))
	if err != nil {
		return fmt.Errorf("%s: %w", e.TopologyFile, err)
	}
	e.Nodes = p
	e.Client = rackclient.New(p, e.Rack.APIServerURL(), rackclient.OperationsTimeout)
	e.Kube = fault.KubeFrom(p, e.Rack.APIServerURL())
	if c, ok := p.(interface{ Check(context.Context) error }); ok {
		// A real rack: every machine must answer SSH with a known host
		// key (and sudo, where the inventory says so) before anything runs.
		if err := c.Check(ctx); err != nil {
			return err
		}
	}
	nodes, err := e.Nodes.Nodes(ctx)
	if err != nil {
		return err
	}
	// The lab's K3s servers get rackdrill's etcdctl here; a real rack's only
	// with the probes' installation, once approved (prepareRealRack).
	if len(nodes) > 0 && e.Rack.Spec.Kubernetes.Distribution == topology.DistributionK3s && e.Provider != topology.ProviderSSH {
		if err := e.placeEtcdctl(ctx, nodes); err != nil {
			return err
		}
	}
	if len(nodes) == 0 {
		return fmt.Errorf("rack %s is not up: no node carries the label %s=%s (bring it up with `rackdrill up --topology ...`)",
			e.Rack.Metadata.Name, containers.LabelRack, e.Rack.Metadata.Name)
	}
	have := map[string]bool{}
	for _, n := range nodes {
		have[n.Name()] = true
	}
	var missing []string
	for _, n := range e.Rack.Spec.Nodes {
		if !have[n.Name] {
			missing = append(missing, n.Name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("rack %s lacks nodes of its topology: %s", e.Rack.Metadata.Name, strings.Join(missing, ", "))
	}
	return nil
}

// placeEtcdctl puts rackdrill's etcdctl on the K3s servers that have none
// (K3s ships none): etcd's members and leader are read with it.
func (e *Env) placeEtcdctl(ctx context.Context, nodes []cluster.Node) error {
	b, err := lab.NewToolBuilder(io.Discard)
	if err != nil {
		return err
	}
	_, err = rackstate.PlaceEtcdctl(ctx, nodes, e.Rack, func(arch string) (string, error) { return b.EtcdctlFor(ctx, arch) })
	return err
}

// prepareRealRack connects to a real rack before any spec (an unreachable
// machine, a wrong host key, a missing sudo are said here, each host named)
// and installs the probe workloads when they are missing, as the plan says.
func (e *Env) prepareRealRack(ctx context.Context) error {
	if e.Provider != topology.ProviderSSH {
		return nil
	}
	if err := e.Connect(ctx); err != nil {
		return err
	}
	defer e.Close()
	nodes, err := e.Nodes.Nodes(ctx)
	if err != nil {
		return err
	}
	out := io.Writer(os.Stdout)
	if e.safety != nil && e.safety.Out != nil {
		out = e.safety.Out
	}
	in := &install.Rack{Rack: e.Rack, Nodes: nodes, Client: e.Client, Out: out}
	return in.Ensure(ctx, e.approveInstall)
}

// Close releases what Connect opened (the ssh provider's connections).
func (e *Env) Close() error {
	if c, ok := e.Nodes.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// Reachable loads the inputs of a run and connects to its rack, then lets go:
// the commands call it before the specs, so that a rack that is not up, an
// unreachable machine or a wrong host key is bad input (exit 2) said before
// anything runs, not a failed spec.
func Reachable(ctx context.Context, log logr.Logger, o Options) error {
	e, err := Load(log, o)
	if err != nil {
		return err
	}
	defer e.Close()
	return e.Connect(ctx)
}

// Record keeps a drill's outcome for run.json.
func (e *Env) Record(o scenarios.Outcome) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.outcomes = append(e.outcomes, o)
}

// WriteRun writes the run's drills and checks to <artifacts>/name (run.json).
func (e *Env) WriteRun(name string) (string, error) {
	e.mu.Lock()
	drills := append([]scenarios.Outcome(nil), e.outcomes...)
	checks := append([]conform.Result(nil), e.checks...)
	e.mu.Unlock()
	sort.SliceStable(drills, func(i, j int) bool { return drills[i].SteadyAt.Before(drills[j].SteadyAt) })
	run := runrecord.Run{Rack: e.Rack.Metadata.Name, Provider: string(e.Provider), Kubernetes: e.Rack.Spec.Kubernetes.Version,
		Suite: e.suite, Started: e.started, Finished: time.Now(), Checks: checks}
	for i := range drills {
		d, err := drills[i].Record()
		if err != nil {
			return "", err
		}
		run.Drills = append(run.Drills, d)
	}
	if err := os.MkdirAll(e.Artifacts, 0o755); err != nil {
		return "", fmt.Errorf("artifacts folder: %w", err)
	}
	p := filepath.Join(e.Artifacts, name)
	return p, run.Write(p)
}

var (
	current *Env
	// declared are the suites of this binary, in the order they run.
	declared []declaredSuite
)

type declaredSuite struct {
	name  string
	order int
	specs func()
	// upgrade marks a suite about an upgrade: its specs exist only in a
	// run that has a target release (--to).
	upgrade bool
}

// Declare adds a suite's specs, from its package's init; order places it
// among the suites of one run (conformance 1, pre-upgrade 2, chaos 3).
func Declare(name string, order int, specs func()) {
	declare(declaredSuite{name: name, order: order, specs: specs})
}

// DeclareUpgrade adds a suite about an upgrade to the target release (the
// pre-upgrade checks, the rehearsal): a run without a target (--to) has none
// of its specs, so no label filter selects them where they cannot run.
func DeclareUpgrade(name string, order int, specs func()) {
	declare(declaredSuite{name: name, order: order, specs: specs, upgrade: true})
}

// SpecsOf are the specs of the suite declared as name, for a suite that runs
// them again (the conformance suite after the rehearsed upgrade). It reads
// them when the run's tree is built, after every package's init.
func SpecsOf(name string) func() {
	return func() {
		for _, d := range declared {
			if d.name == name {
				d.specs()
				return
			}
		}
		panic("framework: no suite " + name + " is declared (import its package)")
	}
}

func declare(d declaredSuite) {
	declared = append(declared, d)
	sort.SliceStable(declared, func(i, j int) bool { return declared[i].order < declared[j].order })
}

// Current is the Env of the run in progress: the suites' specs read it when
// their tree is built, which is when the run starts.
func Current() *Env {
	if current == nil {
		panic("framework: no run in progress (specs must be run through framework.RunSuite or framework.RunInProcess)")
	}
	return current
}

// RunSuite is a suite's entry point under go test and the ginkgo CLI: it loads
// and checks the inputs from the flags, then runs the specs, with their JUnit
// and JSON reports and run-<suite>.json in the artifacts folder.
func RunSuite(t *testing.T, suite string) {
	t.Helper()
	gomega.RegisterFailHandler(ginkgo.Fail)
	e, err := Load(ginkgo.GinkgoLogr, flagOptions())
	if err != nil {
		t.Fatalf("%s suite: %v", suite, err)
	}
	for _, d := range declared {
		if d.name == suite && d.upgrade && e.UpgradeTo == "" {
			t.Fatalf("%s suite: it checks an upgrade: give its target release with -to (e.g. -to v1.34.4)", suite)
		}
	}
	e.register(suite, "run-"+suite+".json")
	sc, rc := ginkgo.GinkgoConfiguration()
	rc = e.reporterConfig(suite, rc)
	// A real rack's gates apply here too: the suite run by go test or the
	// ginkgo CLI, whatever its filters select (-yes, -allow-quorum-loss,
	// -allow-power).
	if err := e.guardRealRack(flagSafety(), sc, rc); err != nil {
		t.Fatalf("%s suite: %v", suite, err)
	}
	if err := e.prepareRealRack(context.Background()); err != nil {
		t.Fatalf("%s suite: %v", suite, err)
	}
	ginkgo.RunSpecs(t, "rackdrill "+suite, sc, rc)
}

// register makes e the current run and adds the suite-level nodes: connect to
// the rack before any spec, write the drills to runFile after the last.
func (e *Env) register(suite, runFile string) {
	current, e.suite = e, suite
	// One Ordered container holds the suites in their declared order
	// (conformance, pre-upgrade, then chaos) whatever ginkgo's seed; it
	// goes on after a failed spec (ContinueOnFailure), as separate suites
	// would; Serial, as the drills are. Its text is empty: spec names, focus
	// and labels are unchanged.
	ginkgo.Describe("", ginkgo.Ordered, ginkgo.ContinueOnFailure, ginkgo.Serial, func() {
		for _, d := range declared {
			if d.upgrade && e.UpgradeTo == "" {
				continue
			}
			ginkgo.Describe(d.name, d.specs)
		}
		ginkgo.ReportAfterEach(func(r ginkgo.SpecReport) {
			if r.Failed() && r.LeafNodeType == types.NodeTypeIt {
				e.mu.Lock()
				e.failed = append(e.failed, r.FullText())
				e.mu.Unlock()
			}
		})
	})
	ginkgo.BeforeSuite(func(ctx context.Context) {
		gomega.Expect(e.Connect(ctx)).To(gomega.Succeed())
	})
	ginkgo.ReportAfterSuite("drills to "+runFile, func(ginkgo.Report) {
		if e.previewing {
			return
		}
		p, err := e.WriteRun(runFile)
		gomega.Expect(err).NotTo(gomega.HaveOccurred())
		ginkgo.GinkgoLogr.Info("drills recorded", "file", p)
	})
}

// reporterConfig points ginkgo's JUnit and JSON reports into the artifacts
// folder unless the ginkgo CLI was told where to put them.
func (e *Env) reporterConfig(suite string, rc types.ReporterConfig) types.ReporterConfig {
	if rc.JUnitReport == "" {
		rc.JUnitReport = filepath.Join(e.Artifacts, "junit-"+suite+".xml")
	}
	if rc.JSONReport == "" {
		rc.JSONReport = filepath.Join(e.Artifacts, "ginkgo-"+suite+".json")
	}
	return rc
}

// RunConfig is a run of the suites inside this process (`rackdrill run`).
type RunConfig struct {
	Options
	// Suites names what runs, for the reports ("conformance+chaos").
	Suites string
	// LabelFilter and Focus select specs as ginkgo's flags do.
	LabelFilter string
	Focus       []string
	// Progress is told each drill's phase; Live each change of the probes.
	Progress func(fault, phase string)
	Live     func(fault string, states map[string]bool)
	// Checked is told each conformance or pre-upgrade check's result.
	Checked func(conform.Result)
	Timeout time.Duration
	Verbose bool
	// Safety applies to a real rack (provider ssh): the chaos rows ginkgo
	// will run are planned, gated and confirmed before anything connects.
	Safety *Safety
	// BeforeSpecs, when set, runs after the gate and before the specs (the
	// CLI checks every machine answers there).
	BeforeSpecs func() error
	// DryRun lists the specs in the order they would run, running none
	// (ginkgo's --dry-run); Seed is ginkgo's random seed when not 0.
	DryRun bool
	Seed   int64
	// Color lets ginkgo's reporter colour its output (the CLI sets it for a
	// terminal, unless NO_COLOR is set).
	Color bool
}

// failer records a failure of RunSpecs outside go test.
type failer struct{ failed bool }

func (f *failer) Fail() { f.failed = true }

// RunInProcess runs the specs of the imported suite packages against the rack of
// cfg: ginkgo-junit.xml, ginkgo.json and run.json go into the artifacts folder
// (the caller renders junit.xml and report.html from run.json). It
// returns whether every spec passed.
func RunInProcess(cfg RunConfig, log logr.Logger) (*Env, bool, error) {
	e, err := Load(log, cfg.Options)
	if err != nil {
		return nil, false, err
	}
	e.Progress, e.Live, e.Checked = cfg.Progress, cfg.Live, cfg.Checked
	gomega.RegisterFailHandler(ginkgo.Fail)
	e.register(cfg.Suites, "run.json")
	sc, rc := ginkgo.GinkgoConfiguration()
	sc.LabelFilter = cfg.LabelFilter
	sc.FocusStrings = cfg.Focus
	if cfg.Timeout > 0 {
		sc.Timeout = cfg.Timeout
	}
	rc.Verbose = cfg.Verbose
	rc.NoColor = !cfg.Color
	sc.DryRun = cfg.DryRun
	if cfg.Seed != 0 {
		sc.RandomSeed = cfg.Seed
	}
	// junit.xml is the reports package's (a testsuite per drill, a testcase
	// per cell); ginkgo's own, a testcase per spec, sits beside it.
	rc.JUnitReport = filepath.Join(e.Artifacts, "ginkgo-junit.xml")
	rc.JSONReport = filepath.Join(e.Artifacts, "ginkgo.json")
	if why := e.selectsNothing(sc, rc); why != "" {
		return e, false, errors.New(why)
	}
	if err := e.guardRealRack(cfg.Safety, sc, rc); err != nil {
		return e, false, err
	}
	if !sc.DryRun {
		if err := e.prepareRealRack(context.Background()); err != nil {
			return e, false, err
		}
	}
	if cfg.BeforeSpecs != nil {
		if err := cfg.BeforeSpecs(); err != nil {
			return e, false, err
		}
	}
	f := &failer{}
	ok := ginkgo.RunSpecs(f, "rackdrill "+cfg.Suites, sc, rc)
	return e, ok && !f.failed, nil
}

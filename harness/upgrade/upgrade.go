// Package upgrade performs a rack's upgrade runbook (preflight.Runbook) on the
// lab: the rehearsal of the upgrade its operator will run, step by step and
// machine by machine, with the real tools (kubeadm upgrade apply and upgrade
// node, a drain that honours PodDisruptionBudgets, the kubelet replaced and
// restarted, the node uncordoned and seen Ready at the new version). Where the
// runbook fetches a release (apt), the lab installs the release's kit, built
// here from the Go module proxy like every lab image (lab image
// <version>/kit). It refuses any rack but the lab's: rackdrill never upgrades
// a real rack.
package upgrade

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/kubectl/pkg/drain"

	"rackdrill.dev/rackdrill/harness/cluster"
	"rackdrill.dev/rackdrill/harness/cluster/containers"
	"rackdrill.dev/rackdrill/harness/exec"
	"rackdrill.dev/rackdrill/harness/lab"
	"rackdrill.dev/rackdrill/harness/preflight"
	"rackdrill.dev/rackdrill/harness/topology"
)

// KitDir is where a machine receives the release's kit (the kit image's
// lab.KitRoot, copied under /opt/rackdrill).
var KitDir = path.Join("/opt/rackdrill", path.Base(lab.KitRoot))

// Lab performs runbooks on the lab's machines.
type Lab struct {
	Rack  *topology.Rack
	Nodes []cluster.Node
	Kube  kubernetes.Interface
	// Kit is the content tag of the target release's kit image.
	Kit string
	// Logs is the folder each step's output is written to.
	Logs string
	// Out receives a line per step.
	Out io.Writer
	// DrainTimeout bounds a drain (the runbook's --timeout), ReadyTimeout
	// the wait for an uncordoned node Ready at the new version and for
	// CoreDNS's rollout after the lab places it again.
	DrainTimeout time.Duration
	ReadyTimeout time.Duration
	// Local runs docker on this machine (the kit's container).
	Local exec.Cmder
	// DNSPlacement, when set, is the lab's patch of the CoreDNS Deployment,
	// applied again after the step in which kubeadm rewrote it (the
	// runbook's check preflight.CoreDNSReset: the last server's).
	DNSPlacement string

	// APISteady is how long a server's own API server must answer /readyz
	// after its uncordon before the next machine's step (zero:
	// preflight.APIServerSteadyFor).
	APISteady time.Duration

	kitContainer string
	kitted       map[string]bool
}

// Mark is one step performed: which, where, when, and how it ended. The
// rehearsal's timeline shows them, and run.json keeps them, so that a promise
// broken during the upgrade names the step it broke in.
type Mark struct {
	Step  int                `json:"step"` // the runbook's numbering, from 1
	Kind  preflight.StepKind `json:"kind"`
	Where string             `json:"where"`
	What  string             `json:"what"`
	Node  string             `json:"node,omitempty"`
	Start time.Time          `json:"start"`
	End   time.Time          `json:"end"`
	Error string             `json:"error,omitempty"`
	// Log is the file holding the step's output, if it ran commands.
	Log string `json:"log,omitempty"`
}

// StepError is a failed step of the upgrade: the step, and why.
type StepError struct {
	Mark Mark
	Err  error
}

func (e *StepError) Error() string {
	return fmt.Sprintf("step %d [%s] %s: %v", e.Mark.Step, e.Mark.Where, e.Mark.What, e.Err)
}
func (e *StepError) Unwrap() error { return e.Err }

// Around are the steps the rehearsal runs around the machines' steps (the
// conformance suite and the preflight before, the suite again after): Perform
// skips them.
var Around = map[preflight.StepKind]bool{preflight.StepPreflight: true, preflight.StepSnapshot: true, preflight.StepAfter: true}

// Perform runs every machine step of rb, in order, telling mark each one as
// it ends; it stops at the first that fails, leaving the lab as it is.
func (l *Lab) Perform(ctx context.Context, rb preflight.Runbook, mark func(Mark)) ([]Mark, error) {
	if l.Rack.Spec.Provider != topology.ProviderContainers {
		return nil, fmt.Errorf("rack %s (provider %s): rackdrill rehearses an upgrade on its lab only; it never upgrades a real rack (its runbook: rackdrill preflight --to %s --runbook)",
			l.Rack.Metadata.Name, l.Rack.Spec.Provider, rb.To)
	}
	if rb.Distribution == topology.DistributionK3s {
		return nil, errors.New("the lab has no K3s rack yet (issue 19): a K3s upgrade is rehearsed nowhere")
	}
	if l.Local == nil {
		l.Local = exec.Local{}
	}
	if err := os.MkdirAll(l.Logs, 0o755); err != nil {
		return nil, err
	}
	defer l.removeKitContainer()
	var marks []Mark
	for i, s := range rb.Steps {
		if Around[s.Kind] {
			continue
		}
		m := Mark{Step: i + 1, Kind: s.Kind, Where: s.Where, What: s.What, Node: s.Node, Start: time.Now()}
		fmt.Fprintf(l.Out, "upgrade: step %d/%d [%s] %s\n", i+1, len(rb.Steps), s.Where, s.What)
		err := l.perform(ctx, rb, s, &m)
		m.End = time.Now()
		if err != nil {
			m.Error = err.Error()
		}
		marks = append(marks, m)
		if mark != nil {
			mark(m)
		}
		if err != nil {
			return marks, &StepError{Mark: m, Err: err}
		}
		fmt.Fprintf(l.Out, "upgrade: step %d done in %s\n", i+1, m.End.Sub(m.Start).Round(100*time.Millisecond))
	}
	return marks, nil
}

func (l *Lab) perform(ctx context.Context, rb preflight.Runbook, s preflight.RunbookStep, m *Mark) error {
	switch s.Kind {
	case preflight.StepKubeadm:
		n, err := l.node(s.Node)
		if err != nil {
			return err
		}
		// The release's images reach every machine at the first step, as a
		// real rack's registry serves them to every machine at once: the
		// add-ons kubeadm upgrades (kube-proxy's DaemonSet, CoreDNS) start
		// their new pods wherever they are scheduled, not only on the
		// machines upgraded so far.
		for _, st := range rb.Steps {
			if st.Kind != preflight.StepKubeadm {
				continue
			}
			other, err := l.node(st.Node)
			if err != nil {
				return err
			}
			if err := l.installKit(ctx, other, rb.To); err != nil {
				return err
			}
		}
		return l.install(ctx, n, m, rb.To, "kubeadm")
	case preflight.StepUpgradeApply:
		n, err := l.node(s.Node)
		if err != nil {
			return err
		}
		if err := l.run(ctx, n, m, "kubeadm", "upgrade", "plan", rb.To); err != nil {
			return err
		}
		if err := l.run(ctx, n, m, "kubeadm", "upgrade", "apply", "-y", rb.To); err != nil {
			return err
		}
		return l.placeDNS(ctx, n, m, s)
	case preflight.StepUpgradeNode:
		n, err := l.node(s.Node)
		if err != nil {
			return err
		}
		if err := l.run(ctx, n, m, "kubeadm", "upgrade", "node"); err != nil {
			return err
		}
		return l.placeDNS(ctx, n, m, s)
	case preflight.StepDrain:
		return l.drain(ctx, s.Node, m)
	case preflight.StepKubelet:
		n, err := l.node(s.Node)
		if err != nil {
			return err
		}
		if err := l.install(ctx, n, m, rb.To, "kubelet", "kubectl"); err != nil {
			return err
		}
		if err := l.run(ctx, n, m, "systemctl", "daemon-reload"); err != nil {
			return err
		}
		if err := l.run(ctx, n, m, "systemctl", "restart", "kubelet"); err != nil {
			return err
		}
		return l.run(ctx, n, m, "systemctl", "is-active", "kubelet")
	case preflight.StepUncordon:
		if err := l.uncordon(ctx, s.Node, rb.To); err != nil {
			return err
		}
		if node := l.Rack.Node(s.Node); node != nil && node.HasRole(topology.RoleServer) {
			n, err := l.node(s.Node)
			if err != nil {
				return err
			}
			return l.waitAPIServer(ctx, n, node, m)
		}
		return nil
	}
	return fmt.Errorf("the lab cannot perform a %q step", s.Kind)
}

// placeDNS applies the lab's CoreDNS placement again after the step in which
// kubeadm rewrote the CoreDNS Deployment (the runbook's check
// preflight.CoreDNSReset), and waits for its rollout.
func (l *Lab) placeDNS(ctx context.Context, n cluster.Node, m *Mark, s preflight.RunbookStep) error {
	if l.DNSPlacement == "" || !slices.Contains(s.Check, preflight.CoreDNSReset) {
		return nil
	}
	kubectl := []string{"--kubeconfig", "/etc/kubernetes/admin.conf", "-n", "kube-system"}
	if err := l.run(ctx, n, m, "kubectl", append(kubectl, "patch", "deployment", "coredns", "--type", "strategic", "-p", l.DNSPlacement)...); err != nil {
		return err
	}
	return l.run(ctx, n, m, "kubectl", append(kubectl, "rollout", "status", "deployment/coredns", "--timeout", l.ReadyTimeout.String())...)
}

func (l *Lab) node(name string) (cluster.Node, error) {
	for _, n := range l.Nodes {
		if n.Name() == name {
			return n, nil
		}
	}
	return nil, fmt.Errorf("machine %s of the runbook is not one of the lab's", name)
}

// run runs a command on n, its output appended to the step's log.
func (l *Lab) run(ctx context.Context, n cluster.Node, m *Mark, name string, args ...string) error {
	m.Log = filepath.Join(l.Logs, fmt.Sprintf("%02d-%s-%s.log", m.Step, m.Kind, n.Name()))
	f, err := os.OpenFile(m.Log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	line := strings.Join(append([]string{name}, args...), " ")
	fmt.Fprintf(f, "$ %s\n", line)
	var tail tailWriter
	w := io.MultiWriter(f, &tail)
	if err := n.Command(ctx, name, args...).SetStdout(w).SetStderr(w).Run(); err != nil {
		return fmt.Errorf("%s on %s: %w\n%s(the whole output: %s)", line, n.Name(), err, tail.String(), m.Log)
	}
	return nil
}

// install puts the kit's binaries in /usr/bin, where the node image has them,
// and checks the version they report.
func (l *Lab) install(ctx context.Context, n cluster.Node, m *Mark, to string, bins ...string) error {
	for _, b := range bins {
		if err := l.run(ctx, n, m, "install", "-m", "0755", KitDir+"/bin/"+b, "/usr/bin/"+b); err != nil {
			return err
		}
	}
	if bins[0] == "kubeadm" {
		out, err := exec.Output(n.Command(ctx, "kubeadm", "version", "-o", "short"))
		if err != nil {
			return fmt.Errorf("kubeadm version on %s: %w", n.Name(), err)
		}
		if v := strings.TrimSpace(string(out)); v != to {
			return fmt.Errorf("kubeadm on %s is %s after its install, not %s", n.Name(), v, to)
		}
	}
	return nil
}

// drain is kubectl drain's: cordon, then every pod but DaemonSets' and static
// pods evicted, PodDisruptionBudgets honoured (an eviction they refuse is
// retried until the timeout), emptyDir data deleted, no --force.
func (l *Lab) drain(ctx context.Context, name string, m *Mark) error {
	m.Log = filepath.Join(l.Logs, fmt.Sprintf("%02d-drain-%s.log", m.Step, name))
	f, err := os.Create(m.Log)
	if err != nil {
		return err
	}
	defer f.Close()
	h := &drain.Helper{Ctx: ctx, Client: l.Kube, GracePeriodSeconds: -1, IgnoreAllDaemonSets: true,
		DeleteEmptyDirData: true, Timeout: l.DrainTimeout, Out: f, ErrOut: f}
	node, err := l.Kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if err := drain.RunCordonOrUncordon(h, node, true); err != nil {
		return fmt.Errorf("cordon %s: %w", name, err)
	}
	if err := drain.RunNodeDrain(h, name); err != nil {
		return fmt.Errorf("drain %s (PodDisruptionBudgets honoured, timeout %s): %w (log: %s)", name, l.DrainTimeout, err, m.Log)
	}
	return nil
}

// uncordon makes the node schedulable and waits until it is Ready with its
// kubelet at the new version.
func (l *Lab) uncordon(ctx context.Context, name, to string) error {
	h := &drain.Helper{Ctx: ctx, Client: l.Kube, Out: io.Discard, ErrOut: io.Discard}
	node, err := l.Kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if err := drain.RunCordonOrUncordon(h, node, false); err != nil {
		return fmt.Errorf("uncordon %s: %w", name, err)
	}
	var last string
	err = wait.PollUntilContextTimeout(ctx, 2*time.Second, l.ReadyTimeout, true, func(ctx context.Context) (bool, error) {
		n, err := l.Kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		ready := false
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				ready = c.Status == corev1.ConditionTrue
			}
		}
		last = fmt.Sprintf("Ready %v, kubelet %s", ready, n.Status.NodeInfo.KubeletVersion)
		return ready && n.Status.NodeInfo.KubeletVersion == to && !n.Spec.Unschedulable, nil
	})
	if err != nil {
		return fmt.Errorf("%s not Ready at %s within %s (last seen: %s)", name, to, l.ReadyTimeout, last)
	}
	return nil
}

// WorkerImages are the release's images a worker runs (kube-proxy's
// DaemonSet, CoreDNS wherever it is scheduled, every pod's sandbox); a server
// runs every image of the release.
var WorkerImages = []string{"coredns", "kube-proxy", "pause"}

// KitImages lists the release's images machine node receives: a server every
// one, a worker WorkerImages. (Each of the lab's five machines receiving all
// seven copied half a gigabyte per worker for nothing.)
func KitImages(to string, node *topology.Node) ([]string, error) {
	all, err := lab.KitImages(to)
	if err != nil {
		return nil, err
	}
	if node.HasRole(topology.RoleServer) {
		return all, nil
	}
	var out []string
	for _, name := range all {
		if slices.Contains(WorkerImages, name) {
			out = append(out, name)
		}
	}
	return out, nil
}

// waitAPIServer is the runbook's check preflight.APIServerSteady: the
// server's own API server (not the endpoint, which may answer from another)
// answers /readyz ok for APISteady straight, within ReadyTimeout. The new
// kubelet may restart the static pods a few seconds after it starts, and a
// restarted API server answers 403 until its caches are synced.
func (l *Lab) waitAPIServer(ctx context.Context, n cluster.Node, node *topology.Node, m *Mark) error {
	steady := l.APISteady
	if steady <= 0 {
		steady = preflight.APIServerSteadyFor
	}
	url := "https://" + net.JoinHostPort(node.Address, strconv.Itoa(topology.DefaultAPIPort))
	var since time.Time
	last := "no answer yet"
	every := min(time.Second, max(steady/5, time.Millisecond))
	err := wait.PollUntilContextTimeout(ctx, every, l.ReadyTimeout, true, func(ctx context.Context) (bool, error) {
		out, err := exec.Output(n.Command(ctx, "kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf", "--server", url,
			"--request-timeout", "2s", "get", "--raw", "/readyz"))
		if got := strings.TrimSpace(string(out)); err != nil || got != "ok" {
			since, last = time.Time{}, fmt.Sprintf("%q %v", got, err)
			return false, nil
		}
		if since.IsZero() {
			since = time.Now()
		}
		return time.Since(since) >= steady, nil
	})
	if err != nil {
		return fmt.Errorf("the API server of %s (%s) did not answer /readyz ok for %s straight within %s (last: %s)", n.Name(), url, steady, l.ReadyTimeout, last)
	}
	return nil
}

// installKit copies the release's kit onto n (once): its binaries into
// KitDir, where they wait until the machine's own steps install them, and the
// images the machine runs (KitImages) straight into its containerd, as the
// node image's preload does: the lab's stand-in for the registry a real rack
// pulls the release from. Each image is streamed from the kit's container to
// the machine's ctr: no copy of the archive is left on the machine.
func (l *Lab) installKit(ctx context.Context, n cluster.Node, to string) error {
	if l.kitted[n.Name()] {
		return nil
	}
	node := l.Rack.Node(n.Name())
	if node == nil {
		return fmt.Errorf("machine %s is not in rack %s", n.Name(), l.Rack.Metadata.Name)
	}
	images, err := KitImages(to, node)
	if err != nil {
		return err
	}
	if l.kitContainer == "" {
		name := l.Rack.Metadata.Name + "-upgrade-kit"
		_ = exec.Run(l.Local.Command(ctx, "docker", "rm", "-f", name))
		// Labelled as the rack's: `rackdrill down` removes it if a run dies.
		if err := exec.Run(l.Local.Command(ctx, "docker", "create", "--name", name,
			"--label", containers.LabelRack+"="+l.Rack.Metadata.Name, l.Kit)); err != nil {
			return fmt.Errorf("the kit %s: %w", l.Kit, err)
		}
		l.kitContainer = name
	}
	if err := exec.Run(n.Command(ctx, "mkdir", "-p", KitDir)); err != nil {
		return fmt.Errorf("%s: %w", n.Name(), err)
	}
	// docker cp's archive holds the folder itself: extracted in KitDir, it
	// is KitDir/bin.
	if err := l.stream(ctx, n, path.Join(lab.KitRoot, "bin"), "tar", "-x", "-C", KitDir); err != nil {
		return fmt.Errorf("copy the kit's binaries onto %s: %w", n.Name(), err)
	}
	for _, img := range images {
		// The archive holds one file, the image's: tar -O writes it out.
		imp := "set -eo pipefail; tar -x -O | ctr -n k8s.io images import --no-unpack - >/dev/null"
		if err := l.stream(ctx, n, lab.KitImagePath(img), "bash", "-c", imp); err != nil {
			return fmt.Errorf("import the release's %s on %s: %w", img, n.Name(), err)
		}
	}
	if l.kitted == nil {
		l.kitted = map[string]bool{}
	}
	l.kitted[n.Name()] = true
	return nil
}

// stream copies src out of the kit's container (docker cp's tar archive) into
// the standard input of a command on n.
func (l *Lab) stream(ctx context.Context, n cluster.Node, src, name string, args ...string) error {
	pr, pw := io.Pipe()
	copyOut := l.Local.Command(ctx, "docker", "cp", l.kitContainer+":"+src, "-").SetStdout(pw)
	done := make(chan error, 1)
	go func() {
		err := copyOut.Run()
		pw.CloseWithError(err)
		done <- err
	}()
	err := exec.Run(n.Command(ctx, name, args...).SetStdin(pr))
	pr.Close()
	return errors.Join(<-done, err)
}

func (l *Lab) removeKitContainer() {
	if l.kitContainer != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = exec.Run(l.Local.Command(ctx, "docker", "rm", "-f", l.kitContainer))
	}
}

// tailWriter keeps the last lines of a command's output for its error.
type tailWriter struct{ buf []byte }

func (t *tailWriter) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2000 {
		t.buf = t.buf[len(t.buf)-2000:]
	}
	return len(p), nil
}

func (t *tailWriter) String() string { return string(t.buf) }

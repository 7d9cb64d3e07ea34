package rackstate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"rackdrill.dev/rackdrill/harness/cluster"
	"rackdrill.dev/rackdrill/harness/exec"
	"rackdrill.dev/rackdrill/harness/topology"
)

// Dump writes into dir what an SRE reads after a failed drill: the cluster's
// events, the pod logs of the namespaces involved, every running node's
// journal tail and containers, etcd's endpoint status, HAProxy's stats and
// keepalived's state. It goes on past what fails (the API may be the thing that
// is down) and returns every error joined; each part is bounded in time.
func Dump(ctx context.Context, dir string, r *topology.Rack, nodes []cluster.Node, cs kubernetes.Interface, namespaces []string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var errs []error
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			errs = append(errs, err)
		}
	}
	part := func(name string, limit time.Duration, fn func(ctx context.Context) ([]byte, error)) {
		pctx, cancel := context.WithTimeout(ctx, limit)
		defer cancel()
		out, err := fn(pctx)
		if err != nil {
			out = append(out, []byte("\nERROR: "+err.Error()+"\n")...)
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
		write(name, out)
	}
	for _, n := range nodes {
		if up, err := n.Running(ctx); err != nil || !up {
			write("node-"+n.Name()+".txt", []byte("not running\n"))
			continue
		}
		n := n
		part("node-"+n.Name()+".txt", 30*time.Second, func(ctx context.Context) ([]byte, error) {
			return exec.Output(n.Command(ctx, "sh", "-c",
				"echo '# ip -4 addr'; ip -4 -o addr show; "+
					"echo '# failed units'; systemctl --failed --no-legend --no-pager; "+
					"echo '# containers (crictl ps -a)'; crictl ps -a 2>/dev/null || true; "+
					"echo '# keepalived'; journalctl -u keepalived -n 40 --no-pager 2>/dev/null || true; "+
					"echo '# journal tail'; journalctl -n 300 --no-pager"))
		})
	}
	part("etcd.txt", 20*time.Second, func(ctx context.Context) ([]byte, error) {
		members, err := EtcdStatus(ctx, nodes)
		var b strings.Builder
		for _, m := range members {
			fmt.Fprintf(&b, "%s\t%s\tleader=%v\tversion=%s\traftTerm=%d\tdbSize=%d\n", m.Node, m.Endpoint, m.Leader, m.Version, m.RaftTerm, m.DBSize)
		}
		return []byte(b.String()), err
	})
	if hp := r.Spec.ControlPlane.HAProxy; hp != nil && hp.StatsPort > 0 {
		for _, name := range hp.Nodes {
			n := r.Node(name)
			if n == nil {
				continue
			}
			url := "http://" + net.JoinHostPort(n.Address, strconv.Itoa(hp.StatsPort)) + "/stats;csv"
			part("haproxy-"+name+".csv", 10*time.Second, func(ctx context.Context) ([]byte, error) {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				if err != nil {
					return nil, err
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return nil, err
				}
				defer resp.Body.Close()
				return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			})
		}
	}
	if cs != nil {
		part("events.txt", 20*time.Second, func(ctx context.Context) ([]byte, error) {
			evs, err := cs.CoreV1().Events("").List(ctx, metav1.ListOptions{})
			if err != nil {
				return nil, err
			}
			items := evs.Items
			sort.Slice(items, func(i, j int) bool { return eventTime(items[i]).Before(eventTime(items[j])) })
			var b strings.Builder
			for _, e := range items {
				fmt.Fprintf(&b, "%s\t%s\t%s/%s %s\t%s\t%s\n", eventTime(e).Format(time.RFC3339), e.Type,
					e.InvolvedObject.Namespace, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason, strings.TrimSpace(e.Message))
			}
			return []byte(b.String()), nil
		})
		for _, ns := range namespaces {
			part("pods-"+ns+".log", 60*time.Second, func(ctx context.Context) ([]byte, error) {
				return podLogs(ctx, cs, ns)
			})
		}
	}
	return errors.Join(errs...)
}

func eventTime(e corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}

// podLogs is every pod of ns with its phase and the last lines of each
// container's log.
func podLogs(ctx context.Context, cs kubernetes.Interface, ns string) ([]byte, error) {
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	tail := int64(100)
	for _, p := range pods.Items {
		fmt.Fprintf(&b, "=== pod %s/%s on %s: %s\n", ns, p.Name, p.Spec.NodeName, p.Status.Phase)
		for _, c := range p.Spec.Containers {
			data, err := cs.CoreV1().Pods(ns).GetLogs(p.Name, &corev1.PodLogOptions{Container: c.Name, TailLines: &tail}).DoRaw(ctx)
			if err != nil {
				fmt.Fprintf(&b, "--- %s: no log: %v\n", c.Name, err)
				continue
			}
			fmt.Fprintf(&b, "--- %s\n%s\n", c.Name, data)
		}
	}
	return []byte(b.String()), nil
}

package upgrade

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"rackdrill.dev/rackdrill/harness/matrix"
)

// LeaderLeases are the control plane's leader leases (kube-system): while
// one moves, its component has no leader, and the rehearsal's heal cell does
// not count a failed heal (the cell's exception, matrix.ExceptLeaderElection).
var LeaderLeases = []string{"kube-scheduler", "kube-controller-manager"}

// leaseSeen is one reading of a lease.
type leaseSeen struct {
	holder         string
	acquire, renew time.Time
	duration       time.Duration
}

// leaseWatch reads the leader leases every interval until stopped, and
// turns what it read into the spans in which each moved.
type leaseWatch struct {
	mu   sync.Mutex
	seen map[string][]leaseSeen
	quit chan struct{}
	done chan struct{}
}

// watchLeases starts reading kube's leader leases. Reads that fail (the API
// is restarting) are skipped: a move is seen from the lease's own times at
// the next reading, not from when the harness looked.
func watchLeases(ctx context.Context, kube kubernetes.Interface, every time.Duration) *leaseWatch {
	lw := &leaseWatch{seen: map[string][]leaseSeen{}, quit: make(chan struct{}), done: make(chan struct{})}
	read := func() {
		for _, name := range LeaderLeases {
			rctx, cancel := context.WithTimeout(ctx, every)
			l, err := kube.CoordinationV1().Leases("kube-system").Get(rctx, name, metav1.GetOptions{})
			cancel()
			if err != nil || l.Spec.HolderIdentity == nil || l.Spec.AcquireTime == nil || l.Spec.RenewTime == nil {
				continue
			}
			s := leaseSeen{holder: *l.Spec.HolderIdentity, acquire: l.Spec.AcquireTime.Time, renew: l.Spec.RenewTime.Time}
			if l.Spec.LeaseDurationSeconds != nil {
				s.duration = time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second
			}
			lw.mu.Lock()
			lw.seen[name] = append(lw.seen[name], s)
			lw.mu.Unlock()
		}
	}
	go func() {
		defer close(lw.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			read()
			select {
			case <-lw.quit:
				read() // the state at the end, however recent the last tick
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return lw
}

// Stop ends the readings, after a last one, and returns the moves seen, up
// to end.
func (lw *leaseWatch) Stop(end time.Time) []matrix.Interval {
	close(lw.quit)
	<-lw.done
	lw.mu.Lock()
	defer lw.mu.Unlock()
	var out []matrix.Interval
	for _, name := range LeaderLeases {
		out = append(out, leaseMoves(name, lw.seen[name], end)...)
	}
	return out
}

// leaseMoves are the spans in which lease name had no leader, from its
// readings: each time it was acquired anew, from the previous holder's last
// renewal seen to the acquisition; and, if its last holder's lease had lapsed
// by end, from that holder's last renewal to end. The times are the lease's
// own, written by the holders: on the lab, every machine shares the host's
// clock.
func leaseMoves(name string, seen []leaseSeen, end time.Time) []matrix.Interval {
	var out []matrix.Interval
	for i := 1; i < len(seen); i++ {
		a, b := seen[i-1], seen[i]
		if b.acquire.Equal(a.acquire) && b.holder == a.holder {
			continue
		}
		what := fmt.Sprintf("%s's lease moved from %s to %s", name, machineOf(a.holder), machineOf(b.holder))
		if machineOf(a.holder) == machineOf(b.holder) {
			what = fmt.Sprintf("%s's lease was taken again on %s", name, machineOf(b.holder))
		}
		from, to := a.renew, b.acquire
		if to.Before(from) {
			from = to
		}
		out = append(out, matrix.Interval{From: from, To: to, What: what})
	}
	if n := len(seen); n > 0 {
		last := seen[n-1]
		if last.duration > 0 && last.renew.Add(last.duration).Before(end) {
			out = append(out, matrix.Interval{From: last.renew, To: end,
				What: fmt.Sprintf("%s's lease lapsed on %s with no new holder", name, machineOf(last.holder))})
		}
	}
	return out
}

// machineOf is the machine of a leader's identity (kube-scheduler's and
// kube-controller-manager's are <hostname>_<uuid>).
func machineOf(holder string) string {
	m, _, _ := strings.Cut(holder, "_")
	return m
}

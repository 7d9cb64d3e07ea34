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
	mu    sync.Mutex
	seen  map[string][]leaseSeen
	every time.Duration
	quit  chan struct{}
	done  chan struct{}
}

// watchLeases starts reading kube's leader leases. Reads that fail (the API
// is restarting) are skipped: a move is seen from the lease's own times at
// the next reading, not from when the harness looked.
func watchLeases(ctx context.Context, kube kubernetes.Interface, every time.Duration) *leaseWatch {
	lw := &leaseWatch{seen: map[string][]leaseSeen{}, every: every, quit: make(chan struct{}), done: make(chan struct{})}
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
		out = append(out, leaseMoves(name, lw.seen[name], end, lw.every)...)
	}
	return out
}

// retryPeriod is the leader election's retry period of kube-scheduler and
// kube-controller-manager (2 s by default): a candidate tries to take a
// lapsed lease this often, so a handover takes at most this long past the
// old lease's expiry.
const retryPeriod = 2 * time.Second

// leaseMoves are the spans in which lease name had no leader, from its
// readings: each time it was acquired anew, from the previous holder's last
// renewal read to the acquisition; and, if its last holder's lease had lapsed
// by end, from that holder's last renewal to its expiry. Each span is
// bounded by what the lease itself allows: no longer than its duration plus
// the handover (the retry period and the reading interval), whatever the
// readings missed: a span of reads that failed (the API restarting) does not
// stretch it, and a lapsed lease excuses nothing past its duration. The
// times are the lease's own, written by the holders: on the lab, every
// machine shares the host's clock.
func leaseMoves(name string, seen []leaseSeen, end time.Time, every time.Duration) []matrix.Interval {
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
		if longest := a.duration + retryPeriod + every; a.duration > 0 && to.Sub(from) > longest {
			// The old holder's later renewals were not read: the lease
			// cannot have been leaderless longer than its duration and the
			// handover.
			what += fmt.Sprintf(" (bounded by the lease's %s and the handover: its last renewal read was %s before the acquisition)",
				a.duration, to.Sub(from).Round(time.Second))
			from = to.Add(-longest)
		}
		out = append(out, matrix.Interval{From: from, To: to, What: what})
	}
	if n := len(seen); n > 0 {
		last := seen[n-1]
		if last.duration > 0 && last.renew.Add(last.duration).Before(end) {
			to := last.renew.Add(last.duration + retryPeriod + every)
			if to.After(end) {
				to = end
			}
			out = append(out, matrix.Interval{From: last.renew, To: to,
				What: fmt.Sprintf("%s's lease lapsed on %s with no new holder (excused for its %s and the handover, not after)", name, machineOf(last.holder), last.duration)})
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

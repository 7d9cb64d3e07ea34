package containers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"rackdrill.dev/rackdrill/harness/poll"
)

// Interval names one wait of the lab's build. Every wait's limit is in the
// Intervals table below, not in the step that waits (cluster-api's e2e config
// names its intervals the same way), so that a slow machine can lengthen them
// all, or one.
type Interval string

const (
	IntervalBoot         Interval = "boot"          // systemd running on every machine
	IntervalSSH          Interval = "ssh"           // sshd answers with the rack's host key
	IntervalVIP          Interval = "vip"           // keepalived's master holds the API VIP
	IntervalNAS          Interval = "nas"           // nfs-ganesha registered with rpcbind
	IntervalEtcdJoin     Interval = "etcd-join"     // the API's etcd ready after a server joins
	IntervalPodCIDRs     Interval = "pod-cidrs"     // every node registered with its podCIDR
	IntervalNodesReady   Interval = "nodes-ready"   // every node Ready
	IntervalAddOn        Interval = "add-on"        // an add-on rolled out, its config accepted, its IP given
	IntervalLANProbe     Interval = "lan-probe"     // the demo app answers through the ingress IP
	IntervalInternetPath Interval = "internet-path" // the demo app answers from the Internet vantage point
	IntervalUPS          Interval = "ups"           // upsd reports the UPS online
)

// Intervals are the limits of the lab's waits.
type Intervals map[Interval]time.Duration

// DefaultIntervals fit a 2-core machine building the lab alone.
func DefaultIntervals() Intervals {
	return Intervals{
		IntervalBoot:         2 * time.Minute,
		IntervalSSH:          30 * time.Second,
		IntervalVIP:          30 * time.Second,
		IntervalNAS:          time.Minute,
		IntervalEtcdJoin:     time.Minute,
		IntervalPodCIDRs:     time.Minute,
		IntervalNodesReady:   3 * time.Minute,
		IntervalAddOn:        3 * time.Minute,
		IntervalLANProbe:     3 * time.Minute,
		IntervalInternetPath: 2 * time.Minute,
		IntervalUPS:          time.Minute,
	}
}

// ParseIntervals reads overrides of the defaults: "all=2x" scales every
// interval, "nodes-ready=6m" sets one; separated by commas (the value of
// --lab-waits and RACKDRILL_LAB_WAITS).
func ParseIntervals(s string) (Intervals, error) {
	iv := DefaultIntervals()
	for _, kv := range strings.Split(s, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		name, val, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("lab waits %q: %q is not name=duration or all=<factor>x", s, kv)
		}
		if name == "all" {
			var f float64
			if _, err := fmt.Sscanf(val, "%gx", &f); err != nil || f <= 0 || !strings.HasSuffix(val, "x") {
				return nil, fmt.Errorf("lab waits %q: all=%s: want a factor such as 2x", s, val)
			}
			for k, d := range iv {
				iv[k] = time.Duration(float64(d) * f)
			}
			continue
		}
		if _, known := iv[Interval(name)]; !known {
			return nil, fmt.Errorf("lab waits %q: no wait named %q (known: %s)", s, name, strings.Join(iv.names(), ", "))
		}
		d, err := time.ParseDuration(val)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("lab waits %q: %s=%s: want a positive duration such as 5m", s, name, val)
		}
		iv[Interval(name)] = d
	}
	return iv, nil
}

func (iv Intervals) names() []string {
	var out []string
	for k := range iv {
		out = append(out, string(k))
	}
	slices.Sort(out)
	return out
}

// WithIntervals sets the limits of the lab's waits (DefaultIntervals when not given).
func WithIntervals(iv Intervals) Option { return func(p *Provider) { p.intervals = iv } }

// limit is the named interval; one missing from a hand-made table is its default.
func (p *Provider) limit(name Interval) time.Duration {
	if d, ok := p.intervals[name]; ok {
		return d
	}
	return DefaultIntervals()[name]
}

// Poll calls fn every second until it succeeds, for at most limit, and returns
// fn's last error with the time it was given.
func Poll(ctx context.Context, limit time.Duration, fn func() error) error {
	var last error
	err := poll.Until(ctx, time.Second, limit, func() (bool, error) {
		last = fn()
		return last == nil, nil
	})
	if errors.Is(err, poll.ErrLimit) {
		return fmt.Errorf("after %s: %w", limit, last)
	}
	return err
}

// wait polls fn for at most the named interval.
func (u *upRun) wait(ctx context.Context, name Interval, fn func() error) error {
	limit := u.p.limit(name)
	if err := Poll(ctx, limit, fn); err != nil {
		return fmt.Errorf("%w (wait %q; lengthen it with --lab-waits %s=<duration>)", err, name, name)
	}
	return nil
}

package probe

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"rackdrill.dev/rackdrill/harness/matrix"
)

// Probe is one bounded observation of one path of the rack. It never asserts:
// it says what it saw, and the matrix judges.
type Probe interface {
	// Name is the matrix column: api, heal, lan, internet, apps, storage, data.
	Name() string
	Check(ctx context.Context) Result
}

// Paced is a probe that must not run at the sampler's rate (heal deletes and
// schedules pods: once every few seconds is what a cluster can take).
type Paced interface {
	Probe
	Interval() time.Duration
	Timeout() time.Duration
}

// Result is what one check saw. In a sampler's timeline At is when the answer
// came and Took how long the check ran, so that it began at At-Took (the
// matrix counts a failed check for its whole flight).
type Result struct {
	At     time.Time     `json:"at"`
	OK     bool          `json:"ok"`
	Took   time.Duration `json:"took"`
	Detail string        `json:"detail,omitempty"`
	Err    error         `json:"-"`
}

// Sample is the result as the matrix evaluates it.
func (r Result) Sample() matrix.Sample {
	s := matrix.Sample{At: r.At, OK: r.OK, Took: r.Took}
	if r.Err != nil {
		s.Err = r.Err.Error()
	}
	return s
}

// Timelines are every probe's results, by probe name, oldest first.
type Timelines map[string][]Result

// Samples converts the timelines for matrix evaluation.
func (t Timelines) Samples() map[string][]matrix.Sample {
	out := make(map[string][]matrix.Sample, len(t))
	for name, rs := range t {
		ss := make([]matrix.Sample, len(rs))
		for i, r := range rs {
			ss[i] = r.Sample()
		}
		out[name] = ss
	}
	return out
}

// GreenSince is the time since which every probe has been OK without a failure,
// and whether every probe has been sampled since then (the zero time if a probe
// is failing now or has no sample).
func (t Timelines) GreenSince(probes []string) time.Time {
	var since time.Time
	for _, name := range probes {
		rs := t[name]
		if len(rs) == 0 || !rs[len(rs)-1].OK {
			return time.Time{}
		}
		start := rs[0].At
		for i := len(rs) - 1; i >= 0; i-- {
			if !rs[i].OK {
				start = rs[i+1].At
				break
			}
		}
		if start.After(since) {
			since = start
		}
	}
	return since
}

// Sampler runs every probe concurrently at a fixed interval and records their
// timelines. Each probe has its own loop, so a slow probe delays only itself;
// a check that outlasts the interval is followed by the next at once. The loops
// are bounded in time and count.
type Sampler struct {
	probes     []Probe
	interval   time.Duration
	timeout    time.Duration
	maxRun     time.Duration
	maxSamples int
	log        logr.Logger

	mu        sync.Mutex
	timelines Timelines
}

// SamplerOption configures a Sampler.
type SamplerOption func(*Sampler)

// WithInterval sets the sampling interval (default 250ms).
func WithInterval(d time.Duration) SamplerOption { return func(s *Sampler) { s.interval = d } }

// WithTimeout bounds every check (default 2s).
func WithTimeout(d time.Duration) SamplerOption { return func(s *Sampler) { s.timeout = d } }

// WithLimits bounds a run: it stops after maxRun or after maxSamples samples of
// any one probe, whichever comes first (default 1h, 20000).
func WithLimits(maxRun time.Duration, maxSamples int) SamplerOption {
	return func(s *Sampler) { s.maxRun, s.maxSamples = maxRun, maxSamples }
}

// WithSamplerLogger sets the logger; the default discards.
func WithSamplerLogger(l logr.Logger) SamplerOption { return func(s *Sampler) { s.log = l } }

// NewSampler returns a sampler of probes.
func NewSampler(probes []Probe, opts ...SamplerOption) *Sampler {
	s := &Sampler{probes: probes, interval: 250 * time.Millisecond, timeout: 2 * time.Second,
		maxRun: time.Hour, maxSamples: 20000, log: logr.Discard(), timelines: Timelines{}}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Run samples until ctx ends or a limit is reached, then returns the timelines.
func (s *Sampler) Run(ctx context.Context) Timelines {
	ctx, cancel := context.WithTimeout(ctx, s.maxRun)
	defer cancel()
	var wg sync.WaitGroup
	for _, p := range s.probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.loop(ctx, p)
		}()
	}
	wg.Wait()
	return s.Snapshot()
}

// Start runs the sampler in the background; stop ends it and returns the
// timelines.
func (s *Sampler) Start(ctx context.Context) (stop func() Timelines) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan Timelines, 1)
	go func() { done <- s.Run(ctx) }()
	return func() Timelines {
		cancel()
		return <-done
	}
}

func (s *Sampler) loop(ctx context.Context, p Probe) {
	interval, timeout := s.interval, s.timeout
	if pp, ok := p.(Paced); ok {
		interval, timeout = pp.Interval(), pp.Timeout()
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for n := 0; n < s.maxSamples; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		r := s.check(ctx, p, timeout)
		if ctx.Err() != nil && !r.OK {
			return // the sampler was stopped mid-check: not an observation of the rack
		}
		// Stamped when the answer came, with the whole flight as Took: the
		// probe's own figure may leave out its set-up.
		r.At = time.Now()
		r.Took = r.At.Sub(start)
		s.mu.Lock()
		s.timelines[p.Name()] = append(s.timelines[p.Name()], r)
		s.mu.Unlock()
		if !r.OK {
			s.log.V(2).Info("probe failed", "probe", p.Name(), "err", r.Err, "took", r.Took)
		}
		t.Reset(max(0, interval-time.Since(start)))
	}
	s.log.Info("probe reached its sample limit", "probe", p.Name(), "limit", s.maxSamples)
}

// MaxGap is the longest time the named probe may go without a check in
// flight and still count as watched: its interval plus slack for a loaded
// machine's scheduling (two intervals, at least 2 s). A longer gap is a
// sampler stall, which the matrix judges as no evidence.
func (s *Sampler) MaxGap(name string) time.Duration {
	interval := s.interval
	for _, p := range s.probes {
		if pp, ok := p.(Paced); ok && p.Name() == name {
			interval = pp.Interval()
		}
	}
	return interval + max(2*interval, 2*time.Second)
}

// MaxGaps is MaxGap for every probe, by name.
func (s *Sampler) MaxGaps() map[string]time.Duration {
	out := make(map[string]time.Duration, len(s.probes))
	for _, p := range s.probes {
		out[p.Name()] = s.MaxGap(p.Name())
	}
	return out
}

// ownAccountWait is how long past its deadline a probe's own error is waited
// for before the sampler records "no answer".
const ownAccountWait = 100 * time.Millisecond

// check runs one bounded check; a probe that ignores its context is abandoned
// at the timeout and reported as failed.
func (s *Sampler) check(ctx context.Context, p Probe, timeout time.Duration) Result {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ch := make(chan Result, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				ch <- Result{Err: fmt.Errorf("probe %s panicked: %v", p.Name(), v)}
			}
		}()
		ch <- p.Check(ctx)
	}()
	select {
	case r := <-ch:
		return r
	case <-ctx.Done():
		// A probe that gives up at its deadline says why (a lookup, a
		// connect, an answer that never came): its own account is kept
		// when it comes at once.
		select {
		case r := <-ch:
			return r
		case <-time.After(ownAccountWait):
			return Result{Err: fmt.Errorf("probe %s: no answer within %s", p.Name(), timeout)}
		}
	}
}

// Snapshot copies the timelines recorded so far.
func (s *Sampler) Snapshot() Timelines {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(Timelines, len(s.timelines))
	for k, v := range s.timelines {
		out[k] = append([]Result(nil), v...)
	}
	return out
}

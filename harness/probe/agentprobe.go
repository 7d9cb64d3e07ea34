package probe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"rackdrill.dev/rackdrill/harness/probe/agent"
)

// Agents is the harness's side of the in-cluster agents: one address per node
// (NodeIP:NodePort with externalTrafficPolicy Local). A request goes to the node
// that answered last, then to the others in turn, so the loss of one node costs
// one failed connection, not the probe.
type Agents struct {
	endpoints []string
	client    *http.Client

	mu   sync.Mutex
	next int
}

// agentDialTimeout bounds the connection to one agent: on the rack's LAN a
// live node accepts in a millisecond, and a dead one never answers (no RST),
// so without it the first dead node would take the whole probe timeout.
const agentDialTimeout = 500 * time.Millisecond

// NewAgents returns a client of the agents at endpoints (host:port).
func NewAgents(endpoints []string) *Agents {
	dialer := &net.Dialer{Timeout: agentDialTimeout}
	return &Agents{endpoints: endpoints, client: &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true, DialContext: dialer.DialContext}}}
}

// call asks the agents until one answers; a Report from an agent is final (it
// reached the agent: the agent's verdict is the observation).
func (a *Agents) call(ctx context.Context, method, path string, body []byte) (agent.Report, error) {
	if len(a.endpoints) == 0 {
		return agent.Report{}, errors.New("no agent endpoints")
	}
	a.mu.Lock()
	first := a.next
	a.mu.Unlock()
	var errs []error
	for i := range a.endpoints {
		idx := (first + i) % len(a.endpoints)
		ep := a.endpoints[idx]
		req, err := http.NewRequestWithContext(ctx, method, "http://"+ep+path, bytes.NewReader(body))
		if err != nil {
			return agent.Report{}, err
		}
		resp, err := a.client.Do(req)
		if err != nil {
			errs = append(errs, err)
			// The next call starts past this node.
			a.mu.Lock()
			if a.next == idx {
				a.next = (idx + 1) % len(a.endpoints)
			}
			a.mu.Unlock()
			if ctx.Err() != nil {
				break
			}
			continue
		}
		var rep agent.Report
		derr := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&rep)
		resp.Body.Close()
		if derr != nil {
			errs = append(errs, fmt.Errorf("%s%s: status %d, not an agent report: %w", ep, path, resp.StatusCode, derr))
			continue
		}
		a.mu.Lock()
		a.next = idx
		a.mu.Unlock()
		return rep, nil
	}
	return agent.Report{}, fmt.Errorf("no agent answered: %w", errors.Join(errs...))
}

// agentAnswerMargin is the time an agent's answer is given to come back
// before the probe's deadline.
const agentAnswerMargin = 250 * time.Millisecond

// agentWithin is the time an agent's check may take (its ?within=): what is
// left of ctx's time less margin, so that the agent reports why a check
// failed before the probe gives up on it; at most limit (none when 0).
func agentWithin(ctx context.Context, margin, limit time.Duration) string {
	within := limit
	if dl, ok := ctx.Deadline(); ok {
		left := max(time.Until(dl)-margin, margin)
		if within == 0 || left < within {
			within = left
		}
	}
	if within <= 0 {
		return ""
	}
	return "?within=" + within.Round(time.Millisecond).String()
}

// agentCheck is a probe answered by an agent endpoint.
type agentCheck struct {
	name   string
	path   string
	agents *Agents
}

// NewApps is the apps probe: running apps keep serving pod-to-Service traffic.
func NewApps(a *Agents) Probe { return &agentCheck{name: "apps", path: agent.PathApps, agents: a} }

// NewStorage is the storage probe: an app writes and reads its NFS-backed data.
func NewStorage(a *Agents) Probe {
	return &agentCheck{name: "storage", path: agent.PathStorage, agents: a}
}

func (p *agentCheck) Name() string { return p.name }

func (p *agentCheck) Check(ctx context.Context) Result {
	start := time.Now()
	// An app that hangs (a dead pod still in the Service, a DNS server that
	// never answers) is reported by the agent with its cause, and is not
	// taken for the agent's own failure (which would send the next check to
	// another node).
	rep, err := p.agents.call(ctx, http.MethodGet, p.path+agentWithin(ctx, agentAnswerMargin, 0), nil)
	return reportResult(rep, err, time.Since(start))
}

func reportResult(rep agent.Report, err error, took time.Duration) Result {
	switch {
	case err != nil:
		return Result{Took: took, Err: err}
	case !rep.OK:
		return Result{Took: took, Err: errors.New(rep.Error)}
	default:
		return Result{OK: true, Took: took, Detail: rep.Detail}
	}
}

// Data is the data probe: records written before a fault read back intact after
// it. Write must be called (in the steady state) before the first Check. It
// reads every record at each check, so it is paced slower than the others.
type Data struct {
	agents   *Agents
	records  int
	interval time.Duration
	timeout  time.Duration

	mu      sync.Mutex
	written map[string]string
}

// NewData returns the data probe writing records records, verified at most
// every interval, each check bounded by timeout.
func NewData(a *Agents, records int, interval, timeout time.Duration) *Data {
	return &Data{agents: a, records: records, interval: interval, timeout: timeout}
}

var _ Paced = (*Data)(nil)

func (p *Data) Name() string            { return "data" }
func (p *Data) Interval() time.Duration { return p.interval }
func (p *Data) Timeout() time.Duration  { return p.timeout }

// Write stores fresh records and remembers their checksums.
func (p *Data) Write(ctx context.Context) error {
	rep, err := p.agents.call(ctx, http.MethodPost, fmt.Sprintf("%s?records=%d", agent.PathWrite, p.records), nil)
	if err != nil {
		return fmt.Errorf("write data records: %w", err)
	}
	if !rep.OK || len(rep.Records) != p.records {
		return fmt.Errorf("write data records: %s (got %d of %d)", rep.Error, len(rep.Records), p.records)
	}
	p.mu.Lock()
	p.written = rep.Records
	p.mu.Unlock()
	return nil
}

// Check verifies every record written by Write.
func (p *Data) Check(ctx context.Context) Result {
	p.mu.Lock()
	written := p.written
	p.mu.Unlock()
	if len(written) == 0 {
		return Result{Err: errors.New("no records were written before the fault")}
	}
	body, _ := json.Marshal(written)
	start := time.Now()
	rep, err := p.agents.call(ctx, http.MethodPost, agent.PathVerify, body)
	return reportResult(rep, err, time.Since(start))
}

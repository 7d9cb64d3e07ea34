package probe

import (
	"context"
	"net/http"
	"time"

	"rackdrill.dev/rackdrill/harness/probe/agent"
)

// Heal checks that the control loops act, from inside the cluster: a node's
// agent deletes a pod of the heal Deployment and times until a replacement
// is Ready (agent.Heal), through the kubernetes Service, not the VIP. The
// harness reaches the agents at NodeIP:NodePort: a fault that takes the
// harness's path to the API away (cp-lb-lost) leaves the heal cell saying
// whether the cluster still heals, not repeating the api cell.
type Heal struct {
	agents   *Agents
	interval time.Duration
	timeout  time.Duration
}

var _ Paced = (*Heal)(nil)

// NewHeal returns the heal probe, asked of the agents. Each check may take
// up to timeout; checks start at most every interval.
func NewHeal(a *Agents, interval, timeout time.Duration) *Heal {
	return &Heal{agents: a, interval: interval, timeout: timeout}
}

func (h *Heal) Name() string            { return "heal" }
func (h *Heal) Interval() time.Duration { return h.interval }
func (h *Heal) Timeout() time.Duration  { return h.timeout }

// Check implements Probe.
func (h *Heal) Check(ctx context.Context) Result {
	start := time.Now()
	// The agent reports why a heal did not happen before the probe gives up
	// on it.
	rep, err := h.agents.call(ctx, http.MethodGet, agent.PathHeal+agentWithin(ctx, time.Second, h.timeout-2*time.Second), nil)
	return reportResult(rep, err, time.Since(start))
}

package upgrade

import (
	"time"

	"rackdrill.dev/rackdrill/harness/matrix"
	"rackdrill.dev/rackdrill/harness/runrecord"
)

// Outage is the longest a probe failed while one machine was upgraded.
type Outage struct {
	Machine string `json:"machine"`
	// From and To bound the machine's steps: its first step's start to its
	// last step's end.
	From    time.Time     `json:"from"`
	To      time.Time     `json:"to"`
	Longest time.Duration `json:"longest"`
}

// Outages are, per machine in the order it was upgraded, the longest outage
// of a probe's timeline during that machine's steps, as the cell's verdict
// measures one (matrix.LongestOutage: from the sending of the first failed
// request to the sending of the next good one, or the machine's last step's
// end). The rehearsal reports the API's, one figure per machine.
func Outages(steps []runrecord.Step, samples []runrecord.Sample) []Outage {
	var out []Outage
	idx := map[string]int{}
	for _, s := range steps {
		if s.Machine == "" {
			continue
		}
		i, ok := idx[s.Machine]
		if !ok {
			idx[s.Machine] = len(out)
			out = append(out, Outage{Machine: s.Machine, From: s.Start, To: s.End})
			continue
		}
		if s.End.After(out[i].To) {
			out[i].To = s.End
		}
	}
	ms := make([]matrix.Sample, len(samples))
	for i, sm := range samples {
		ms[i] = matrix.Sample{At: sm.At, OK: sm.OK, Took: sm.Took}
	}
	for i := range out {
		if from, to, ok := matrix.LongestOutage(ms, out[i].From, out[i].To); ok {
			out[i].Longest = to.Sub(from)
		}
	}
	return out
}

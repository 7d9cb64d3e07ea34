package upgrade

import (
	"time"

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

// Outages are, per machine in the order it was upgraded, the longest run of
// failed samples of a probe's timeline during that machine's steps: from the
// first failed sample to the next good one (or the machine's last step's
// end). The rehearsal reports the API's, one figure per server.
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
	for i := range out {
		o := &out[i]
		var downSince time.Time
		for _, sm := range samples {
			if sm.At.Before(o.From) {
				continue
			}
			if sm.At.After(o.To) {
				break
			}
			switch {
			case !sm.OK && downSince.IsZero():
				downSince = sm.At
			case sm.OK && !downSince.IsZero():
				o.Longest = max(o.Longest, sm.At.Sub(downSince))
				downSince = time.Time{}
			}
		}
		if !downSince.IsZero() {
			o.Longest = max(o.Longest, o.To.Sub(downSince))
		}
	}
	return out
}

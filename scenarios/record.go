package scenarios

import (
	"encoding/json"
	"fmt"

	"rackdrill.dev/rackdrill/harness/runrecord"
)

// Record is the drill as run.json records it.
func (o *Outcome) Record() (runrecord.Drill, error) {
	d := runrecord.Drill{Result: o.Result, SteadyAt: o.SteadyAt, Checks: o.Checks, Effect: o.Effect,
		Dump: o.Dump, Error: o.Error, RevertError: o.RevertError, Steps: o.Steps, Timelines: map[string][]runrecord.Sample{}}
	for name, tl := range o.Timelines {
		samples := make([]runrecord.Sample, len(tl))
		for i, s := range tl {
			samples[i] = runrecord.Sample{At: s.At, OK: s.OK, Took: s.Took, Detail: s.Detail}
			if s.Err != nil {
				samples[i].Error = s.Err.Error()
			}
		}
		d.Timelines[name] = samples
	}
	if o.Details != nil {
		raw, err := json.Marshal(o.Details)
		if err != nil {
			return d, fmt.Errorf("drill %s: its details: %w", o.Result.Fault, err)
		}
		d.Details = raw
	}
	return d, nil
}

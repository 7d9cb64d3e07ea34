package scenarios_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"rackdrill.dev/rackdrill/harness/fault"
	"rackdrill.dev/rackdrill/harness/matrix"
	"rackdrill.dev/rackdrill/harness/probe"
	"rackdrill.dev/rackdrill/harness/runrecord"
	"rackdrill.dev/rackdrill/scenarios"
)

// Everything a drill observed reaches run.json: a field of the record left
// empty by Record would be a promise the reports never show.
func TestRecordKeepsEveryField(t *testing.T) {
	now := time.Now()
	o := scenarios.Outcome{
		Result:      matrix.RowResult{Fault: "server-kill-1", Verdict: matrix.Broken},
		Timelines:   probe.Timelines{"api": {{At: now, OK: false, Took: time.Second, Detail: "refused", Err: errors.New("list nodes: context deadline exceeded")}}},
		SteadyAt:    now,
		Checks:      []scenarios.Check{{Name: "residue", OK: true}},
		Details:     []fault.HaltRecord{{Node: "server-1", Stage: 1, Down: now}},
		Effect:      &fault.EffectResult{What: "server-1 off", Within: 15 * time.Second, Seen: true},
		Dump:        "dumps/server-kill-1",
		Error:       "interrupted",
		RevertError: "docker start: refused",
		Steps:       []runrecord.Step{{Name: "kubeadm upgrade apply", Machine: "server-1", Start: now, End: now.Add(time.Minute)}},
	}
	d, err := o.Record()
	if err != nil {
		t.Fatal(err)
	}
	v := reflect.ValueOf(d)
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Errorf("run.json's drill field %s is empty", v.Type().Field(i).Name)
		}
	}
	// A failed sample says why in run.json: the first rehearsal's 75 s of
	// API "outage" could not be explained from its record.
	if s := d.Timelines["api"][0]; s.Detail != "refused" || s.Took != time.Second || !s.At.Equal(now) ||
		s.Error != "list nodes: context deadline exceeded" {
		t.Errorf("sample recorded as %+v", s)
	}
	if len(d.Steps) != 1 || d.Steps[0].Machine != "server-1" {
		t.Errorf("steps recorded as %+v", d.Steps)
	}
}

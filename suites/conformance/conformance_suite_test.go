// Package conformance is the conformance suite: the rack is the one its
// architecture document describes. Every check is read-only and names the
// topology field it checks.
package conformance

import (
	"testing"

	"rackdrill.dev/rackdrill/suites/framework"
)

var env *framework.Env

func TestConformance(t *testing.T) { framework.RunSuite(t, "conformance", &env) }

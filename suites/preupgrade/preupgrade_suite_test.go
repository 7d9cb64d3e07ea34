// Package preupgrade is what must hold before an upgrade of a real rack.
package preupgrade

import (
	"testing"

	"rackdrill.dev/rackdrill/suites/framework"
)

var env *framework.Env

func TestPreupgrade(t *testing.T) { framework.RunSuite(t, "preupgrade", &env) }

// Package preupgrade is what must hold before an upgrade of a real rack.
package preupgrade

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"rackdrill.dev/rackdrill/suites/framework"
)

var env *framework.Env

func TestPreupgrade(t *testing.T) {
	RegisterFailHandler(Fail)
	var err error
	if env, err = framework.Load(GinkgoLogr); err != nil {
		t.Fatalf("preupgrade suite: %v", err)
	}
	suite, reporter := GinkgoConfiguration()
	RunSpecs(t, "rackdrill preupgrade", suite, env.ReporterConfig("preupgrade", reporter))
}

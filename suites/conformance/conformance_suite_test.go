// Package conformance is the conformance suite: the rack is the one its
// architecture document describes. Every check is read-only and names the
// topology field it checks.
package conformance

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"rackdrill.dev/rackdrill/suites/framework"
)

var env *framework.Env

func TestConformance(t *testing.T) {
	RegisterFailHandler(Fail)
	var err error
	if env, err = framework.Load(GinkgoLogr); err != nil {
		t.Fatalf("conformance suite: %v", err)
	}
	suite, reporter := GinkgoConfiguration()
	RunSpecs(t, "rackdrill conformance", suite, env.ReporterConfig("conformance", reporter))
}

package preupgrade

import (
	"testing"

	"github.com/onsi/ginkgo/v2"

	"rackdrill.dev/rackdrill/suites/framework"
)

// The ginkgo CLI passes its flags (--dry-run, --label-filter) only to packages
// whose tests import ginkgo; without this it would run every spec.
var _ = ginkgo.GinkgoT

func TestPreupgrade(t *testing.T) { framework.RunSuite(t, "preupgrade") }

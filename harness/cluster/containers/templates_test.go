package containers

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// The lab's files rendered from templates are what the machines read: the CNI
// config and the CoreDNS patch must be JSON, the routes script one route per
// other node and the masquerade rule for this node's pods.
func TestPodNetworkTemplates(t *testing.T) {
	type route struct{ CIDR, Via string }
	data := struct {
		PodCIDR, PodSubnet string
		Routes             []route
	}{"10.244.1.0/24", "10.244.0.0/16", []route{{"10.244.0.0/24", "172.30.0.11"}, {"10.244.2.0/24", "172.30.0.13"}}}
	conf, err := tmpl.Render("cni.conflist", data)
	if err != nil {
		t.Fatal(err)
	}
	var cni struct {
		Plugins []struct {
			Type string
			IPAM struct {
				Ranges [][]struct{ Subnet string }
			}
		}
	}
	if err := json.Unmarshal([]byte(conf), &cni); err != nil {
		t.Fatalf("cni.conflist is not JSON: %v\n%s", err, conf)
	}
	if len(cni.Plugins) != 2 || cni.Plugins[0].Type != "ptp" || cni.Plugins[0].IPAM.Ranges[0][0].Subnet != data.PodCIDR {
		t.Errorf("cni.conflist: %+v", cni)
	}
	script, err := tmpl.Render("routes.sh", data)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"\nip route replace 10.244.0.0/24 via 172.30.0.11\n",
		"\nip route replace 10.244.2.0/24 via 172.30.0.13\n",
		"-A POSTROUTING -s 10.244.1.0/24 ! -d 10.244.0.0/16 -j MASQUERADE",
	} {
		if !strings.Contains(script, want) {
			t.Errorf("routes.sh lacks %q:\n%s", want, script)
		}
	}
	for _, spread := range []bool{true, false} {
		patch, err := tmpl.Render("coredns-spread.json", map[string]any{"Spread": spread})
		if err != nil {
			t.Fatal(err)
		}
		if !json.Valid([]byte(patch)) {
			t.Errorf("coredns-spread.json is not JSON:\n%s", patch)
		}
		if strings.Contains(patch, "podAntiAffinity") != spread {
			t.Errorf("coredns-spread.json with Spread=%v:\n%s", spread, patch)
		}
	}
}

// A slow machine lengthens the lab's waits by name or all at once; a wrong
// name or value is refused with what is known.
func TestParseIntervals(t *testing.T) {
	iv, err := ParseIntervals("all=2x, nodes-ready=7m")
	if err != nil {
		t.Fatal(err)
	}
	if iv[IntervalNodesReady] != 7*time.Minute || iv[IntervalBoot] != 2*DefaultIntervals()[IntervalBoot] {
		t.Errorf("got %v", iv)
	}
	for in, want := range map[string]string{
		"node-ready=5m": `no wait named "node-ready" (known: add-on, boot,`,
		"boot=-1m":      "want a positive duration",
		"all=2":         "want a factor such as 2x",
		"boot":          "is not name=duration",
	} {
		if _, err := ParseIntervals(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseIntervals(%q): %v, want %q", in, err, want)
		}
	}
}

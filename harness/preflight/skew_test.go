package preflight

import (
	"strings"
	"testing"
)

func TestParseMinor(t *testing.T) {
	for in, want := range map[string]Minor{"v1.34.x": {1, 34}, "v1.34": {1, 34}, "1.33.13": {1, 33}, "v1.33.4+k3s1": {1, 33}, "v1.33.13-rc.0": {1, 33}} {
		got, err := ParseMinor(in)
		if err != nil || got != want {
			t.Errorf("ParseMinor(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "latest", "v1", "1.x.2", "v1.34.2.1"} {
		if _, err := ParseMinor(bad); err == nil {
			t.Errorf("ParseMinor(%q): want an error", bad)
		}
	}
}

func TestCheckSkew(t *testing.T) {
	healthy := func() Versions {
		return Versions{
			APIServer:         map[string]string{"s1": "v1.33.13", "s2": "v1.33.13"},
			ControllerManager: map[string]string{"s1": "v1.33.13"},
			Scheduler:         map[string]string{"s1": "v1.33.13"},
			Kubelet:           map[string]string{"s1": "v1.33.13", "w1": "v1.32.4"},
			KubeProxy:         map[string]string{"s1": "v1.33.13"},
		}
	}
	cases := []struct {
		name   string
		edit   func(*Versions)
		target Minor
		want   []string // substrings of the problems, in order; none for a pass
	}{
		{"next minor", nil, Minor{1, 34}, nil},
		{"patch of the same minor", nil, Minor{1, 33}, nil},
		{"skips a minor", nil, Minor{1, 35}, []string{"target v1.35 skips a minor: kube-apiserver v1.33 must go to v1.34 first"}},
		{"downgrade", nil, Minor{1, 32}, []string{"downgrades are not supported"}},
		{"kubelet newer than the API server", func(v *Versions) { v.Kubelet["w2"] = "v1.34.1" }, Minor{1, 34},
			[]string{"kubelet on w2 is v1.34, newer than kube-apiserver v1.33"}},
		{"kubelet too old for the target", func(v *Versions) { v.Kubelet["w2"] = "v1.30.9" }, Minor{1, 34},
			[]string{"kubelet on w2 is v1.30, more than three minors older than the target v1.34"}},
		{"controller-manager too old", func(v *Versions) { v.ControllerManager["s2"] = "v1.31.0" }, Minor{1, 34},
			[]string{"kube-controller-manager on s2 is v1.31, more than one minor older"}},
		{"API servers apart", func(v *Versions) { v.APIServer["s3"] = "v1.31.0" }, Minor{1, 32},
			// In an HA control plane the oldest API server is the bound.
			[]string{"kube-apiserver instances are v1.31 to v1.33", "kube-proxy on s1 is v1.33, newer than kube-apiserver v1.31",
				"kubelet on s1 is v1.33, newer", "kubelet on w1 is v1.32, newer", "downgrades"}},
		{"unreadable", func(v *Versions) { v.KubeProxy["w1"] = "latest" }, Minor{1, 34}, []string{`kube-proxy on w1: unreadable version "latest"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := healthy()
			if c.edit != nil {
				c.edit(&v)
			}
			got := CheckSkew(v, c.target)
			if len(got) != len(c.want) {
				t.Fatalf("got %d problems %q, want %d like %q", len(got), got, len(c.want), c.want)
			}
			for i, w := range c.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("problem %d = %q, want it to say %q", i, got[i], w)
				}
			}
		})
	}
}

func TestParseLabels(t *testing.T) {
	got := parseLabels(`group="flowcontrol.apiserver.k8s.io",removed_release="1.32",resource="flowschemas",subresource="",version="v1beta3"`)
	if got["group"] != "flowcontrol.apiserver.k8s.io" || got["removed_release"] != "1.32" || got["version"] != "v1beta3" {
		t.Fatalf("parseLabels = %v", got)
	}
}

package conform

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"rackdrill.dev/rackdrill/harness/cluster"
	"rackdrill.dev/rackdrill/harness/exec"
	"rackdrill.dev/rackdrill/harness/probe"
	"rackdrill.dev/rackdrill/harness/topology"
)

var ipAddressPools = schema.GroupVersionResource{Group: "metallb.io", Version: "v1beta1", Resource: "ipaddresspools"}

// sample takes one sample of the named probe.
func sample(ctx context.Context, t *Target, name string) probe.Result {
	p, ok := t.Probes[name]
	if !ok {
		return probe.Result{Err: fmt.Errorf("no %s probe on this rack", name)}
	}
	return p.Check(ctx)
}

func metallbChecks() []Check {
	return []Check{{
		Name: "MetalLB's address pool is the documented one", Family: "metallb", Field: "spec.metallb.pool",
		Skip: func(t *Target) string {
			if t.Rack.Spec.MetalLB == nil {
				return "the topology has no MetalLB (spec.metallb)"
			}
			return ""
		},
		Run: func(ctx context.Context, t *Target) (string, error) {
			m := t.Rack.Spec.MetalLB
			want, err := topology.ParseRange(m.Pool)
			if err != nil {
				return "", fieldError("spec.metallb.pool", "%v", err)
			}
			list, err := t.Dynamic.Resource(ipAddressPools).Namespace(m.Namespace).List(ctx, metav1.ListOptions{})
			if err != nil {
				return "", fieldError("spec.metallb.namespace", "list IPAddressPools in %s: %v", m.Namespace, err)
			}
			var seen []string
			for _, pool := range list.Items {
				addrs, _, _ := unstructured.NestedStringSlice(pool.Object, "spec", "addresses")
				for _, a := range addrs {
					seen = append(seen, pool.GetName()+": "+a)
					if got, err := topology.ParseRange(a); err == nil && got == want {
						return fmt.Sprintf("IPAddressPool %s/%s holds %s", m.Namespace, pool.GetName(), a), nil
					}
				}
			}
			if len(seen) == 0 {
				return "", fieldError("spec.metallb.pool", "documented %s, but namespace %s has no IPAddressPool", m.Pool, m.Namespace)
			}
			return "", fieldError("spec.metallb.pool", "documented %s, MetalLB's pools hold %s", m.Pool, strings.Join(seen, "; "))
		},
	}, {
		Name: "the ingress Service (or the VIP, when the ingress IP is the VIP) holds the documented ingress IP, and the ingress answers on it from the LAN", Family: "metallb", Field: "spec.ingress.ip",
		Skip: func(t *Target) string {
			if t.Rack.Spec.Ingress == nil {
				return "the topology has no ingress (spec.ingress)"
			}
			return ""
		},
		Run: func(ctx context.Context, t *Target) (string, error) {
			in := t.Rack.Spec.Ingress
			if t.Rack.IngressOnVIP() {
				// Seed 000: 80/443 go to the VIP, and the ingress answers on
				// the host network of whichever node holds it. No Service
				// holds the address; the keepalived check says who does.
				if r := sample(ctx, t, "lan"); !r.OK {
					return "", fieldError("spec.ingress.ip", "%s is the API's VIP, but the ingress does not answer there from the LAN: %v", in.IP, r.Err)
				}
				return fmt.Sprintf("%s is the API's VIP; the demo app answers there through the ingress", in.IP), nil
			}
			svc, err := t.Kube.CoreV1().Services(in.Namespace).Get(ctx, in.Service, metav1.GetOptions{})
			if err != nil {
				return "", fieldError("spec.ingress.service", "the ingress Service %s/%s: %v", in.Namespace, in.Service, err)
			}
			var got []string
			for _, lb := range svc.Status.LoadBalancer.Ingress {
				got = append(got, lb.IP)
			}
			if len(got) == 0 || got[0] != in.IP {
				return "", fieldError("spec.ingress.ip", "documented %s, the Service %s/%s holds %q", in.IP, in.Namespace, in.Service, strings.Join(got, ", "))
			}
			if m := t.Rack.Spec.MetalLB; m != nil {
				if r, err := topology.ParseRange(m.Pool); err == nil && !r.Contains(netip.MustParseAddr(in.IP)) {
					return "", fieldError("spec.ingress.ip", "%s is outside MetalLB's pool %s", in.IP, m.Pool)
				}
			}
			if r := sample(ctx, t, "lan"); !r.OK {
				return "", fieldError("spec.ingress.ip", "the Service holds %s, but the ingress does not answer there from the LAN: %v", in.IP, r.Err)
			}
			return fmt.Sprintf("Service %s/%s holds %s; the demo app answers there", in.Namespace, in.Service, in.IP), nil
		},
	}}
}

func tunnelChecks() []Check {
	noTunnel := func(t *Target) string {
		if t.Rack.Spec.Tunnel == nil {
			return "the topology has no tunnel (spec.tunnel)"
		}
		return ""
	}
	return []Check{{
		Name: "the tunnel answers from the Internet vantage point", Family: "tunnel", Field: "spec.tunnel.ports",
		Skip: noTunnel,
		Run: func(ctx context.Context, t *Target) (string, error) {
			tn := t.Rack.Spec.Tunnel
			addr := net.JoinHostPort(tn.Server.PublicAddress, strconv.Itoa(tn.Ports[0].Public))
			if r := sample(ctx, t, "internet"); !r.OK {
				return "", fieldError("spec.tunnel.ports[0]", "%s does not serve the demo app from the Internet side: %v", addr, r.Err)
			}
			return addr + " serves the demo app", nil
		},
	}, {
		Name: "the Internet vantage point cannot reach the LAN", Family: "tunnel", Field: "spec.networks[purpose=admin]",
		Skip: func(t *Target) string {
			if why := noTunnel(t); why != "" {
				return why
			}
			if t.Internet == nil {
				return "this provider has no Internet vantage point to try from"
			}
			return ""
		},
		Run: func(ctx context.Context, t *Target) (string, error) {
			// The LAN's doors a VPS must never open: the API, the ingress, a server's ssh.
			targets := []string{net.JoinHostPort(t.Rack.Spec.ControlPlane.Endpoint.Host, strconv.Itoa(t.Rack.Spec.ControlPlane.Endpoint.Port))}
			if in := t.Rack.Spec.Ingress; in != nil {
				targets = append(targets, net.JoinHostPort(in.IP, "80"))
			}
			if s := t.Rack.NodesWithRole(topology.RoleServer); len(s) > 0 {
				targets = append(targets, net.JoinHostPort(s[0].Address, "22"))
			}
			var p problems
			for _, addr := range targets {
				dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				conn, err := t.Internet(dctx, "tcp", addr)
				cancel()
				if err == nil {
					conn.Close()
					p.add("spec.networks[purpose=admin]", "the Internet vantage point opened a connection to %s on the LAN", addr)
				}
			}
			return "refused or unreachable from the Internet side: " + strings.Join(targets, ", "), p.err()
		},
	}}
}

func storageChecks() []Check {
	noStorage := func(t *Target) string {
		if t.Rack.Spec.Storage == nil || len(t.Rack.Spec.Storage.StorageClasses) == 0 {
			return "the topology documents no StorageClass (spec.storage.storageClasses)"
		}
		return ""
	}
	return []Check{{
		Name: "every documented StorageClass exists with its provisioner, server and share", Family: "storage", Field: "spec.storage.storageClasses",
		Skip: func(t *Target) string {
			if why := noStorage(t); why != "" {
				return why
			}
			if t.Provider == topology.ProviderContainers || t.Rack.Metadata.Annotations[topology.AnnotationLab] == "true" {
				// The lab machine's kernel has no NFS client, so the
				// lab runs no NFS provisioner and has no StorageClass; its
				// volumes are the agents' user-space NFS client, which the
				// round-trip check below exercises.
				return "the lab's pods cannot mount NFS, so it has no StorageClass; its NFS export is checked by the stateful app's round-trip"
			}
			return ""
		},
		Run: func(ctx context.Context, t *Target) (string, error) {
			var p problems
			var ok []string
			for i, want := range t.Rack.Spec.Storage.StorageClasses {
				f := fmt.Sprintf("spec.storage.storageClasses[%d]", i)
				sc, err := t.Kube.StorageV1().StorageClasses().Get(ctx, want.Name, metav1.GetOptions{})
				if err != nil {
					p.add(f+".name", "StorageClass %s: %v", want.Name, err)
					continue
				}
				if sc.Provisioner != want.Provisioner {
					p.add(f+".provisioner", "documented %s, StorageClass %s has %s", want.Provisioner, want.Name, sc.Provisioner)
				}
				if want.Server != "" && sc.Parameters["server"] != want.Server {
					p.add(f+".server", "documented %s, StorageClass %s has server %q", want.Server, want.Name, sc.Parameters["server"])
				}
				if want.Share != "" && sc.Parameters["share"] != want.Share && sc.Parameters["path"] != want.Share {
					p.add(f+".share", "documented %s, StorageClass %s has share %q", want.Share, want.Name, sc.Parameters["share"])
				}
				if want.ReclaimPolicy != "" && (sc.ReclaimPolicy == nil || string(*sc.ReclaimPolicy) != want.ReclaimPolicy) {
					got := "unset"
					if sc.ReclaimPolicy != nil {
						got = string(*sc.ReclaimPolicy)
					}
					p.add(f+".reclaimPolicy", "documented %s, StorageClass %s has %s", want.ReclaimPolicy, want.Name, got)
				}
				def := sc.Annotations["storageclass.kubernetes.io/is-default-class"] == "true"
				if want.Default != def {
					p.add(f+".default", "documented default=%t, StorageClass %s is default=%t", want.Default, want.Name, def)
				}
				ok = append(ok, want.Name)
			}
			return "found: " + strings.Join(ok, ", "), p.err()
		},
	}, {
		// The agents write through the documented StorageClass's PVC on a
		// rack that has one (a PVC that binds, pods that write and read
		// it); on the lab, straight to the NFS export from user space.
		Name: "the NFS export answers and the stateful app writes and reads back its records", Family: "storage", Field: "spec.storage.nfs",
		Skip: func(t *Target) string {
			if why := noStorage(t); why != "" {
				return why
			}
			if t.Data == nil {
				return "no data probe on this rack"
			}
			return ""
		},
		Run: func(ctx context.Context, t *Target) (string, error) {
			st := t.Rack.Spec.Storage
			where := "the rack's NFS"
			if st.NFS != nil {
				where = fmt.Sprintf("%s (%s on network %s):%s", st.NFS.Node, t.Rack.NFSAddress(), st.NFS.Network, strings.Join(st.NFS.Exports, ","))
			}
			if r := sample(ctx, t, "storage"); !r.OK {
				return "", fieldError("spec.storage.nfs", "%s does not answer the storage probe: %v", where, r.Err)
			}
			if err := t.Data.Write(ctx); err != nil {
				return "", fieldError("spec.storage.nfs", "the stateful app cannot write to %s: %v", where, err)
			}
			if r := t.Data.Check(ctx); !r.OK {
				return "", fieldError("spec.storage.nfs", "the stateful app's records on %s do not read back intact: %v", where, r.Err)
			}
			return "records written and read back intact on " + where, nil
		},
	}}
}

func upsChecks() []Check {
	return []Check{{
		Name: "the UPS answers (NUT, or spec.ups.commands), is online with enough charge, and the rack's shutdown command exists", Family: "ups", Field: "spec.ups",
		Skip: func(t *Target) string {
			if t.Rack.Spec.UPS == nil {
				return "the topology has no UPS (spec.ups)"
			}
			return ""
		},
		Run: func(ctx context.Context, t *Target) (string, error) {
			u := t.Rack.Spec.UPS
			n := t.node(u.Node)
			if n == nil {
				return "", fieldError("spec.ups.node", "%s is not a machine of the rack", u.Node)
			}
			var out []byte
			var err error
			if u.NUT() {
				out, err = exec.Output(n.Command(ctx, "upsc", u.Name+"@localhost"))
				if err != nil {
					return "", fieldError("spec.ups.name", "the NUT server on %s does not answer for UPS %s: %v", u.Node, u.Name, err)
				}
			} else {
				out, err = exec.Output(n.Command(ctx, "sh", "-c", u.Commands.Status))
				if err != nil {
					return "", fieldError("spec.ups.commands.status", "on %s, %q: %v", u.Node, u.Commands.Status, err)
				}
			}
			vars := map[string]string{}
			for _, line := range strings.Split(string(out), "\n") {
				if k, v, ok := strings.Cut(line, ":"); ok {
					vars[strings.TrimSpace(k)] = strings.TrimSpace(v)
				}
			}
			statusField := "spec.ups"
			if !u.NUT() {
				statusField = "spec.ups.commands.status"
				if _, ok := vars["ups.status"]; !ok {
					return "", fieldError(statusField, "on %s, %q printed no \"ups.status: ...\" line (upsc's format, one \"variable: value\" per line): %q",
						u.Node, u.Commands.Status, strings.TrimSpace(string(out)))
				}
			}
			var p problems
			status := strings.Fields(vars["ups.status"])
			if !slices.Contains(status, "OL") || slices.Contains(status, "OB") || slices.Contains(status, "LB") {
				p.add(statusField, "UPS %s on %s reports status %q: not online (OL)", u.Name, u.Node, vars["ups.status"])
			}
			charge, err := strconv.ParseFloat(vars["battery.charge"], 64)
			switch {
			case err != nil:
				p.add("spec.ups.minCharge", "UPS %s reports no battery.charge", u.Name)
			case charge < float64(u.MinCharge):
				p.add("spec.ups.minCharge", "UPS %s's battery is at %.0f%%, under the documented %d%%", u.Name, charge, u.MinCharge)
			}
			var cmd string
			if u.NUT() {
				cmd, err = shutdownCommand(ctx, t, u.Node)
				if err != nil {
					p.add("spec.ups.node", "%v", err)
				}
			} else {
				cmd = u.Commands.ForcedShutdown
				if err := executable(ctx, n, cmd); err != nil {
					p.add("spec.ups.commands.forcedShutdown", "%q: %v", cmd, err)
				}
			}
			return fmt.Sprintf("status %s, charge %s%%, shutdown command %s", vars["ups.status"], vars["battery.charge"], cmd), p.err()
		},
	}}
}

// executable checks that the program of command line cmd is an executable
// on machine n (found on its PATH, or at its path).
func executable(ctx context.Context, n cluster.Node, cmd string) error {
	prog := strings.Fields(cmd)
	if len(prog) == 0 {
		return fmt.Errorf("empty")
	}
	if err := exec.Run(n.Command(ctx, "sh", "-c", `p=$(command -v "$1") && test -x "$p"`, "sh", prog[0])); err != nil {
		return fmt.Errorf("%s is not an executable on %s", prog[0], n.Name())
	}
	return nil
}

// shutdownCommand reads upsmon's SHUTDOWNCMD on the master and checks that
// its program exists and is executable there.
func shutdownCommand(ctx context.Context, t *Target, node string) (string, error) {
	n := t.node(node)
	out, err := exec.Output(n.Command(ctx, "sh", "-c", "cat /etc/nut/upsmon.conf /etc/ups/upsmon.conf 2>/dev/null"))
	if err != nil && len(out) == 0 {
		return "", fmt.Errorf("upsmon.conf on %s: %w", node, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, "SHUTDOWNCMD"); ok {
			cmd := strings.Trim(strings.TrimSpace(rest), `"`)
			if strings.TrimSpace(cmd) == "" {
				return "", fmt.Errorf("upsmon.conf on %s has an empty SHUTDOWNCMD", node)
			}
			if err := executable(ctx, n, cmd); err != nil {
				return cmd, fmt.Errorf("upsmon's SHUTDOWNCMD %q: %w", cmd, err)
			}
			return cmd, nil
		}
	}
	return "", fmt.Errorf("upsmon.conf on %s has no SHUTDOWNCMD: on low battery nothing would shut the rack down", node)
}

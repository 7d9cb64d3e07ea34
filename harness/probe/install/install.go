package install

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"rackdrill.dev/rackdrill/harness/cluster"
	"rackdrill.dev/rackdrill/harness/exec"
	"rackdrill.dev/rackdrill/harness/lab"
	"rackdrill.dev/rackdrill/harness/poll"
	"rackdrill.dev/rackdrill/harness/probe"
	"rackdrill.dev/rackdrill/harness/rackclient"
	"rackdrill.dev/rackdrill/harness/rackstate"
	"rackdrill.dev/rackdrill/harness/topology"
)

// ReadyTimeout bounds the wait for the installed workloads to be ready.
const ReadyTimeout = 5 * time.Minute

// Rack is what install and remove act on: the rack, its machines over SSH and
// its API.
type Rack struct {
	Rack   *topology.Rack
	Nodes  []cluster.Node
	Client *rackclient.Client
	// Builder builds the agent image (default: this repository's).
	Builder *lab.Builder
	// Out receives one line per step.
	Out io.Writer
}

// Config is the probe workloads' configuration on rack r with image: the
// documented StorageClass backs the probe volume, except on rackdrill's own
// lab adopted over SSH, whose pods cannot mount NFS (the agents speak it
// from user space, as when the lab deploys them).
func Config(r *topology.Rack, image string) probe.WorkloadConfig {
	wc := probe.WorkloadConfig{Namespace: r.Spec.Probes.Namespace, Image: image, IngressHost: r.Spec.Probes.Host}
	if in := r.Spec.Ingress; in != nil {
		wc.IngressClass = IngressClass(in.Controller)
	}
	st := r.Spec.Storage
	if st == nil {
		return wc
	}
	if r.Metadata.Annotations[topology.AnnotationLab] == "true" && st.NFS != nil && len(st.NFS.Exports) > 0 {
		if n := r.Node(st.NFS.Node); n != nil {
			wc.NFSServer, wc.NFSExport = r.NFSAddress(), st.NFS.Exports[0]
		}
		return wc
	}
	if sc := StorageClass(r); sc != "" {
		wc.StorageClass = sc
	}
	return wc
}

// StorageClass is the class the probe volume uses: the documented default
// class, else the first one documented.
func StorageClass(r *topology.Rack) string {
	if r.Spec.Storage == nil || len(r.Spec.Storage.StorageClasses) == 0 {
		return ""
	}
	for _, sc := range r.Spec.Storage.StorageClasses {
		if sc.Default {
			return sc.Name
		}
	}
	return r.Spec.Storage.StorageClasses[0].Name
}

// IngressClass is the IngressClass name of an ingress controller as the
// topology names it.
func IngressClass(controller string) string {
	if controller == "ingress-nginx" {
		return "nginx"
	}
	return controller
}

// kubeNodes are the machines that run a kubelet: where the agent image goes.
func kubeNodes(nodes []cluster.Node) []cluster.Node {
	var out []cluster.Node
	for _, n := range nodes {
		if slices.Contains(n.Roles(), topology.RoleServer) || slices.Contains(n.Roles(), topology.RoleWorker) {
			out = append(out, n)
		}
	}
	return out
}

// ctr is the containerd client of the rack's distribution, in the namespace
// the kubelet's images live in.
func ctr(r *topology.Rack) string {
	if r.Spec.Kubernetes.Distribution == topology.DistributionK3s {
		return "k3s ctr -n k8s.io"
	}
	return "ctr -n k8s.io"
}

// Plan says what Install does on rack r, one line per step, for the plan a
// real rack's run prints before anything connects.
func Plan(r *topology.Rack) []string {
	ns := r.Spec.Probes.Namespace
	var lines []string
	if img := r.Spec.Probes.Image; img != "" {
		lines = append(lines, fmt.Sprintf("image:   %s (spec.probes.image), pulled by the nodes from the rack's registry", img))
	} else if lab.PublishedAgent != "" {
		lines = append(lines, fmt.Sprintf("image:   %s (published with this release for every architecture), pulled by the nodes", lab.PublishedAgent))
	} else {
		var names []string
		for _, n := range r.Spec.Nodes {
			if n.HasRole(topology.RoleServer) || n.HasRole(topology.RoleWorker) {
				names = append(names, n.Name)
			}
		}
		src, err := agentSource()
		if err != nil {
			lines = append(lines, "image:   none can be had: "+err.Error())
		} else {
			lines = append(lines,
				fmt.Sprintf("image:   %s, for each node's architecture (spec.nodes[].arch, checked against uname -m)", src),
				fmt.Sprintf("load:    over SSH on %s: %s images import --platform linux/<arch> - (skipped where the image is already there)", strings.Join(names, ", "), ctr(r)))
		}
	}
	if r.Spec.Kubernetes.Distribution == topology.DistributionK3s {
		var servers []string
		for _, n := range r.Spec.Nodes {
			if n.HasRole(topology.RoleServer) {
				servers = append(servers, n.Name)
			}
		}
		lines = append(lines, fmt.Sprintf("etcdctl: K3s ships none: over SSH on %s, where none is installed, rackdrill's own (etcd's etcdctl, built on this machine for the server's architecture) is written to %s, to read etcd's members and leader", strings.Join(servers, ", "), rackstate.OwnEtcdctl))
	}
	wc := Config(r, "")
	objs := "Namespace, Deployment, PodDisruptionBudget (minAvailable 1) and Service " + probe.DemoName
	if wc.IngressClass != "" {
		objs += fmt.Sprintf(", Ingress %s (host %s, class %s)", probe.DemoName, wc.IngressHost, wc.IngressClass)
	}
	objs += ", Deployment " + probe.HealName
	if wc.StorageClass != "" {
		objs += fmt.Sprintf(", PersistentVolumeClaim %s (64Mi, ReadWriteMany, StorageClass %s)", probe.DataClaim, wc.StorageClass)
	}
	objs += fmt.Sprintf(", ServiceAccount, Role and RoleBinding %s (get, list and delete pods in %s only: the agents' heal check, through the in-cluster API path)", probe.AgentName, ns)
	objs += fmt.Sprintf(", DaemonSet %s (every node, every taint tolerated), NodePort Service %s on port %d",
		probe.AgentName, probe.AgentName, probe.AgentNodePort)
	lines = append(lines, fmt.Sprintf("apply:   in namespace %s, server-side (field manager %s): %s", ns, rackclient.FieldManager, objs))
	switch {
	case wc.StorageClass != "":
		lines = append(lines, fmt.Sprintf("data:    the data probe writes fresh records to the probe volume (StorageClass %s) before each drill and reads them back; they stay there between runs until `rackdrill probes remove`", wc.StorageClass))
	case wc.NFSServer != "":
		lines = append(lines, fmt.Sprintf("data:    the agents write the data probe's records on %s:%s over NFS from user space (the lab's pods cannot mount NFS), fresh before each drill", wc.NFSServer, wc.NFSExport))
	}
	lines = append(lines, fmt.Sprintf("remove:  `rackdrill probes remove` deletes namespace %s and the loaded image", ns))
	return lines
}

// Missing says why the probe workloads are not in place and ready on the rack
// (empty: they are).
func Missing(ctx context.Context, cs kubernetes.Interface, r *topology.Rack) (string, error) {
	ns := r.Spec.Probes.Namespace
	if _, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		return "namespace " + ns + " does not exist", nil
	} else if err != nil {
		return "", err
	}
	return notReady(ctx, cs, r)
}

// notReady says which workload is not ready yet ("" when all are).
func notReady(ctx context.Context, cs kubernetes.Interface, r *topology.Rack) (string, error) {
	ns := r.Spec.Probes.Namespace
	ds, err := cs.AppsV1().DaemonSets(ns).Get(ctx, probe.AgentName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "DaemonSet " + probe.AgentName + " does not exist", nil
	} else if err != nil {
		return "", err
	}
	if !dsReady(ds) {
		return fmt.Sprintf("DaemonSet %s: %d of %d agents ready", probe.AgentName, ds.Status.NumberReady, ds.Status.DesiredNumberScheduled), nil
	}
	for _, name := range []string{probe.DemoName, probe.HealName} {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return "Deployment " + name + " does not exist", nil
		} else if err != nil {
			return "", err
		}
		if !deployReady(d) {
			return fmt.Sprintf("Deployment %s: %d of %d replicas available", name, d.Status.AvailableReplicas, *d.Spec.Replicas), nil
		}
	}
	return "", nil
}

func dsReady(ds *appsv1.DaemonSet) bool {
	s := ds.Status
	return s.ObservedGeneration >= ds.Generation && s.DesiredNumberScheduled > 0 &&
		s.NumberReady == s.DesiredNumberScheduled && s.UpdatedNumberScheduled == s.DesiredNumberScheduled
}

func deployReady(d *appsv1.Deployment) bool {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	s := d.Status
	return s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == want && s.AvailableReplicas == want
}

func (o *Rack) out() io.Writer {
	if o.Out == nil {
		return io.Discard
	}
	return o.Out
}

func (o *Rack) say(format string, args ...any) {
	fmt.Fprintf(o.out(), "probes: "+format+"\n", args...)
}

// agentSource says where the agent image comes from, for the plan.
func agentSource() (string, error) {
	b, err := lab.NewToolBuilder(io.Discard)
	if err != nil {
		return "", err
	}
	return b.AgentSource()
}

// Install puts the probe workloads on the rack and waits until they are ready:
// etcdctl on the K3s servers that have none, the image on every node that
// runs a kubelet, then the workloads. A second Install converges: an image
// already loaded is not sent again, the objects are applied server-side.
func (o *Rack) Install(ctx context.Context) error {
	t0 := time.Now()
	if err := o.placeEtcdctl(ctx); err != nil {
		return err
	}
	image := o.Rack.Spec.Probes.Image
	if image == "" && lab.PublishedAgent != "" {
		image = lab.PublishedAgent
	}
	if image == "" {
		var err error
		if image, err = o.loadImage(ctx); err != nil {
			return err
		}
	}
	cfg, err := o.Client.Config(ctx)
	if err != nil {
		return err
	}
	ap, err := rackclient.NewApplier(cfg)
	if err != nil {
		return err
	}
	wc := Config(o.Rack, image)
	if err := probe.Deploy(ctx, ap, wc); err != nil {
		return err
	}
	o.say("applied the workloads in namespace %s (image %s)", wc.Namespace, image)
	cs, err := o.Client.Clientset(ctx)
	if err != nil {
		return err
	}
	last, lastSaid := "", time.Time{}
	err = poll.Until(ctx, 2*time.Second, ReadyTimeout, func() (bool, error) {
		why, err := notReady(ctx, cs, o.Rack)
		if err != nil {
			why = err.Error()
		}
		if why != "" && (why != last || time.Since(lastSaid) > 20*time.Second) {
			o.say("waiting: %s", why)
			last, lastSaid = why, time.Now()
		}
		return why == "", nil
	})
	if err != nil {
		return fmt.Errorf("the probe workloads in namespace %s are not ready after %s: %s (kubectl -n %s get pods,events)", wc.Namespace, ReadyTimeout, last, wc.Namespace)
	}
	o.say("ready in %s", time.Since(t0).Round(100*time.Millisecond))
	return nil
}

// agentImage builds (or finds in the cache) the agent image for the
// architectures of the nodes that run a kubelet, and says which node is which.
func (o *Rack) agentImage(ctx context.Context) (lab.AgentArchive, map[string]string, error) {
	nodes := kubeNodes(o.Nodes)
	if len(nodes) == 0 {
		return lab.AgentArchive{}, nil, fmt.Errorf("rack %s: no server or worker to load the agent image on", o.Rack.Metadata.Name)
	}
	archOf := map[string]string{}
	var archs []string
	for _, n := range nodes {
		declared := ""
		if tn := o.Rack.Node(n.Name()); tn != nil {
			declared = tn.Arch
		}
		a, err := cluster.Arch(ctx, n, declared)
		if err != nil {
			return lab.AgentArchive{}, nil, err
		}
		archOf[n.Name()] = a
		archs = append(archs, a)
	}
	b, err := o.builder()
	if err != nil {
		return lab.AgentArchive{}, nil, err
	}
	t0 := time.Now()
	img, err := b.AgentImage(ctx, archs)
	if err != nil {
		return lab.AgentArchive{}, nil, err
	}
	how := "built"
	if img.Cached {
		how = "cached"
	}
	o.say("agent image %s for %s: %s (%d KiB) in %s", img.Ref, strings.Join(img.Platforms, ", "), how, img.Size/1024, time.Since(t0).Round(100*time.Millisecond))
	return img, archOf, nil
}

func (o *Rack) builder() (*lab.Builder, error) {
	if o.Builder != nil {
		return o.Builder, nil
	}
	return lab.NewToolBuilder(o.out())
}

// lackingEtcdctl are the running K3s servers with no etcdctl (K3s ships
// none): rackdrill's own is put there when the probes are installed.
func (o *Rack) lackingEtcdctl(ctx context.Context) []cluster.Node {
	if o.Rack.Spec.Kubernetes.Distribution != topology.DistributionK3s {
		return nil
	}
	return rackstate.LackingEtcdctl(ctx, o.Nodes)
}

// placeEtcdctl writes rackdrill's etcdctl on the K3s servers that lack one
// (PlaceEtcdctl finds them: each server is asked once).
func (o *Rack) placeEtcdctl(ctx context.Context) error {
	if o.Rack.Spec.Kubernetes.Distribution != topology.DistributionK3s {
		return nil
	}
	b, err := o.builder()
	if err != nil {
		return err
	}
	written, err := rackstate.PlaceEtcdctl(ctx, o.Nodes, o.Rack, func(arch string) (string, error) { return b.EtcdctlFor(ctx, arch) })
	for _, n := range written {
		o.say("%s: wrote etcdctl at %s", n, rackstate.OwnEtcdctl)
	}
	return err
}

// loadImage builds the agent image for the architectures of the nodes that
// run a kubelet and loads it into each of them that lacks it; it returns the
// image's name.
func (o *Rack) loadImage(ctx context.Context) (string, error) {
	img, archOf, err := o.agentImage(ctx)
	if err != nil {
		return "", err
	}
	nodes := kubeNodes(o.Nodes)
	ctr := ctr(o.Rack)
	var errs []error
	for _, n := range nodes {
		has := fmt.Sprintf("%s images ls -q name==%s | grep -qx %s", ctr, exec.Quote(img.Ref), exec.Quote(img.Ref))
		if exec.Run(n.Command(ctx, "sh", "-c", has)) == nil {
			o.say("%s: has %s", n.Name(), img.Ref)
			continue
		}
		t1 := time.Now()
		plat, _ := lab.Platform(archOf[n.Name()])
		f, err := os.Open(img.Path)
		if err != nil {
			return "", err
		}
		err = exec.Run(n.Command(ctx, "sh", "-c", fmt.Sprintf("%s images import --platform %s - && %s", ctr, plat.String(), has)).SetStdin(f))
		f.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: load the agent image (%s images import): %w", n.Name(), ctr, err))
			continue
		}
		o.say("%s: loaded %s (%s) in %s", n.Name(), img.Ref, plat.String(), time.Since(t1).Round(100*time.Millisecond))
	}
	return img.Ref, errors.Join(errs...)
}

// Remove deletes the probe workloads (their namespace, with the data probe's
// records on its volume) and the agent images rackdrill loaded, and waits
// until nothing labelled as a probe workload is left.
func (o *Rack) Remove(ctx context.Context) error {
	ns := o.Rack.Spec.Probes.Namespace
	cs, err := o.Client.Clientset(ctx)
	if err != nil {
		return err
	}
	fg := metav1.DeletePropagationForeground
	switch err := cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{PropagationPolicy: &fg}); {
	case apierrors.IsNotFound(err):
		o.say("namespace %s does not exist", ns)
	case err != nil:
		return fmt.Errorf("delete namespace %s: %w", ns, err)
	default:
		t0 := time.Now()
		o.say("deleting namespace %s", ns)
		if err := poll.Until(ctx, 2*time.Second, ReadyTimeout, func() (bool, error) {
			_, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			return apierrors.IsNotFound(err), nil
		}); err != nil {
			return fmt.Errorf("namespace %s is still there after %s (kubectl get namespace %s -o yaml says what holds it)", ns, ReadyTimeout, ns)
		}
		o.say("namespace %s deleted in %s", ns, time.Since(t0).Round(100*time.Millisecond))
	}
	var errs []error
	if o.Rack.Spec.Probes.Image == "" {
		ctr := ctr(o.Rack)
		rm := fmt.Sprintf("for i in $(%s images ls -q | grep '^%s:'); do %s images rm \"$i\" >/dev/null && echo \"$i\"; done", ctr, lab.AgentRepository, ctr)
		for _, n := range kubeNodes(o.Nodes) {
			out, err := exec.Output(n.Command(ctx, "sh", "-c", rm))
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: remove the agent image: %w", n.Name(), err))
				continue
			}
			if s := strings.Fields(string(out)); len(s) > 0 {
				o.say("%s: removed %s", n.Name(), strings.Join(s, ", "))
			}
		}
	}
	if o.Rack.Spec.Kubernetes.Distribution == topology.DistributionK3s {
		for _, n := range o.Nodes {
			if slices.Contains(n.Roles(), topology.RoleServer) {
				if err := exec.Run(n.Command(ctx, "rm", "-f", rackstate.OwnEtcdctl)); err != nil {
					errs = append(errs, fmt.Errorf("%s: remove %s: %w", n.Name(), rackstate.OwnEtcdctl, err))
				}
			}
		}
	}
	cfg, err := o.Client.Config(ctx)
	if err != nil {
		return err
	}
	left, err := Leftovers(ctx, cfg)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if len(left) > 0 {
		errs = append(errs, fmt.Errorf("still labelled %s: %s", probe.LabelComponent, strings.Join(left, ", ")))
	} else {
		o.say("nothing labelled %s is left", probe.LabelComponent)
	}
	return errors.Join(errs...)
}

// Leftovers lists every object of the rack's API, of every kind that can be
// listed, that carries the probe workloads' label: kind/namespace/name.
func Leftovers(ctx context.Context, cfg *rest.Config) ([]string, error) {
	// Listing every kind lists deprecated ones too: their warnings say nothing here.
	cfg = rest.CopyConfig(cfg)
	cfg.WarningHandler = rest.NoWarnings{}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	lists, err := dc.ServerPreferredResources()
	if err != nil && len(lists) == 0 {
		return nil, fmt.Errorf("discover the API's resources: %w", err)
	}
	var out []string
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, res := range l.APIResources {
			if !slices.Contains(res.Verbs, "list") || strings.Contains(res.Name, "/") {
				continue
			}
			items, err := dyn.Resource(gv.WithResource(res.Name)).List(ctx, metav1.ListOptions{LabelSelector: probe.LabelComponent})
			if err != nil {
				if apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err) || apierrors.IsForbidden(err) {
					continue
				}
				return nil, fmt.Errorf("list %s labelled %s: %w", res.Name, probe.LabelComponent, err)
			}
			for _, it := range items.Items {
				name := res.Kind + "/" + it.GetName()
				if it.GetNamespace() != "" {
					name = res.Kind + "/" + it.GetNamespace() + "/" + it.GetName()
				}
				out = append(out, name)
			}
		}
	}
	sort.Strings(out)
	return slices.Compact(out), nil
}

// Ensure installs the probe workloads when they are missing or not ready,
// once approve agrees (the run's confirmation); it says what it found.
func (o *Rack) Ensure(ctx context.Context, approve func(why string) error) error {
	cs, err := o.Client.Clientset(ctx)
	if err != nil {
		return err
	}
	why, err := Missing(ctx, cs, o.Rack)
	if err != nil {
		return fmt.Errorf("look for the probe workloads: %w", err)
	}
	if why == "" {
		// Ready, but maybe with another version's agent (rackdrill was
		// upgraded since they were installed): this one's is installed.
		want := o.Rack.Spec.Probes.Image
		if want == "" {
			want = lab.PublishedAgent
		}
		if want == "" {
			img, _, err := o.agentImage(ctx)
			if err != nil {
				return err
			}
			want = img.Ref
		}
		ds, err := cs.AppsV1().DaemonSets(o.Rack.Spec.Probes.Namespace).Get(ctx, probe.AgentName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if have := ds.Spec.Template.Spec.Containers[0].Image; have != want {
			why = fmt.Sprintf("the agents run %s, and this rackdrill's agent is %s", have, want)
		}
	}
	if lacking := o.lackingEtcdctl(ctx); len(lacking) > 0 {
		var names []string
		for _, n := range lacking {
			names = append(names, n.Name())
		}
		if why != "" {
			why += "; "
		}
		why += fmt.Sprintf("no etcdctl on K3s server(s) %s", strings.Join(names, ", "))
	}
	if why == "" {
		o.say("the workloads are in namespace %s and ready", o.Rack.Spec.Probes.Namespace)
		return nil
	}
	if err := approve(why); err != nil {
		return err
	}
	o.say("installing them: %s", why)
	return o.Install(ctx)
}

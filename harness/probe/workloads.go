package probe

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/scheme"

	"rackdrill.dev/rackdrill/harness/probe/agent"
	"rackdrill.dev/rackdrill/harness/rackclient"
)

// Names of the probe workloads, all in the probes' own namespace.
const (
	LabelComponent = "rackdrill.dev/probe"
	HealName       = "rackdrill-heal"
	AgentName      = "rackdrill-agent"
	DemoName       = "rackdrill-demo"
	DataClaim      = "rackdrill-data"
	// AgentNodePort is where each node's agent answers the harness.
	AgentNodePort = 30980
	agentPort     = 8080
)

// WorkloadConfig says how to deploy the probe workloads.
type WorkloadConfig struct {
	Namespace string
	// Image is the agent image (this repo's static binary, FROM scratch); it is
	// the demo app too.
	Image string
	// IngressHost and IngressClass route the lan and internet probes to the demo
	// app through the rack's ingress controller.
	IngressHost  string
	IngressClass string
	// StorageClass backs the agents' shared data volume (ReadWriteMany, NFS);
	// empty: the agents have no data volume and say so to the storage probes.
	StorageClass string
	// NFSServer and NFSExport, on a rack whose pods cannot mount NFS (the lab's
	// kernel has no NFS client), make the agents speak NFS from user space.
	NFSServer string
	NFSExport string
}

// Workloads returns the objects the probes need, in creation order: the
// namespace, the demo app with its Service and Ingress (lan, internet, apps),
// the heal Deployment (heal), the data claim and the agent DaemonSet with its
// NodePort Service (apps, storage, data).
func Workloads(cfg WorkloadConfig) []any {
	ns := cfg.Namespace
	meta := func(name string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{LabelComponent: name}}
	}
	sel := func(name string) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchLabels: map[string]string{LabelComponent: name}}
	}
	never := corev1.PullIfNotPresent
	ready := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
		Path: agent.PathHealth, Port: intstr.FromInt32(agentPort)}}, PeriodSeconds: 1, FailureThreshold: 2}
	container := func(args ...string) corev1.Container {
		return corev1.Container{
			Name: "agent", Image: cfg.Image, ImagePullPolicy: never,
			Args:  append([]string{"--listen", fmt.Sprintf(":%d", agentPort)}, args...),
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: agentPort}},
			Env: []corev1.EnvVar{{Name: "NODE_NAME", ValueFrom: &corev1.EnvVarSource{
				FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}}},
			ReadinessProbe: ready,
		}
	}
	podTemplate := func(name string, c corev1.Container) corev1.PodTemplateSpec {
		zero := int64(0)
		return corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{LabelComponent: name}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{c}, TerminationGracePeriodSeconds: &zero},
		}
	}
	two := int32(2)
	one := intstr.FromInt32(1)
	prefix := networkingv1.PathTypePrefix
	demoURL := fmt.Sprintf("http://%s.%s.svc/", DemoName, ns)

	agentTpl := podTemplate(AgentName, container("--apps-url", demoURL))
	// The heal check runs in the agent, through the in-cluster API path,
	// with a service account that may only list and delete the probes'
	// pods.
	agentTpl.Spec.ServiceAccountName = AgentName
	agentTpl.Spec.Containers[0].Env = append(agentTpl.Spec.Containers[0].Env, corev1.EnvVar{Name: "POD_NAMESPACE",
		ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}})
	if cfg.NFSServer != "" {
		c := &agentTpl.Spec.Containers[0]
		c.Args = append(c.Args, "--nfs-server", cfg.NFSServer, "--nfs-export", cfg.NFSExport)
	} else if cfg.StorageClass != "" {
		c := &agentTpl.Spec.Containers[0]
		c.Args = append(c.Args, "--data-dir", "/data")
		c.VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
		agentTpl.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: DataClaim}}}}
	}
	// The agents must answer on every node, tainted ones included.
	agentTpl.Spec.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpExists}}

	sc := cfg.StorageClass
	objs := []any{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{LabelComponent: "namespace"}}},
		&appsv1.Deployment{ObjectMeta: meta(DemoName), Spec: appsv1.DeploymentSpec{
			Replicas: &two, Selector: sel(DemoName), Template: podTemplate(DemoName, container("--demo"))}},
		// The demo app keeps one replica through a drain, as an app on a
		// rack does: drains move its replicas one at a time (the rehearsed
		// upgrade drains every node in turn, and after the first drain both
		// replicas may sit on the next node drained).
		&policyv1.PodDisruptionBudget{ObjectMeta: meta(DemoName), Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: &one, Selector: sel(DemoName)}},
		&corev1.Service{ObjectMeta: meta(DemoName), Spec: corev1.ServiceSpec{
			Selector: map[string]string{LabelComponent: DemoName},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(agentPort)}}}},
		&networkingv1.Ingress{ObjectMeta: meta(DemoName), Spec: networkingv1.IngressSpec{
			IngressClassName: &cfg.IngressClass,
			Rules: []networkingv1.IngressRule{{Host: cfg.IngressHost, IngressRuleValue: networkingv1.IngressRuleValue{
				HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
					Path: "/", PathType: &prefix, Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
						Name: DemoName, Port: networkingv1.ServiceBackendPort{Number: 80}}}}}}}}}}},
		&appsv1.Deployment{ObjectMeta: meta(HealName), Spec: appsv1.DeploymentSpec{
			Replicas: &two, Selector: sel(HealName), Template: podTemplate(HealName, container())}},
		&corev1.ServiceAccount{ObjectMeta: meta(AgentName)},
		&rbacv1.Role{ObjectMeta: meta(AgentName), Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"},
			Verbs: []string{"get", "list", "delete"}}}},
		&rbacv1.RoleBinding{ObjectMeta: meta(AgentName),
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: AgentName},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: AgentName, Namespace: ns}}},
		&appsv1.DaemonSet{ObjectMeta: meta(AgentName), Spec: appsv1.DaemonSetSpec{Selector: sel(AgentName), Template: agentTpl}},
		&corev1.Service{ObjectMeta: meta(AgentName), Spec: corev1.ServiceSpec{
			Type:                  corev1.ServiceTypeNodePort,
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
			Selector:              map[string]string{LabelComponent: AgentName},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(agentPort),
				NodePort: AgentNodePort}}}},
	}
	if sc == "" {
		return objs
	}
	// The claim goes before the DaemonSet that mounts it.
	claim := &corev1.PersistentVolumeClaim{ObjectMeta: meta(DataClaim), Spec: corev1.PersistentVolumeClaimSpec{
		StorageClassName: &sc, AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany},
		Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("64Mi")}}}}
	return append(objs[:len(objs)-2:len(objs)-2], claim, objs[len(objs)-2], objs[len(objs)-1])
}

// Deploy applies the probe workloads server-side, so that a second run
// converges instead of failing.
func Deploy(ctx context.Context, ap *rackclient.Applier, cfg WorkloadConfig) error {
	var objs []*unstructured.Unstructured
	for _, w := range Workloads(cfg) {
		obj, ok := w.(runtime.Object)
		if !ok {
			return fmt.Errorf("probe workload %T is not an API object", w)
		}
		gvks, _, err := scheme.Scheme.ObjectKinds(obj)
		if err != nil {
			return fmt.Errorf("probe workload %T: %w", obj, err)
		}
		obj.GetObjectKind().SetGroupVersionKind(gvks[0])
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
		if err != nil {
			return err
		}
		// What the server owns: an applied object states only its intent.
		delete(m, "status")
		unstructured.RemoveNestedField(m, "metadata", "creationTimestamp")
		unstructured.RemoveNestedField(m, "spec", "template", "metadata", "creationTimestamp")
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
	if _, err := ap.ApplyObjects(ctx, "probe workloads in "+cfg.Namespace, objs); err != nil {
		return fmt.Errorf("deploy probe workloads: %w", err)
	}
	return nil
}

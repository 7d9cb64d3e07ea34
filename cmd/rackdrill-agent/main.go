// Command rackdrill-agent is the probe workload the harness deploys into the
// cluster (namespace rackdrill-probes): the demo app behind the Ingress (--demo),
// the heal Deployment's pods, and on every node the end of the apps, storage and
// data probes. It is a static binary in a FROM scratch image.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"rackdrill.dev/rackdrill/harness/probe/agent"
)

// inCluster is a client of the rack's API through the kubernetes Service,
// with the pod's service account. Each call makes a new one on a new
// connection (a dialer of its own keeps client-go from sharing a cached
// transport), and every request is bounded: a connection pinned to an API
// server that died would otherwise hold every heal check after it.
func inCluster() (kubernetes.Interface, error) {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, err
	}
	cfg.Timeout = 5 * time.Second // each request has a shorter limit of its own (agent.Heal)
	cfg.Dial = (&net.Dialer{Timeout: 2 * time.Second}).DialContext
	return kubernetes.NewForConfig(cfg)
}

func main() {
	listen := flag.String("listen", ":8080", "address to serve on")
	appsURL := flag.String("apps-url", "", "URL of the demo app's Service (the apps probe's target)")
	dataDir := flag.String("data-dir", "", "directory on the NFS-backed volume (the storage and data probes)")
	nfsServer := flag.String("nfs-server", "", "NFS server spoken to from user space, where pods cannot mount NFS (the lab)")
	nfsExport := flag.String("nfs-export", "", "the export on --nfs-server")
	demo := flag.Bool("demo", false, "serve as the demo app")
	flag.Parse()

	node := os.Getenv("NODE_NAME")
	if node == "" {
		node, _ = os.Hostname()
	}
	h := &agent.Handler{AppsURL: *appsURL, AppsMarker: agent.DemoMarker, Node: node, Demo: *demo,
		Client: &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" && !*demo {
		h.Namespace, h.Kube = ns, inCluster
	}
	switch {
	case *dataDir != "" && *nfsServer != "":
		fmt.Fprintln(os.Stderr, "rackdrill-agent: --data-dir and --nfs-server are exclusive")
		os.Exit(2)
	case *dataDir != "":
		h.Store = agent.DirStore{Dir: *dataDir}
	case *nfsServer != "":
		h.Store = &agent.NFSStore{Server: *nfsServer, Export: *nfsExport}
	}
	if flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "rackdrill-agent: unexpected arguments:", flag.Args())
		os.Exit(2)
	}
	srv := &http.Server{Addr: *listen, Handler: h, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	fmt.Fprintf(os.Stderr, "rackdrill-agent on %s listening on %s (demo=%v)\n", node, *listen, *demo)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "rackdrill-agent:", err)
		os.Exit(1)
	}
}

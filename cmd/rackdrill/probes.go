package main

import (
	"context"
	"fmt"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"rackdrill.dev/rackdrill/harness/cluster"
	"rackdrill.dev/rackdrill/harness/cluster/providers"
	"rackdrill.dev/rackdrill/harness/lab"
	"rackdrill.dev/rackdrill/harness/probe/install"
	"rackdrill.dev/rackdrill/harness/rackclient"
	"rackdrill.dev/rackdrill/harness/topology"
)

func newProbesCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "probes",
		Short: "Install or remove the probes' workloads on the rack (a real rack gets them on its first run)",
		Long: `The probes need workloads of rackdrill's own in the rack, in the namespace of
spec.probes.namespace (rackdrill-probes): the demo app behind an Ingress (the LAN
and Internet probes), a Deployment the heal probe watches, and an agent on every
node (the apps, storage and data probes), with a volume of the documented
StorageClass for the data probe.

On a real rack (spec.provider ssh), install builds the agent image for the
nodes' architectures on this machine and loads it into each node's containerd
over SSH (unless spec.probes.image names the rack's own registry's copy), then
applies the workloads through the API. rackdrill run and preflight do the same
when the workloads are missing, as a step of the plan they print. remove deletes
the namespace (and with it the data probe's records) and the loaded images, then
lists every object of the API carrying the label rackdrill.dev/probe: none may
be left.`,
		Example: `  rackdrill probes install --topology my-rack.yaml --dry-run
  rackdrill probes install --topology my-rack.yaml
  rackdrill probes remove --topology my-rack.yaml`,
	}
	var dryRun, accept bool
	sub := func(use, short string, do func(context.Context, *install.Rack) error) *cobra.Command {
		c := &cobra.Command{
			Use:   use,
			Short: short,
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				out := cmd.OutOrStdout()
				r, err := loadRack(g.topology, cmd.ErrOrStderr())
				if err != nil {
					return err
				}
				if use == "install" {
					fmt.Fprintf(out, "Probe workloads on rack %s (%s):\n", r.Metadata.Name, r.Spec.Provider)
					for _, l := range install.Plan(r) {
						fmt.Fprintf(out, "  %s\n", l)
					}
				}
				if dryRun {
					fmt.Fprintln(out, "dry run: nothing was run on any machine")
					return nil
				}
				ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
				defer stop()
				ctx, cancel := context.WithTimeout(ctx, 20*time.Minute)
				defer cancel()
				p, err := providerFor(cmd, g, r, providers.WithAcceptNewHostKeys(accept))
				if err != nil {
					return err
				}
				defer providers.Close(p)
				if c, ok := p.(interface{ Check(context.Context) error }); ok {
					if err := c.Check(ctx); err != nil {
						return err
					}
				}
				nodes, err := p.Nodes(ctx)
				if err != nil {
					return err
				}
				if len(nodes) == 0 {
					return fmt.Errorf("rack %s is not up (rackdrill status --topology %s)", r.Metadata.Name, g.topology)
				}
				src, ok := p.(cluster.KubeconfigSource)
				if !ok {
					return fmt.Errorf("the %s provider gives no kubeconfig", r.Spec.Provider)
				}
				return do(ctx, &install.Rack{Rack: r, Nodes: nodes, Out: out,
					Client: rackclient.New(src, r.APIServerURL(), rackclient.OperationsTimeout)})
			},
		}
		c.Flags().BoolVar(&dryRun, "dry-run", false, "print what would be done and stop: nothing is run anywhere")
		c.Flags().BoolVar(&accept, "accept-new-host-keys", false, "ssh provider: record the host key of a machine known_hosts does not list yet")
		return c
	}
	var archs []string
	image := &cobra.Command{
		Use:   "image",
		Short: "Build the agent image for the architectures of the rack's nodes, as one OCI archive (for spec.probes.image)",
		Long: `image builds rackdrill-agent for every architecture the topology's servers and
workers declare (or those given with --arch), cross-compiled as static binaries, and
writes them as one multi-architecture OCI image archive, cached by content. It prints
the archive's path and the platforms its index lists. Push it to your registry with
any OCI tool (skopeo copy oci-archive:<path> docker://<registry>/rackdrill/agent:<tag>)
and set spec.probes.image; without a registry, rackdrill loads it over SSH itself.`,
		Example: `  rackdrill probes image --topology kind-configs/rack-seed001.example.yaml
  rackdrill probes image --arch amd64 --arch arm64 --arch arm`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			want := archs
			if len(want) == 0 {
				r, err := loadRack(g.topology, cmd.ErrOrStderr())
				if err != nil {
					return err
				}
				for _, n := range r.Spec.Nodes {
					if n.HasRole(topology.RoleServer) || n.HasRole(topology.RoleWorker) {
						want = append(want, n.Arch)
					}
				}
			}
			b, err := lab.NewToolBuilder(cmd.OutOrStdout())
			if err != nil {
				return err
			}
			img, err := b.AgentImage(cmd.Context(), want)
			if err != nil {
				return err
			}
			ref, plats, err := lab.ArchiveIndex(img.Path)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\n  image:     %s\n  platforms: %s\n  size:      %d KiB\n", img.Path, ref, strings.Join(plats, ", "), img.Size/1024)
			return nil
		},
	}
	image.Flags().StringArrayVar(&archs, "arch", nil, "build for this architecture (amd64, arm64, arm; repeatable; default: the topology's servers and workers)")
	cmd.AddCommand(
		image,
		sub("install", "Load the agent image on every node and apply the probe workloads; wait until they are ready",
			func(ctx context.Context, in *install.Rack) error { return in.Install(ctx) }),
		sub("remove", "Delete the probe workloads' namespace and the loaded agent images; check nothing labelled is left",
			func(ctx context.Context, in *install.Rack) error { return in.Remove(ctx) }),
	)
	return cmd
}

package main

import (
	"fmt"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"rackdrill.dev/rackdrill/harness/lab"
)

func newImagesCommand(g *globalOptions) *cobra.Command {
	var list bool
	cmd := &cobra.Command{
		Use:   "images [IMAGE...]",
		Short: "Build the offline lab's images from the Go module proxy and Debian (cached by content)",
		Long: `images builds every image of the offline lab, or the named ones and what they are
made of. Each image is tagged by a hash of its inputs: an image whose inputs did not
change is not rebuilt. Nothing is pulled from a registry.`,
		Example: `  rackdrill images
  rackdrill images agent node
  rackdrill images v1.33.6/node     # the node image of another release, to start the lab at it
  rackdrill images --list`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			b, err := lab.NewRepoBuilder(cmd.OutOrStdout())
			if err != nil {
				return err
			}
			if list {
				for _, n := range lab.Names() {
					fmt.Fprintln(cmd.OutOrStdout(), n)
				}
				return nil
			}
			// A release's images are named by its version (v1.34.3/node):
			// a release the lab does not ship is derived first.
			for _, a := range args {
				if v, _, ok := strings.Cut(a, "/"); ok && strings.HasPrefix(v, "v") {
					if _, err := lab.ReleaseOf(ctx, v); err != nil {
						return fmt.Errorf("image %s: %w", a, err)
					}
				}
			}
			_, err = b.Build(ctx, args...)
			return err
		},
	}
	cmd.Flags().BoolVar(&list, "list", false, "list the lab's images in build order")
	return cmd
}

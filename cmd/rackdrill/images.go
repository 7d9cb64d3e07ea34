package main

import (
	"fmt"
	"os/signal"
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
			_, err = b.Build(ctx, args...)
			return err
		},
	}
	cmd.Flags().BoolVar(&list, "list", false, "list the lab's images in build order")
	return cmd
}

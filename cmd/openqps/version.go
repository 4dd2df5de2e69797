package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/openqps/openqps/internal/version"
)

func versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, the git commit and the Go version of this build",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			v := version.Get()
			fmt.Fprintf(cmd.OutOrStdout(), "openqps %s\ncommit %s\n%s %s\n", v.Version, v.Commit, v.Go, v.Platform)
		},
	}
}

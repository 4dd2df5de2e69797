// Command openqps is an authenticating reverse proxy that speaks the Qlik
// Sense Proxy Service API. `openqps serve` runs it; the other commands
// call its trusted API the way a login module does.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	if err := rootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "openqps:", err)
		os.Exit(1)
	}
}

func rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "openqps",
		Short:         "An authenticating reverse proxy that speaks the Qlik Sense Proxy Service (QPS) API",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(serveCommand(), reloadCommand(), versionCommand(), healthcheckCommand(), certsCommand(), sessionCommand(), userCommand(), ticketCommand())
	root.AddCommand(platformCommands()...)
	root.AddCommand(samlCommand())
	return root
}

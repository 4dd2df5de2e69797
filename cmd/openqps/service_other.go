//go:build !windows

package main

import (
	"context"

	"github.com/spf13/cobra"
)

// asService returns ctx as it is: only Windows has a service manager
// that starts openqps this way (systemd uses the process's signals and
// $NOTIFY_SOCKET).
func asService(ctx context.Context) (context.Context, func(), error) { return ctx, func() {}, nil }

// platformCommands are the commands only some platforms have.
func platformCommands() []*cobra.Command { return nil }

//go:build !windows

package main

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// signalReload sends SIGHUP, which makes openqps serve read its
// configuration again.
func signalReload(pid int, pidFile string) error {
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("no process %d (stale pid file %s): is openqps running?", pid, pidFile)
		}
		return fmt.Errorf("signal process %d: %w", pid, err)
	}
	return nil
}

// stopSignals end openqps serve: Ctrl-C and SIGTERM (systemd, podman stop).
var stopSignals = []os.Signal{os.Interrupt, syscall.SIGTERM}

// reloadSignals make openqps serve read its configuration again.
var reloadSignals = []os.Signal{syscall.SIGHUP}

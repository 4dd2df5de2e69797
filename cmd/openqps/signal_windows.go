//go:build windows

package main

import (
	"errors"
	"os"
)

// signalReload cannot signal on Windows, which has no SIGHUP: a reload
// goes through the trusted API there.
func signalReload(int, string) error {
	return errors.New("no SIGHUP on Windows: reload through the trusted API with --api https://localhost:4243 --certs <data_dir>/certs")
}

// stopSignals end openqps serve: Ctrl-C (a service stops through the
// service manager instead).
var stopSignals = []os.Signal{os.Interrupt}

// reloadSignals is empty: Windows has no SIGHUP.
var reloadSignals []os.Signal

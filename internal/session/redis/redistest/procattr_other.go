//go:build !linux

package redistest

import "os/exec"

// dieWithTest does nothing where the OS has no parent-death signal.
func dieWithTest(*exec.Cmd) {}

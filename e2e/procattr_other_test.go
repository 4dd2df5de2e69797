//go:build !linux

package e2e

import "syscall"

// childProcAttr: only Linux can tie a child's life to its parent's; the
// test's cleanup ends the child elsewhere.
func childProcAttr() *syscall.SysProcAttr { return nil }

package e2e

import "syscall"

// childProcAttr makes a helper process the test starts die with the test
// binary, should the test be killed before its cleanup runs.
func childProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }

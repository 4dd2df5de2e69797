package kdctest

import (
	"os/exec"
	"syscall"
)

// dieWithTest makes the KDC exit with the test binary, even when the test
// panics before its cleanups run.
func dieWithTest(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

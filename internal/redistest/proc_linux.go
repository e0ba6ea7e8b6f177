//go:build linux

package redistest

import "syscall"

// sysProcAttr makes the kernel kill redis-server when the test process dies, so a crashed or killed test
// run leaves no servers behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

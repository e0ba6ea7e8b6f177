//go:build !linux

package redistest

import "syscall"

// sysProcAttr returns nil: outside Linux there is no parent-death signal, so servers rely on test cleanup.
func sysProcAttr() *syscall.SysProcAttr { return nil }

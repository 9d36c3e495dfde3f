//go:build !linux

package redistest

import "syscall"

// procAttr is empty where there is no Pdeathsig: only Main stops servers.
func procAttr() *syscall.SysProcAttr { return nil }

package redistest

import "syscall"

// procAttr makes a server die with the test binary, even a crashed one.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

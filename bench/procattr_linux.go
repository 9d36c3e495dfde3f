package main

import "syscall"

// procAttr makes the server die with this process, even a crashed one.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

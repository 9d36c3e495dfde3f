//go:build !linux

package main

import "syscall"

// procAttr is empty where Pdeathsig does not exist: stop ends the server.
func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }

//go:build linux

package main

import (
	"os/exec"
	"syscall"
)

// setPdeathsig makes the system kill cmd's process when the tool dies, so that a broker child
// never outlives it. (Linux sends the signal when the thread that started the child ends; the
// Go runtime does not end its threads, except those of goroutines that exit locked to one.)
func setPdeathsig(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

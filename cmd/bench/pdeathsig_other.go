//go:build !linux

package main

import "os/exec"

// setPdeathsig does nothing on this system: a broker child stops when its stdin ends, which
// the tool's death causes too.
func setPdeathsig(*exec.Cmd) {}

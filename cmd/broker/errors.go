package main

import "errors"

// errUsage marks a command-line mistake (an unknown flag, a missing flag value, a stray
// argument). main prints the usage with it and exits with status 2.
var errUsage = errors.New("invalid command line")

package pgtest

import "syscall"

// setParentDeathSignal makes the kernel send SIGTERM to the child when the
// test binary dies, so an interrupted test run leaves no cluster behind.
func setParentDeathSignal(attr *syscall.SysProcAttr) { attr.Pdeathsig = syscall.SIGTERM }

package pluginhost

import "syscall"

// setParentDeathSignal makes the kernel kill a plugin when gatewayd dies,
// however it dies, so that no plugin outlives it.
func setParentDeathSignal(attr *syscall.SysProcAttr) { attr.Pdeathsig = syscall.SIGKILL }

//go:build !linux

package pluginhost

import "syscall"

func setParentDeathSignal(*syscall.SysProcAttr) {}

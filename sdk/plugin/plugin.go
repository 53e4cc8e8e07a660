// Package plugin holds what gatewayd and every external plugin binary must
// agree on before anything else: the go-plugin handshake and the plugin kinds.
//
// Plugin authors do not use it directly; secret and protocol plugins call
// their kind's Serve function, which uses Handshake. gatewayd's plugin host
// uses the same values to launch them.
package plugin

import (
	"errors"

	goplugin "github.com/hashicorp/go-plugin"
)

// Plugin kinds, as written in the kind key of a [[plugin]] table in
// gateway.toml and used as the plugin name in go-plugin's PluginSet.
const (
	KindSecret   = "secret"
	KindProtocol = "protocol"
)

// ProtocolVersion is the go-plugin application protocol version of this
// handshake. Each kind versions its own gRPC contract separately, through
// go-plugin's VersionedPlugins (the major version is also in the proto
// package name, such as gatewayd.secrets.v1); this number changes only if
// the handshake itself does.
const ProtocolVersion = 1

// Handshake is the go-plugin handshake between gatewayd and its plugins. The
// magic cookie is not a security measure: it only makes a plugin binary run
// by hand say that it is meant to be started by gatewayd, instead of hanging
// silently.
var Handshake = goplugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "GATEWAYD_PLUGIN",
	MagicCookieValue: "8f2c6b1e0d9a4f57b3e1c2a9d4f6e8b07a5c3d1e9f2b4a6c",
}

// ErrUnavailable is what a call through a plugin's client shim fails with
// (wrapped) when the plugin process cannot be reached: it exited, crashed or
// is being restarted. It is the sentinel of a dead plugin, so that a caller
// can tell "the plugin said no" from "there is no plugin to ask".
var ErrUnavailable = errors.New("plugin: unavailable (the plugin process exited or cannot be reached)")

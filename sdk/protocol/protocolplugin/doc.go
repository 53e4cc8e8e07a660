// Package protocolplugin runs a protocol.Handler out of process, as a
// hashicorp/go-plugin plugin: Serve is the plugin binary's side, Client
// gatewayd's. The handler is the same Go type either way; it cannot tell
// whether it runs inside gatewayd or in a plugin.
//
// go-plugin is never on the per-frame path. A client connection crosses
// the process boundary once: gatewayd passes its file descriptor over a
// Unix socket (SCM_RIGHTS) and closes its own copy, so the plugin owns the
// socket, TLS included, and the bytes of a session never pass through
// gatewayd again. The handler's calls back into gatewayd (protocol.Host)
// travel over one gRPC stream per plugin process, frames of many sessions
// in each message, each call tagged with an id and its connection's handle.
//
//	gatewayd (Client)                              plugin (Serve)
//	  go-plugin launch: gRPC, AutoMTLS, sha256 ───▶  protocolplugin.Serve
//	  Configure(TLS cert, limits, socket, token) ─▶  newHandler(Config); dial socket, send token
//	  Calls ◀══════════ one bidirectional stream ══════════▶
//	  accept client conn
//	  Serve(ctx, conn, host):
//	    fd + handle ──── Unix socket, SCM_RIGHTS ──▶  handler.Serve(ctx, conn, sessionHost)
//	    close own copy                                   TLS, startup, relay: all here
//	    host.Authenticate ◀── Call{id, handle} ───────   Authenticate
//	    Reply{id} ───────────────────────────────────▶
//	    host.Admit        ◀── Call ──────────────────    each statement
//	    host.RecordRequests ◀ Call{async} (no reply) ─   with the next call, or within 2ms
//	    host.CloseSession ◀── Call ──────────────────
//	    return            ◀── SessionDone{handle} ───    handler returned
//
// The calls a handler waits for (Authenticate, OpenSession, Admit, Mask,
// RecordEvent, CloseSession, Record) are answered in the order they
// complete, each on its own goroutine in gatewayd, so a slow one holds up
// only its caller. RecordRequests does not wait, like the audit log's own
// Append: its failure is returned by the session's next Admit or
// RecordRequests, which refuses the next statement. gatewayd runs each
// session's RecordRequests, RecordEvent, Record and CloseSession one at a
// time, in order.
//
// Every call the plugin makes is bounded by Config.CallTimeout. If the
// plugin dies, every Serve of gatewayd returns an error wrapping
// ErrPluginShutdown at once, the kernel closes the client connections the
// plugin held (clients see them close), and gatewayd closes the sessions
// the plugin had opened. If gatewayd goes away, the plugin cancels every
// session and exits.
//
// Credentials (the client's token, the target's credential, the TLS key)
// cross only the gRPC channel, which must be go-plugin's AutoMTLS: the
// plugin refuses a channel without mutual TLS. They are cleared from the
// messages once decoded, and never logged.
//
// gatewayd's side, given a go-plugin client launched with
// VersionedPlugins and DialOptions:
//
//	rpc, _ := goPluginClient.Client()
//	h, err := protocolplugin.Open(ctx, rpc, protocolplugin.Config{TLS: tlsConfig, ...})
//	... h.Serve(ctx, conn, host) for each accepted connection; <-h.Done() when the plugin died.
//
// Or, with the raw value go-plugin dispensed (kind plugin.KindProtocol):
// raw.(*protocolplugin.Client).Start(ctx, cfg).
package protocolplugin

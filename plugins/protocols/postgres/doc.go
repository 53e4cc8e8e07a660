// Package postgres is gatewayd's PostgreSQL protocol handler: it terminates
// the client's wire protocol (TLS, startup, password = gateway token),
// connects upstream as the connection's real role with the injected
// credential, and relays the session message by message, recording every
// statement.
//
// The handshake:
//
//	client                         gatewayd                        PostgreSQL
//	  |-- SSLRequest ---------------->|                                 |
//	  |<-------------------------- 'S'|                                 |
//	  |== TLS handshake =============>|                                 |
//	  |-- StartupMessage ------------>|  user = identity,               |
//	  |   (user, database, params)    |  database = connection name     |
//	  |<-- AuthenticationCleartext ---|                                 |
//	  |-- PasswordMessage (token) --->|-- Host.Authenticate             |
//	  |                               |-- Host.OpenSession (access,     |
//	  |                               |   target, credential)           |
//	  |                               |-- startup (role, db, params) -->|
//	  |                               |<-- SCRAM/md5 exchange --------->|
//	  |                               |<-- ParameterStatus*, KeyData ---|
//	  |                               |<-- ReadyForQuery ---------------|
//	  |<-- AuthenticationOk ----------|                                 |
//	  |<-- ParameterStatus* ----------|                                 |
//	  |<-- BackendKeyData (gateway's)-|                                 |
//	  |<-- ReadyForQuery -------------|                                 |
//	  |<========= relay: every message bounded, statements tracked ====>|
//
// A GSSENCRequest is answered 'N'. A CancelRequest carries a key that
// gatewayd issued; it is mapped to the upstream backend's own key and sent
// there, and a key gatewayd never issued is dropped and audited.
//
// Messages are read with a bounded length (Options.MaxMessageBytes) before
// anything is allocated. Messages the gateway inspects (Query, Parse, Bind,
// Execute, Close, CommandComplete, ErrorResponse) are read whole within that
// bound; every other message, DataRow and CopyData among them, is streamed
// through a fixed-size buffer, so memory per session does not grow with the
// size of a result or a COPY.
package postgres

// Package ssh is gatewayd's SSH protocol handler: engineers run
// `ssh -p 2222 CONNECTION@gateway` (and scp, sftp, rsync) and get a shell,
// a command or a subsystem on the connection's target as its configured
// user, authenticated upstream with a key or password they never see.
//
//	client                    gatewayd                         target sshd
//	  | -- key exchange ------> | (gateway host key)                |
//	  | -- userauth: key/token> | Host.Authenticate                  |
//	  |                         |   identity from the final success  |
//	  | <- success ------------ |                                    |
//	  | -- channel "session" -> | Host.OpenSession (access, secret)  |
//	  |                         | -- key exchange -----------------> | host key pinned
//	  |                         | -- userauth (injected key/pw) ---> |
//	  |                         | -- channel "session" ------------> |
//	  | -- pty-req/env/shell -> | allow-list, Host.Admit (policy) -> |
//	  | <=== data, both ways ==>| recorded (asciicast), masked  <==> |
//	  | <- exit-status -------- | <--------------------------------- |
//
// The gateway's identity of a client comes only from the authentication
// that succeeded (the Permissions x/crypto/ssh returns for it), never from
// keys merely offered. Port forwarding, agent forwarding, X11 and unknown
// channel types and requests are refused.
package ssh

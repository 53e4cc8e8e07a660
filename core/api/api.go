// Package api is gatewayd's HTTP API: health and Prometheus metrics for
// operators, and the authenticated /v1 endpoints gatewayctl reads sessions,
// statements and the audit log through.
//
// Routes (bodies are JSON, see the types in this package; every error is
// {"error": "..."} with a matching status code):
//
//	GET /healthz               200 "ok", or 503 and the reason      no auth
//	GET /metrics               Prometheus text exposition            no auth
//	GET /v1/whoami             Whoami                                token
//	GET /v1/sessions           SessionList (?limit=N&identity=NAME)  token
//	GET /v1/sessions/{id}      SessionDetail                         token
//	GET /v1/audit/verify       VerifyResult                          admin
//	GET /v1/audit/export       JSON lines (?session_id=ID&kind=K)    admin
//
// With Options.Reviews come access requests and reviews (see reviews.go);
// Options.Routes mounts more routes beside these, such as the login routes
// of package login (POST /v1/login/start, ...; see docs/identity.md).
//
// /v1 requests carry "Authorization: Bearer <token>", the caller's gateway
// token. A missing or wrong token is answered 401 with the same message
// whatever went wrong. Members of Options.AdminGroups see every session and
// the audit log; everyone else sees only their own sessions, and a session
// of someone else is answered 404 like a missing one.
//
// /healthz and /metrics are unauthenticated, and the API speaks plain HTTP
// unless the server is given a TLS configuration: keep the API listener on
// loopback, or give it TLS, so that tokens and metrics stay private.
package api

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gatewayd-access/gatewayd/core/audit"
	"github.com/gatewayd-access/gatewayd/core/recording"
	"github.com/gatewayd-access/gatewayd/core/store"
	"github.com/gatewayd-access/gatewayd/sdk/protocol"
)

// TokenAuthenticator finds the identity a bearer token belongs to.
// *identity.Directory satisfies it.
type TokenAuthenticator interface {
	AuthenticateToken(token string) (protocol.Identity, error)
}

// Options configure the API handler.
type Options struct {
	// Store holds sessions and the audit log. Required.
	Store store.Store
	// Tokens authenticates /v1 callers. Nil refuses every caller.
	Tokens TokenAuthenticator
	// AdminGroups are the groups whose members see everything.
	AdminGroups []string
	// Gatherer is served on /metrics; nil leaves /metrics out.
	Gatherer prometheus.Gatherer
	// Health reports whether the gateway can serve (nil error = healthy),
	// for example the audit writer's Healthy. Nil means always healthy.
	Health func() error
	// Logger receives request logs; nil discards them.
	Logger *slog.Logger
	// Recordings is the directory of session recordings (asciicast v2);
	// "" leaves /v1/sessions/{id}/recording answering 404.
	Recordings string
	// Routes are more handlers by ServeMux pattern ("POST /v1/login/start"),
	// mounted as they are: they authenticate their callers themselves.
	Routes map[string]http.Handler
	// Reviews serves access requests and reviews (reviews.go); nil leaves
	// their routes out.
	Reviews Reviews
}

// Limits of GET /v1/sessions.
const (
	DefaultSessionLimit = 100
	MaxSessionLimit     = 1000
)

// errUnauthorized is the one message of every 401, whatever went wrong, so
// that a caller learns nothing about why its token was refused.
const errUnauthorized = "missing or invalid bearer token"

// errNoSession answers a missing session and someone else's alike.
const errNoSession = "no such session"

type handler struct {
	st     store.Store
	tokens TokenAuthenticator
	admins []string
	health func() error
	log    *slog.Logger
	recs   string
	// reviews serves the review routes, see reviews.go.
	reviews Reviews
}

// caller is an authenticated /v1 caller.
type caller struct {
	id    protocol.Identity
	admin bool
	log   *slog.Logger
}

// New returns the API handler.
func New(opts Options) http.Handler {
	h := &handler{
		st:     opts.Store,
		tokens: opts.Tokens,
		admins: slices.Clone(opts.AdminGroups),
		health: opts.Health,
		log:    opts.Logger,
		recs:   opts.Recordings,

		reviews: opts.Reviews,
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	route := func(path string, hf http.HandlerFunc) {
		mux.Handle("GET "+path, hf) // GET includes HEAD
		// Without a method the pattern is less specific: it catches the
		// other methods, answered 405 in JSON rather than the mux's text.
		mux.HandleFunc(path, methodNotAllowed)
	}
	route("/healthz", h.healthz)
	if opts.Gatherer != nil {
		route("/metrics", promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{
			ErrorLog:      slog.NewLogLogger(h.log.Handler(), slog.LevelError),
			ErrorHandling: promhttp.ContinueOnError,
		}).ServeHTTP)
	}
	route("/v1/whoami", h.auth(h.whoami))
	route("/v1/sessions", h.auth(h.sessions))
	route("/v1/sessions/{id}", h.auth(h.session))
	route("/v1/sessions/{id}/recording", h.auth(h.recording))
	route("/v1/audit/verify", h.auth(h.adminOnly(h.verify)))
	route("/v1/audit/export", h.auth(h.adminOnly(h.export)))
	for pattern, rh := range opts.Routes {
		mux.Handle(pattern, rh)
	}
	h.reviewRoutes(mux, route)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint")
	})
	return h.logRequests(mux)
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Allow", "GET, HEAD")
	writeError(w, http.StatusMethodNotAllowed, "method not allowed")
}

func (h *handler) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if h.health != nil {
		if err := h.health(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "unhealthy: %v\n", err)
			return
		}
	}
	io.WriteString(w, "ok\n")
}

// auth authenticates the bearer token of a /v1 request.
func (h *handler) auth(next func(http.ResponseWriter, *http.Request, *caller)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearerToken(r)
		var id protocol.Identity
		err := errors.New("no bearer token")
		if ok && h.tokens != nil {
			id, err = h.tokens.AuthenticateToken(token)
		}
		if err != nil {
			// The reason stays in the log; the token never goes anywhere.
			h.log.Warn("api: authentication failed", "remote", r.RemoteAddr,
				"path", r.URL.Path, "reason", err)
			w.Header().Set("WWW-Authenticate", `Bearer realm="gatewayd"`)
			writeError(w, http.StatusUnauthorized, errUnauthorized)
			return
		}
		c := &caller{id: id, admin: h.isAdmin(id)}
		c.log = h.log.With("identity", id.Name)
		if lw, ok := w.(*loggingWriter); ok {
			lw.identity = id.Name
		}
		next(w, r, c)
	}
}

func (h *handler) isAdmin(id protocol.Identity) bool {
	return slices.ContainsFunc(id.Groups, func(g string) bool { return slices.Contains(h.admins, g) })
}

// bearerToken returns the token of an "Authorization: Bearer" header. The
// scheme is case-insensitive (RFC 9110); a request with more than one
// Authorization header is refused.
func bearerToken(r *http.Request) (string, bool) {
	vals := r.Header.Values("Authorization")
	if len(vals) != 1 {
		return "", false
	}
	scheme, token, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

func (h *handler) adminOnly(next func(http.ResponseWriter, *http.Request, *caller)) func(http.ResponseWriter, *http.Request, *caller) {
	return func(w http.ResponseWriter, r *http.Request, c *caller) {
		if !c.admin {
			c.log.Warn("api: admin endpoint refused", "path", r.URL.Path)
			writeError(w, http.StatusForbidden, "only members of the admin groups may do this")
			return
		}
		next(w, r, c)
	}
}

func (h *handler) whoami(w http.ResponseWriter, r *http.Request, c *caller) {
	groups := c.id.Groups
	if groups == nil {
		groups = []string{}
	}
	writeJSON(w, http.StatusOK, Whoami{Name: c.id.Name, Email: c.id.Email, Groups: groups, Admin: c.admin})
}

func (h *handler) sessions(w http.ResponseWriter, r *http.Request, c *caller) {
	q := r.URL.Query()
	limit := DefaultSessionLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxSessionLimit {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit must be a number from 1 to %d", MaxSessionLimit))
			return
		}
		limit = n
	}
	f := store.SessionFilter{Identity: q.Get("identity"), Limit: limit}
	if !c.admin {
		// Others see their own sessions only: asking for someone else's
		// finds nothing, as if they had none.
		if f.Identity != "" && f.Identity != c.id.Name {
			writeJSON(w, http.StatusOK, SessionList{Sessions: []Session{}})
			return
		}
		f.Identity = c.id.Name
	}
	list, err := h.st.Sessions(r.Context(), f)
	if err != nil {
		c.log.Error("api: listing sessions", "error", err)
		writeError(w, http.StatusInternalServerError, "listing sessions failed")
		return
	}
	out := SessionList{Sessions: make([]Session, 0, len(list))}
	for _, s := range list {
		out.Sessions = append(out.Sessions, sessionFrom(s))
	}
	writeJSON(w, http.StatusOK, out)
}

// visibleSession reads the session of the request's {id} when the caller
// may see it (an admin, or the session's own identity); otherwise it answers
// the request itself, the same 404 for a missing session and someone else's.
func (h *handler) visibleSession(w http.ResponseWriter, r *http.Request, c *caller) (store.Session, bool) {
	id := r.PathValue("id")
	s, err := h.st.Session(r.Context(), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, errNoSession)
		return s, false
	case err != nil:
		c.log.Error("api: reading session", "session", id, "error", err)
		writeError(w, http.StatusInternalServerError, "reading the session failed")
		return s, false
	case !c.admin && s.Identity != c.id.Name:
		writeError(w, http.StatusNotFound, errNoSession)
		return s, false
	}
	return s, true
}

// recording serves a session's recording as it is stored (asciicast v2),
// to an admin or the session's own identity.
func (h *handler) recording(w http.ResponseWriter, r *http.Request, c *caller) {
	s, ok := h.visibleSession(w, r, c)
	if !ok {
		return
	}
	id := s.ID
	if h.recs == "" {
		writeError(w, http.StatusNotFound, "the session has no recording")
		return
	}
	f, err := os.Open(recording.Path(h.recs, s.ID))
	if errors.Is(err, fs.ErrNotExist) {
		writeError(w, http.StatusNotFound, "the session has no recording")
		return
	}
	if err != nil {
		c.log.Error("api: opening recording", "session", id, "error", err)
		writeError(w, http.StatusInternalServerError, "reading the recording failed")
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/x-asciicast")
	w.Header().Set("Cache-Control", "no-store")
	if _, err := io.Copy(w, f); err != nil {
		c.log.Warn("api: sending recording", "session", id, "error", err)
	}
}

// session answers a SessionDetail. The statements are streamed as they are
// read from the store, so that a session of millions of statements does not
// have to fit in memory.
func (h *handler) session(w http.ResponseWriter, r *http.Request, c *caller) {
	s, ok := h.visibleSession(w, r, c)
	if !ok {
		return
	}
	id := s.ID

	sw := &startedWriter{w: w, header: func() {
		setJSONHeaders(w)
		w.WriteHeader(http.StatusOK)
	}}
	bw := bufio.NewWriterSize(sw, 32<<10)
	head, err := json.Marshal(sessionFrom(s))
	if err != nil {
		panic(err) // plain fields; cannot fail
	}
	bw.WriteString(`{"session":`)
	bw.Write(head)
	bw.WriteString(`,"statements":[`)
	n := 0
	err = h.st.Events(r.Context(), store.EventFilter{SessionID: id, Kind: audit.KindRequest}, func(ev store.Event) error {
		st, derr := statementFrom(ev)
		if derr != nil {
			c.log.Warn("api: request event does not decode", "seq", ev.Seq, "session", id, "error", derr)
		}
		b, err := json.Marshal(st)
		if err != nil {
			return fmt.Errorf("encoding statement %d: %w", ev.Seq, err)
		}
		if n > 0 {
			bw.WriteByte(',')
		}
		n++
		_, err = bw.Write(b)
		return err
	})
	if err == nil {
		bw.WriteString("]}\n")
		err = bw.Flush()
	}
	if err != nil {
		h.failStream(w, r, c, sw.started, "reading the session's statements failed", err)
	}
}

func (h *handler) verify(w http.ResponseWriter, r *http.Request, c *caller) {
	res, err := audit.Verify(r.Context(), h.st)
	if err != nil {
		c.log.Error("api: verifying audit log", "error", err)
		writeError(w, http.StatusInternalServerError, "reading the audit log failed")
		return
	}
	if !res.OK {
		c.log.Warn("api: audit chain broken", "first_broken", res.FirstBroken, "reason", res.Reason)
	}
	writeJSON(w, http.StatusOK, VerifyResultOf(res))
}

// export streams the audit log as JSON lines. Only an export without
// filters can be verified offline.
func (h *handler) export(w http.ResponseWriter, r *http.Request, c *caller) {
	q := r.URL.Query()
	f := store.EventFilter{SessionID: q.Get("session_id"), Kind: q.Get("kind")}
	c.log.Info("api: exporting audit log", "session_id", f.SessionID, "kind", f.Kind)
	sw := &startedWriter{w: w, header: func() {
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
	}}
	err := audit.Export(r.Context(), h.st, sw, f)
	if err == nil && !sw.started {
		sw.header() // an empty log: an empty export
	}
	if err != nil {
		h.failStream(w, r, c, sw.started, "exporting the audit log failed", err)
	}
}

// failStream ends a streamed response that failed. Before anything was sent
// it is an ordinary 500; after, the status is gone, so the connection is cut
// short: the client sees a truncated body (an unexpected EOF), never a body
// that looks complete.
func (h *handler) failStream(w http.ResponseWriter, r *http.Request, c *caller, started bool, msg string, err error) {
	if r.Context().Err() != nil {
		c.log.Info("api: client went away", "path", r.URL.Path, "error", err)
	} else {
		c.log.Error("api: "+msg, "path", r.URL.Path, "error", err)
	}
	if !started {
		writeError(w, http.StatusInternalServerError, msg)
		return
	}
	panic(http.ErrAbortHandler)
}

// startedWriter sends the response header on the first write, so that a
// stream that fails before writing anything can still answer 500.
type startedWriter struct {
	w       http.ResponseWriter
	header  func()
	started bool
}

func (s *startedWriter) Write(p []byte) (int, error) {
	if !s.started {
		s.started = true
		s.header()
	}
	return s.w.Write(p)
}

func setJSONHeaders(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"encoding the response failed"}`)
	}
	setJSONHeaders(w)
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, Error{Error: msg})
}

// logRequests logs every request once it is answered: /v1 at info, the
// health and metrics probes at debug. Headers are never logged.
func (h *handler) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		lw := &loggingWriter{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			level := slog.LevelInfo
			if !strings.HasPrefix(r.URL.Path, "/v1/") {
				level = slog.LevelDebug
			}
			attrs := []any{"method", r.Method, "path", r.URL.Path, "status", lw.status,
				"bytes", lw.bytes, "duration", time.Since(start), "remote", r.RemoteAddr}
			if lw.identity != "" {
				attrs = append(attrs, "identity", lw.identity)
			}
			h.log.Log(r.Context(), level, "api: request", attrs...)
		}()
		next.ServeHTTP(lw, r)
	})
}

// loggingWriter records what the response was, for the request log.
type loggingWriter struct {
	http.ResponseWriter
	status   int
	bytes    int64
	identity string
	wrote    bool
}

func (l *loggingWriter) WriteHeader(code int) {
	if !l.wrote {
		l.status, l.wrote = code, true
	}
	l.ResponseWriter.WriteHeader(code)
}

func (l *loggingWriter) Write(p []byte) (int, error) {
	l.wrote = true
	n, err := l.ResponseWriter.Write(p)
	l.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (l *loggingWriter) Unwrap() http.ResponseWriter { return l.ResponseWriter }

// Flush passes flushes through (promhttp and streaming responses use it).
func (l *loggingWriter) Flush() {
	if f, ok := l.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

var (
	_ TokenAuthenticator = TokenAuthenticatorFunc(nil)
	_ http.Flusher       = (*loggingWriter)(nil)
)

// TokenAuthenticatorFunc adapts a function to a TokenAuthenticator.
type TokenAuthenticatorFunc func(token string) (protocol.Identity, error)

// AuthenticateToken calls f.
func (f TokenAuthenticatorFunc) AuthenticateToken(token string) (protocol.Identity, error) {
	return f(token)
}

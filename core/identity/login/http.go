package login

import (
	"encoding/json"
	"errors"
	"html"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/gatewayd-access/gatewayd/core/identity"
)

// maxBody bounds a login request's body.
const maxBody = 16 << 10

// Routes returns the login routes to mount on the API (method and path
// patterns of net/http.ServeMux):
//
//	POST /v1/login/start        StartRequest -> StartResponse           no auth
//	GET  /v1/login/callback     the provider's redirect; 302 to gatewayctl
//	POST /v1/login/finish       FinishRequest -> Result                 no auth (verifier)
//	POST /v1/login/device       DeviceRequest -> DeviceResponse         no auth
//	POST /v1/login/device/poll  PollRequest -> Result, or 202 Pending   no auth (verifier)
//	POST /v1/logout             revokes the bearer token; 204           token
//	GET  /v1/connections        ConnectionList                          token
//
// Other methods on these paths are answered 405 with a JSON error, like the
// rest of the API.
func (s *Service) Routes() map[string]http.Handler {
	routes := map[string]http.Handler{
		"POST /v1/login/start":       http.HandlerFunc(s.handleStart),
		"GET /v1/login/callback":     http.HandlerFunc(s.handleCallback),
		"POST /v1/login/finish":      http.HandlerFunc(s.handleFinish),
		"POST /v1/login/device":      http.HandlerFunc(s.handleDevice),
		"POST /v1/login/device/poll": http.HandlerFunc(s.handlePoll),
		"POST /v1/logout":            http.HandlerFunc(s.handleLogout),
		"GET /v1/connections":        http.HandlerFunc(s.handleConnections),
	}
	for pattern := range maps.Clone(routes) {
		method, path, _ := strings.Cut(pattern, " ")
		routes[path] = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", method)
			writeJSON(w, http.StatusMethodNotAllowed, apiError{"method not allowed"})
		})
	}
	return routes
}

func (s *Service) handleStart(w http.ResponseWriter, r *http.Request) {
	var req StartRequest
	if !readJSON(w, r, &req) {
		return
	}
	resp, err := s.Start(r.Context(), req, r.RemoteAddr)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Service) handleCallback(w http.ResponseWriter, r *http.Request) {
	to, err := s.Callback(r.Context(), r.URL.Query())
	if err != nil {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, "<!DOCTYPE html><title>gatewayd login</title><p>Login failed: "+html.EscapeString(reason(err))+"</p>\n")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, to, http.StatusFound)
}

func (s *Service) handleFinish(w http.ResponseWriter, r *http.Request) {
	var req FinishRequest
	if !readJSON(w, r, &req) {
		return
	}
	res, err := s.Finish(r.Context(), req, r.RemoteAddr)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Service) handleDevice(w http.ResponseWriter, r *http.Request) {
	var req DeviceRequest
	if !readJSON(w, r, &req) {
		return
	}
	resp, err := s.StartDevice(r.Context(), req, r.RemoteAddr)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Service) handlePoll(w http.ResponseWriter, r *http.Request) {
	var req PollRequest
	if !readJSON(w, r, &req) {
		return
	}
	res, err := s.Poll(r.Context(), req, r.RemoteAddr)
	switch {
	case err != nil:
		writeErr(w, err)
	case res == nil:
		writeJSON(w, http.StatusAccepted, Pending{Status: "pending"})
	default:
		writeJSON(w, http.StatusOK, res)
	}
}

func (s *Service) handleLogout(w http.ResponseWriter, r *http.Request) {
	token, ok := bearer(r)
	if !ok || !strings.HasPrefix(token, identity.IssuedPrefix) {
		writeJSON(w, http.StatusUnauthorized, apiError{"logout needs a token issued by gatewayctl login (static tokens are revoked by removing them from gateway.toml)"})
		return
	}
	if err := s.Logout(r.Context(), token, r.RemoteAddr); err != nil {
		if !errors.Is(err, identity.ErrUnauthenticated) {
			writeJSON(w, http.StatusInternalServerError, apiError{"logout: " + strings.TrimPrefix(err.Error(), "identity: ")})
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="gatewayd"`)
		writeJSON(w, http.StatusUnauthorized, apiError{"missing or invalid bearer token"})
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Service) handleConnections(w http.ResponseWriter, r *http.Request) {
	token, ok := bearer(r)
	if !ok || s.opts.Directory == nil {
		writeJSON(w, http.StatusUnauthorized, apiError{"missing or invalid bearer token"})
		return
	}
	id, err := s.opts.Directory.AuthenticateToken(token)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="gatewayd"`)
		writeJSON(w, http.StatusUnauthorized, apiError{"missing or invalid bearer token"})
		return
	}
	list := ConnectionList{Connections: []Connection{}}
	for _, c := range s.opts.Connections {
		if identity.InAnyGroup(id, c.AllowGroups) {
			list.Connections = append(list.Connections, Connection{Name: c.Name, Protocol: c.Protocol, Port: s.opts.Listeners[c.Protocol]})
		}
	}
	slices.SortFunc(list.Connections, func(a, b Connection) int { return strings.Compare(a.Name, b.Name) })
	writeJSON(w, http.StatusOK, list)
}

// apiError is the API's error body ({"error": "..."}).
type apiError struct {
	Error string `json:"error"`
}

func bearer(r *http.Request) (string, bool) {
	vals := r.Header.Values("Authorization")
	if len(vals) != 1 {
		return "", false
	}
	scheme, tok, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	if err := dec.Decode(v); err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{"the request body is not the expected JSON: " + err.Error()})
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeErr answers a refusal 400 (403 for a verifier mismatch) and an
// unreachable provider 502, with the reason.
func writeErr(w http.ResponseWriter, err error) {
	var r *Refusal
	switch {
	case errors.As(err, &r):
		writeJSON(w, http.StatusBadRequest, apiError{r.Reason})
	case errors.Is(err, ErrUnreachable):
		writeJSON(w, http.StatusBadGateway, apiError{err.Error()})
	default:
		writeJSON(w, http.StatusInternalServerError, apiError{"login failed: " + err.Error()})
	}
}

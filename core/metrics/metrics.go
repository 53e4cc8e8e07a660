// Package metrics defines gatewayd's Prometheus metrics: sessions, bytes,
// statements, authentication failures and upstream errors.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics holds every collector, registered on its own registry.
type Metrics struct {
	Registry *prometheus.Registry

	SessionsTotal    *prometheus.CounterVec // protocol, connection
	SessionsActive   *prometheus.GaugeVec   // protocol
	Bytes            *prometheus.CounterVec // protocol, direction
	Requests         *prometheus.CounterVec // protocol, outcome
	AuthFailures     *prometheus.CounterVec // protocol
	AccessDenied     *prometheus.CounterVec // protocol
	UpstreamErrors   *prometheus.CounterVec // protocol, connection
	AuditEvents      prometheus.Counter
	AuditUnavailable prometheus.Gauge
	PolicyVerdicts   *prometheus.CounterVec // protocol, verdict
	ModuleFaults     *prometheus.CounterVec // module, fault
	ReviewEvents     *prometheus.CounterVec // event
}

// New creates and registers the collectors, plus the Go and process
// collectors.
func New() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		SessionsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatewayd_sessions_total", Help: "Sessions opened, by protocol and connection.",
		}, []string{"protocol", "connection"}),
		SessionsActive: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gatewayd_sessions_active", Help: "Sessions open now.",
		}, []string{"protocol"}),
		Bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatewayd_bytes_total", Help: "Bytes relayed, by direction (in: client to target; out: target to client), counted at session end.",
		}, []string{"protocol", "direction"}),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatewayd_requests_total", Help: "Requests (SQL statements, commands) by outcome.",
		}, []string{"protocol", "outcome"}),
		AuthFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatewayd_auth_failures_total", Help: "Failed client authentications.",
		}, []string{"protocol"}),
		AccessDenied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatewayd_access_denied_total", Help: "Sessions refused because the identity may not use the connection.",
		}, []string{"protocol"}),
		UpstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatewayd_upstream_errors_total", Help: "Failures to connect or authenticate to a target.",
		}, []string{"protocol", "connection"}),
		AuditEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatewayd_audit_events_total", Help: "Audit events queued.",
		}),
		AuditUnavailable: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatewayd_audit_unavailable", Help: "1 while the audit log cannot be written (requests are refused).",
		}),
		PolicyVerdicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatewayd_policy_refusals_total", Help: "Requests not allowed, by verdict (deny, review, terminate).",
		}, []string{"protocol", "verdict"}),
		ModuleFaults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatewayd_module_faults_total", Help: "Module calls that trapped, timed out, ran out of memory or answered nonsense.",
		}, []string{"module", "fault"}),
	}
	m.ReviewEvents = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatewayd_review_events_total", Help: "Review steps by audit event kind: review.request, review.hold, review.approve, review.deny, review.release, review.timeout, review.cancel, review.expire.",
	}, []string{"event"})
	r.MustRegister(m.ReviewEvents)
	r.MustRegister(m.PolicyVerdicts, m.ModuleFaults, m.SessionsTotal, m.SessionsActive, m.Bytes, m.Requests, m.AuthFailures,
		m.AccessDenied, m.UpstreamErrors, m.AuditEvents, m.AuditUnavailable,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

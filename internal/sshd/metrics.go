package sshd

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	gossh "golang.org/x/crypto/ssh"
)

// authMethods are the values of apptokens_ssh_auth_failures_total's "method"
// label: the methods clients try, and "other" for any name a client makes up.
var authMethods = [...]string{"publickey", "password", "keyboard-interactive", "other"}

// metrics are the SSH server's Prometheus metrics; a nil *metrics records
// nothing.
type metrics struct {
	sessions     prometheus.Gauge
	authFailures [len(authMethods)]prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{sessions: prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "apptokens_ssh_sessions_open",
		Help: "SSH sessions (TUI or command channels) open now.",
	})}
	failures := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "apptokens_ssh_auth_failures_total",
		Help: "Failed SSH authentication attempts, by method (publickey, password, keyboard-interactive, other); the \"none\" probe every client starts with is not counted.",
	}, []string{"method"})
	for i, name := range authMethods {
		m.authFailures[i] = failures.WithLabelValues(name)
	}
	for _, c := range []prometheus.Collector{m.sessions, failures} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// authAttempt counts a failed attempt of method. A "none" request is how a
// client asks which methods there are, not an attempt.
func (m *metrics) authAttempt(method string, err error) {
	if m == nil || err == nil || method == "none" && errors.Is(err, gossh.ErrNoAuth) {
		return
	}
	i := len(authMethods) - 1
	for j, name := range authMethods[:i] {
		if method == name {
			i = j
		}
	}
	m.authFailures[i].Inc()
}

func (m *metrics) sessionOpened() {
	if m != nil {
		m.sessions.Inc()
	}
}

func (m *metrics) sessionClosed() {
	if m != nil {
		m.sessions.Dec()
	}
}

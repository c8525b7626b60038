package main

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

var metricsAddrRe = regexp.MustCompile(`apptokens serve started.* metrics=(\S+)`)

func scrapeMetrics(t *testing.T, addr string) (int, string) {
	t.Helper()
	res, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(body)
}

// serve answers GET /metrics on the gate's listener, counting the gate's own
// answers; with --metrics ADDR it answers there instead, and /metrics on the
// gate's listener is 404 not_found.
func TestServeMetrics(t *testing.T) {
	s := startServe(t)
	gateGet(t, s.httpAddr, "/auth", "")
	// One admin command, and a stranger's key refused once.
	if _, errOut, code := s.ssh("list"); code != 0 {
		t.Fatal(errOut)
	}
	stranger := newClientKey(t, t.TempDir(), "stranger")
	if _, _, code := s.sshAs(stranger, "admin", "list"); code == 0 {
		t.Fatal("an unknown key was let in")
	}
	code, body := scrapeMetrics(t, s.httpAddr)
	for _, want := range []string{
		`apptokens_gate_requests_total{path="/auth",reason="missing_token"} 1`,
		`apptokens_ssh_auth_failures_total{method="publickey"} 1`,
		`apptokens_ssh_auth_failures_total{method="password"} 0`,
		"apptokens_ssh_sessions_open 0", // the command's session has ended
		"go_goroutines", "process_resident_memory_bytes",
	} {
		if code != 200 || !strings.Contains(body, want) {
			t.Fatalf("/metrics on the gate's listener: %d, no %q in\n%s", code, want, body)
		}
	}

	moved := startServe(t, "--metrics", "127.0.0.1:0")
	m := metricsAddrRe.FindStringSubmatch(moved.logs.String())
	if m == nil || m[1] == moved.httpAddr {
		t.Fatalf("serve did not say where the metrics are:\n%s", moved.logs.String())
	}
	gateGet(t, moved.httpAddr, "/auth", "")
	if r := gateGet(t, moved.httpAddr, "/metrics", ""); r.StatusCode != 404 || r.Header.Get("X-Apptokens-Reason") != "not_found" {
		t.Errorf("/metrics on the gate's listener with --metrics: %d %q", r.StatusCode, r.Header.Get("X-Apptokens-Reason"))
	}
	code, body = scrapeMetrics(t, m[1])
	if code != 200 || !strings.Contains(body, `apptokens_gate_requests_total{path="/auth",reason="missing_token"} 1`) ||
		!strings.Contains(body, `apptokens_gate_requests_total{path="other",reason="not_found"} 1`) {
		t.Fatalf("/metrics on --metrics %s: %d\n%s", m[1], code, body)
	}
}

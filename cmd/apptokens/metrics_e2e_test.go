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
	code, body := scrapeMetrics(t, s.httpAddr)
	if code != 200 || !strings.Contains(body, `apptokens_gate_requests_total{path="/auth",reason="missing_token"} 1`) ||
		!strings.Contains(body, "go_goroutines") || !strings.Contains(body, "process_resident_memory_bytes") {
		t.Fatalf("/metrics on the gate's listener: %d\n%s", code, body)
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

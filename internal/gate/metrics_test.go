package gate

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/apptokens/apptokens/store"
)

// newMetricsGate is a gate with its metrics in a registry of its own, served
// at /metrics of its handler when onListener.
func newMetricsGate(t *testing.T, s *store.Store, onListener bool, cfg Config) (*Gate, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg.Store, cfg.Metrics = s, reg
	if onListener {
		cfg.MetricsHandler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	}
	return newGate(t, cfg), reg
}

// scrape GETs url and returns the exposition and its samples by series
// ("name{labels}" as written).
func scrape(t *testing.T, url string) (string, map[string]float64) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, res.StatusCode, body)
	}
	samples := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("sample %q: %v", line, err)
		}
		samples[line[:i]] = v
	}
	return string(body), samples
}

// After known traffic over real HTTP, /metrics counts each request under its
// reason and access path, and no label value holds a token, a name or an IP.
func TestGateMetricsScrape(t *testing.T) {
	s := openStore(t, nil)
	sd := create(t, s, "feed-prod", store.AccessSecurityDirector)
	both := create(t, s, "secret-name-7", store.AccessSecurityDirector, store.AccessThirdPartyFeeds)
	off := create(t, s, "retired-one", store.AccessThirdPartyFeeds)
	if _, err := s.SetActive(admin, []string{"retired-one"}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetBlocked(admin, "secret-name-7", []string{"203.0.113.66"}, true); err != nil {
		t.Fatal(err)
	}
	g, _ := newMetricsGate(t, s, true, Config{TrustedProxies: []netip.Prefix{mustPrefix("127.0.0.0/8")}})
	srv := httptest.NewServer(g.Handler())
	defer srv.Close()

	send := func(path, authz, ip string, want int) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		req.Header.Set("X-Forwarded-For", ip)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != want {
			t.Fatalf("%s: %d, want %d", path, res.StatusCode, want)
		}
	}
	type series struct{ reason, path string }
	sent := map[series]int{}
	traffic := []struct {
		path, authz, ip string
		n, code         int
		reason, label   string
	}{
		{"/auth", "Bearer " + sd, "198.51.100.11", 5, 200, "ok", "/auth"},
		{"/auth/security-director", "Bearer " + both, "198.51.100.12", 3, 200, "ok", "/auth/security-director"},
		{"/auth/security-director/v1/x", "Bearer " + sd, "198.51.100.11", 2, 200, "ok", "/auth/security-director"},
		{"/auth/third-party-feeds", "Bearer " + sd, "198.51.100.13", 4, 403, "insufficient_access", "/auth/third-party-feeds"},
		{"/auth", "", "198.51.100.14", 6, 401, "missing_token", "/auth"},
		{"/auth", "Bearer " + sd[:30], "198.51.100.15", 2, 401, "malformed_token", "/auth"},
		{"/auth/third-party-feeds", "Bearer " + off, "198.51.100.16", 3, 401, "inactive_token", "/auth/third-party-feeds"},
		{"/auth", "Bearer " + both, "203.0.113.66", 7, 403, "ip_blocked", "/auth"},
		{"/auth/feed-prod", "Bearer " + sd, "198.51.100.17", 2, 403, "insufficient_access", "other"},
		{"/secret-name-7", "Bearer " + sd, "198.51.100.18", 3, 404, "not_found", "other"},
	}
	for _, tr := range traffic {
		for range tr.n {
			send(tr.path, tr.authz, tr.ip, tr.code)
		}
		sent[series{tr.reason, tr.label}] += tr.n
	}

	body, samples := scrape(t, srv.URL+"/metrics")
	for _, r := range reasonNames {
		for _, p := range pathNames {
			key := `apptokens_gate_requests_total{path="` + p + `",reason="` + r + `"}`
			if got, want := samples[key], float64(sent[series{r, p}]); got != want {
				t.Errorf("%s = %v, want %v", key, got, want)
			}
		}
	}
	verified := 0
	for k, n := range sent {
		if k.reason != "not_found" {
			verified += n
		}
	}
	// Verification is timed for a sample of the requests (sampleVerify).
	if got := samples["apptokens_gate_verify_duration_seconds_count"]; got > float64(verified) {
		t.Errorf("verify latency observations %v, more than the %d verified requests", got, verified)
	}
	if got := samples["apptokens_index_tokens"]; got != 3 {
		t.Errorf("apptokens_index_tokens = %v, want 3", got)
	}
	if got := samples["apptokens_usage_pending_pairs"]; got == 0 {
		t.Error("apptokens_usage_pending_pairs = 0 before any flush")
	}
	if err := g.Flush(); err != nil {
		t.Fatal(err)
	}
	_, after := scrape(t, srv.URL+"/metrics")
	if after["apptokens_usage_pending_pairs"] != 0 || after["apptokens_usage_flush_duration_seconds_count"] != 1 {
		t.Errorf("after one flush: pending %v, flushes %v", after["apptokens_usage_pending_pairs"], after["apptokens_usage_flush_duration_seconds_count"])
	}

	// Nothing secret or identifying in the exposition: no token, no token
	// name, no client address.
	forbidden := []string{sd, both, off, sd[:30], "feed-prod", "secret-name-7", "retired-one", "203.0.113.66", "198.51.100.", "127.0.0.1"}
	for _, f := range forbidden {
		if strings.Contains(body, f) {
			t.Errorf("the exposition holds %q", f)
		}
	}
}

// Without a metrics handler (serve --metrics ADDR serves them elsewhere),
// /metrics on the gate's listener is 404 not_found in the form of the denials.
func TestGateMetricsElsewhere(t *testing.T) {
	s := openStore(t, nil)
	g, reg := newMetricsGate(t, s, false, Config{})
	srv := httptest.NewServer(g.Handler())
	defer srv.Close()
	res, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 404 || res.Header.Get("X-Apptokens-Reason") != "not_found" || string(body) != `{"error":"not_found"}`+"\n" {
		t.Errorf("/metrics on the gate: %d %q %q", res.StatusCode, res.Header.Get("X-Apptokens-Reason"), body)
	}
	other := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer other.Close()
	_, samples := scrape(t, other.URL)
	if got := samples[`apptokens_gate_requests_total{path="other",reason="not_found"}`]; got != 1 {
		t.Errorf("not_found counted %v times on the other address, want 1", got)
	}
}

// Two gates in one process keep their own metrics (no global registry).
func TestGateMetricsPerGate(t *testing.T) {
	s := openStore(t, nil)
	a, _ := newMetricsGate(t, s, true, Config{})
	b, _ := newMetricsGate(t, s, true, Config{})
	for range 3 {
		w := httptest.NewRecorder()
		a.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/auth", nil))
	}
	w := httptest.NewRecorder()
	b.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if !strings.Contains(w.Body.String(), `apptokens_gate_requests_total{path="/auth",reason="missing_token"} 0`) {
		t.Errorf("gate b counts gate a's requests:\n%s", w.Body.String())
	}
}

// sampleVerify times one verification in 8, whatever the start times.
func TestSampleVerify(t *testing.T) {
	n := 0
	for now := int64(1_700_000_000_000_000_000); now < 1_700_000_000_000_000_000+1<<20; now += 7 {
		if sampleVerify(now) {
			n++
		}
	}
	if total := (1 << 20) / 7; n < total/8-total/100 || n > total/8+total/100 {
		t.Errorf("%d of %d timed, want about one in 8", n, total)
	}
}

// With the caller's clock (tests), every verification is timed.
func TestGateMetricsVerifyTimedWithOwnClock(t *testing.T) {
	c := newClock()
	s := openStore(t, c.Now)
	g, reg := newMetricsGate(t, s, false, Config{Now: c.Now})
	for range 5 {
		g.Handler().ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/auth", nil))
	}
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	if _, samples := scrape(t, srv.URL); samples["apptokens_gate_verify_duration_seconds_count"] != 5 {
		t.Errorf("%v verifications timed, want 5", samples["apptokens_gate_verify_duration_seconds_count"])
	}
}

package gate

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apptokens/apptokens/internal/secret"
	"github.com/apptokens/apptokens/store"
)

// report POSTs a form body to /revoke, from the address ip (X-Forwarded-For
// through a trusted proxy) when not empty.
func report(t *testing.T, c *http.Client, base, body, ip string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/revoke", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if ip != "" {
		req.Header.Set("X-Forwarded-For", ip)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// sameAnswer checks that two answers are alike for a client: status, body,
// and every header but Date.
func sameAnswer(t *testing.T, what string, a, b answer) {
	t.Helper()
	if a.status != b.status || a.body != b.body {
		t.Errorf("%s: %d %q, want %d %q", what, b.status, b.body, a.status, a.body)
	}
	ha, hb := a.header.Clone(), b.header.Clone()
	ha.Del("Date")
	hb.Del("Date")
	if fmt.Sprint(ha) != fmt.Sprint(hb) {
		t.Errorf("%s: headers %v, want %v", what, hb, ha)
	}
}

// TestGateRevoke: a report of a valid token deactivates it and the next
// /auth is 401 inactive_token; the audit trail names the reporter's address.
// Junk, an unknown token, a repeat, an empty body and a body over the limit
// all get the very same 200.
func TestGateRevoke(t *testing.T) {
	clk := newClock()
	s := openStore(t, clk.Now)
	leaked := create(t, s, "leaked", store.AccessSecurityDirector)
	other := create(t, s, "other", store.AccessSecurityDirector)
	g := newGate(t, Config{Store: s, Now: clk.Now, TrustedProxies: []netip.Prefix{mustPrefix("127.0.0.0/8")}})
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(srv.Close)
	c := srv.Client()

	if a := call(t, c, srv.URL+"/auth", "Bearer "+leaked); a.status != 200 {
		t.Fatalf("before the report: %d", a.status)
	}
	first := report(t, c, srv.URL, "token="+url.QueryEscape(leaked), "198.51.100.23")
	if first.status != 200 || first.body != "" || first.header.Get("X-Apptokens-Reason") != "ok" {
		t.Fatalf("report: %d %q %v", first.status, first.body, first.header)
	}
	wantDenial(t, call(t, c, srv.URL+"/auth", "Bearer "+leaked), 401, "inactive_token", challengeInvalidToken)
	if a := call(t, c, srv.URL+"/auth", "Bearer "+other); a.status != 200 {
		t.Errorf("another token: %d", a.status)
	}
	events, err := s.Audit(0)
	if err != nil {
		t.Fatal(err)
	}
	found := slices.ContainsFunc(events, func(e store.Event) bool {
		return e.Action == store.ActionRevokedByReport && e.Token == "leaked" && strings.Contains(e.Details, "198.51.100.23")
	})
	if !found {
		t.Errorf("no revoked_by_report event naming the reporter: %+v", events)
	}
	for _, e := range events {
		if strings.Contains(e.Details, leaked) || strings.Contains(e.Actor, leaked) {
			t.Errorf("the secret is in the audit trail: %+v", e)
		}
	}

	unknown, err := secret.Generate()
	if err != nil {
		t.Fatal(err)
	}
	for what, body := range map[string]string{
		"repeat":        "token=" + leaked,
		"unknown token": "token=" + unknown.Reveal(),
		"junk":          "token=nonsense",
		"bad checksum":  "token=" + leaked[:len(leaked)-1] + map[bool]string{true: "b", false: "a"}[leaked[len(leaked)-1] == 'a'],
		"no token":      "",
		"other field":   "token_type_hint=access_token",
		"over the size": "token=" + other + "&pad=" + strings.Repeat("x", maxRevokeBody),
	} {
		sameAnswer(t, what, first, report(t, c, srv.URL, body, "198.51.100.24"))
	}
	// The body over the limit was not read: the token in it still works.
	if a := call(t, c, srv.URL+"/auth", "Bearer "+other); a.status != 200 {
		t.Errorf("a token in a body over the limit was revoked: %d", a.status)
	}
	// Only POST reports.
	wantDenial(t, call(t, c, srv.URL+"/revoke", ""), 404, "not_found", "")
}

// TestGateRevokeRateLimited: the 101st report from one address within a
// minute is refused (403 rate_limited) and revokes nothing; other addresses
// are not affected; the address may report again once the window has room.
func TestGateRevokeRateLimited(t *testing.T) {
	clk := newClock()
	s := openStore(t, clk.Now)
	tok := create(t, s, "late", store.AccessSecurityDirector)
	g := newGate(t, Config{Store: s, Now: clk.Now, TrustedProxies: []netip.Prefix{mustPrefix("127.0.0.0/8")}})
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(srv.Close)
	c := srv.Client()
	for i := range reportBurst {
		if a := report(t, c, srv.URL, "token=junk", "203.0.113.5"); a.status != 200 {
			t.Fatalf("report %d: %d", i+1, a.status)
		}
		clk.Add(reportWindow / reportBurst / 2) // 100 reports in 30 s
	}
	a := report(t, c, srv.URL, "token="+tok, "203.0.113.5")
	wantDenial(t, a, 403, "rate_limited", "")
	if a := call(t, c, srv.URL+"/auth", "Bearer "+tok); a.status != 200 {
		t.Errorf("a refused report revoked the token: %d", a.status)
	}
	// IPv6 addresses count by /64; another address is not limited.
	if a := report(t, c, srv.URL, "token=junk", "203.0.113.6"); a.status != 200 {
		t.Errorf("another address: %d", a.status)
	}
	// The first report leaves the window 30 s on: one more is taken then.
	clk.Add(reportWindow/2 - reportWindow/reportBurst/2)
	wantDenial(t, report(t, c, srv.URL, "token=junk", "203.0.113.5"), 403, "rate_limited", "")
	clk.Add(reportWindow / reportBurst / 2)
	if a := report(t, c, srv.URL, "token="+tok, "203.0.113.5"); a.status != 200 {
		t.Errorf("a minute after the first report: %d", a.status)
	}
	wantDenial(t, call(t, c, srv.URL+"/auth", "Bearer "+tok), 401, "inactive_token", challengeInvalidToken)
}

// The limiter keeps at most maxReporters addresses, however many report; an
// IPv6 /64 counts as one address.
func TestReportLimiterBounded(t *testing.T) {
	var l reportLimiter
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	for i := range 3 * maxReporters {
		ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if !l.allow(ip, now) {
			t.Fatalf("first report of %v refused", ip)
		}
		if n := len(l.times); n > maxReporters {
			t.Fatalf("%d addresses kept, bound %d", n, maxReporters)
		}
	}
	var six reportLimiter
	for i := range reportBurst {
		ip := netip.MustParseAddr(fmt.Sprintf("2001:db8:1:2::%x", i+1))
		if !six.allow(ip, now) {
			t.Fatalf("report %d refused", i+1)
		}
	}
	if six.allow(netip.MustParseAddr("2001:db8:1:2:ffff::1"), now) {
		t.Error("the 101st report from one /64 was allowed")
	}
	if !six.allow(netip.MustParseAddr("2001:db8:1:3::1"), now) {
		t.Error("another /64 was refused")
	}
}

// Reports are counted on /metrics under the /revoke path, taken or refused,
// and no series names the reported token.
func TestGateRevokeMetrics(t *testing.T) {
	s := openStore(t, nil)
	tok := create(t, s, "leak-zq7", store.AccessSecurityDirector)
	g, _ := newMetricsGate(t, s, true, Config{})
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(srv.Close)
	for range reportBurst + 2 {
		report(t, srv.Client(), srv.URL, "token="+tok, "")
	}
	body, samples := scrape(t, srv.URL+"/metrics")
	if n := samples[`apptokens_gate_requests_total{path="/revoke",reason="ok"}`]; n != reportBurst {
		t.Errorf("reports taken: %v, want %d", n, reportBurst)
	}
	if n := samples[`apptokens_gate_requests_total{path="/revoke",reason="rate_limited"}`]; n != 2 {
		t.Errorf("reports refused: %v, want 2", n)
	}
	if strings.Contains(body, "leak-zq7") || strings.Contains(body, tok[5:20]) {
		t.Error("a metric names the token")
	}
}

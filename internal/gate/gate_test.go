package gate

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apptokens/apptokens/internal/secret"
	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/storetest"
)

// answer is what a client got from the gate.
type answer struct {
	status int
	header http.Header
	body   string
}

// call sends one request with an optional Authorization header and extra
// headers, whose names go on the wire exactly as spelled here.
func call(t *testing.T, c *http.Client, url, authz string, hdr ...string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header[hdr[i]] = append(req.Header[hdr[i]], hdr[i+1])
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

// wantDenial checks a denial's status, reason, challenge and JSON body.
func wantDenial(t *testing.T, a answer, status int, reason, challenge string) {
	t.Helper()
	if a.status != status {
		t.Errorf("status %d, want %d (reason %q)", a.status, status, a.header.Get("X-Apptokens-Reason"))
	}
	if got := a.header.Get("X-Apptokens-Reason"); got != reason {
		t.Errorf("X-Apptokens-Reason %q, want %q", got, reason)
	}
	if got := a.header.Values("WWW-Authenticate"); challenge == "" && len(got) > 0 || challenge != "" && (len(got) != 1 || got[0] != challenge) {
		t.Errorf("WWW-Authenticate %q, want %q", got, challenge)
	}
	var body struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(a.body), &body); err != nil || body.Error != reason {
		t.Errorf("body %q, want {\"error\":%q} (%v)", a.body, reason, err)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if a.header.Get("X-Token-Name") != "" || a.header.Get("X-Token-Access") != "" {
		t.Errorf("a denial names a token: %v", a.header)
	}
}

const (
	challengeBare         = `Bearer realm="apptokens"`
	challengeInvalidToken = `Bearer realm="apptokens", error="invalid_token"`
)

func challengeScope[S ~string](a S) string {
	return `Bearer realm="apptokens", error="insufficient_scope", scope="` + string(a) + `"`
}

// TestGateAnswers runs every kind of request through the handler over real HTTP,
// and checks statuses and headers exactly as DESIGN.md writes them.
func TestGateAnswers(t *testing.T) {
	clk := newClock()
	s := openStore(t, clk.Now)
	both := create(t, s, "both", store.AccessSecurityDirector, store.AccessThirdPartyFeeds)
	feeds := create(t, s, "feeds-only", store.AccessThirdPartyFeeds)
	off := create(t, s, "switched-off", store.AccessSecurityDirector)
	stale := create(t, s, "stale", store.AccessSecurityDirector)
	blocked := create(t, s, "blocked-here", store.AccessSecurityDirector)
	if _, err := s.SetActive(admin, []string{"switched-off"}, false); err != nil {
		t.Fatal(err)
	}
	unknown, err := secret.Generate()
	if err != nil {
		t.Fatal(err)
	}
	// A checksum that does not match: change the last character.
	last := both[len(both)-1]
	flipped := both[:len(both)-1] + map[bool]string{true: "b", false: "a"}[last == 'a']

	g := newGate(t, Config{Store: s, Now: clk.Now})
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(srv.Close)
	c := srv.Client()

	// "stale" goes unused past the policy while the others are used just before.
	clk.Add(store.DefaultInactiveAfter - time.Minute)
	for _, tok := range []string{both, feeds, blocked} {
		call(t, c, srv.URL+"/auth", "Bearer "+tok)
	}
	if err := g.Flush(); err != nil {
		t.Fatal(err)
	}
	clk.Add(2 * time.Minute)
	if _, err := s.SetBlocked(admin, "blocked-here", []string{"127.0.0.1"}, true); err != nil {
		t.Fatal(err)
	}

	t.Run("valid", func(t *testing.T) {
		for _, path := range []string{
			"/auth", "/auth/security-director", "/auth/third-party-feeds",
			"/auth/security-director/api/v1/things", "/auth/third-party-feeds/feeds/x?y=1",
		} {
			a := call(t, c, srv.URL+path, "Bearer "+both)
			if a.status != http.StatusOK || a.body != "" {
				t.Errorf("%s: %d %q, want 200 and no body", path, a.status, a.body)
			}
			if got := a.header.Get("X-Token-Name"); got != "both" {
				t.Errorf("%s: X-Token-Name %q", path, got)
			}
			if got := a.header.Get("X-Token-Access"); got != "security-director,third-party-feeds" {
				t.Errorf("%s: X-Token-Access %q", path, got)
			}
			if got := a.header.Get("X-Apptokens-Reason"); got != "ok" {
				t.Errorf("%s: X-Apptokens-Reason %q", path, got)
			}
			if a.header.Get("WWW-Authenticate") != "" {
				t.Errorf("%s: challenge on 200", path)
			}
		}
		// The scheme is case-insensitive; other methods work too.
		a := call(t, c, srv.URL+"/auth/third-party-feeds", "bearer "+feeds)
		if a.status != http.StatusOK || a.header.Get("X-Token-Access") != "third-party-feeds" {
			t.Errorf("lower-case scheme: %d %v", a.status, a.header)
		}
		resp, err := c.Post(srv.URL+"/auth", "text/plain", strings.NewReader("ignored"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("POST without token: %d", resp.StatusCode)
		}
	})

	denials := []struct {
		name, path, authz string
		status            int
		reason, challenge string
	}{
		{"missing header", "/auth", "", 401, "missing_token", challengeBare},
		{"basic", "/auth", "Basic dXNlcjpwYXNz", 401, "missing_token", challengeBare},
		{"other scheme that starts like bearer", "/auth", "Bearerish " + both, 401, "missing_token", challengeBare},
		{"empty bearer", "/auth", "Bearer", 401, "malformed_token", challengeInvalidToken},
		{"malformed", "/auth", "Bearer not-a-token", 401, "malformed_token", challengeInvalidToken},
		{"wrong length", "/auth", "Bearer " + both + "x", 401, "malformed_token", challengeInvalidToken},
		{"bad checksum", "/auth", "Bearer " + flipped, 401, "malformed_token", challengeInvalidToken},
		{"unknown", "/auth", "Bearer " + unknown.Reveal(), 401, "unknown_token", challengeInvalidToken},
		{"deactivated", "/auth", "Bearer " + off, 401, "inactive_token", challengeInvalidToken},
		{"inactive by policy", "/auth", "Bearer " + stale, 401, "inactive_token", challengeInvalidToken},
		{"blocked IP", "/auth", "Bearer " + blocked, 403, "ip_blocked", ""},
		{"wrong access", "/auth/security-director", "Bearer " + feeds, 403, "insufficient_access", challengeScope(store.AccessSecurityDirector)},
		{"wrong access, longer path", "/auth/security-director/x/y", "Bearer " + feeds, 403, "insufficient_access", challengeScope(store.AccessSecurityDirector)},
		{"blocked IP before access", "/auth/third-party-feeds", "Bearer " + blocked, 403, "ip_blocked", ""},
	}
	for _, d := range denials {
		t.Run(d.name, func(t *testing.T) {
			a := call(t, c, srv.URL+d.path, d.authz)
			wantDenial(t, a, d.status, d.reason, d.challenge)
			for k, vs := range a.header {
				for _, v := range vs {
					for _, tok := range []string{both, feeds, off, stale, blocked, flipped, unknown.Reveal()} {
						if strings.Contains(v, tok) || strings.Contains(a.body, tok) {
							t.Errorf("the answer echoes a token in %s", k)
						}
					}
				}
			}
		})
	}

	t.Run("/auth/ is /auth", func(t *testing.T) {
		if a := call(t, c, srv.URL+"/auth/", "Bearer "+feeds); a.status != http.StatusOK || a.header.Get("X-Token-Name") != "feeds-only" {
			t.Errorf("/auth/: %d %v", a.status, a.header)
		}
		wantDenial(t, call(t, c, srv.URL+"/auth/", ""), 401, "missing_token", challengeBare)
	})

	// A path under /auth/ that names no access type (a typo in a proxy's
	// configuration) answers like a denial, with a status every proxy relays,
	// and never lets a token through: the token checks first, then 403.
	t.Run("unknown access type", func(t *testing.T) {
		noScope := `Bearer realm="apptokens", error="insufficient_scope"`
		for _, tc := range []struct{ path, challenge string }{
			{"/auth/admin", challengeScope("admin")},
			{"/auth/security-directorate/api/v1", challengeScope("security-directorate")},
			{"/auth/" + strings.Repeat("a", 64), challengeScope(store.Access(strings.Repeat("a", 64)))},
			{"/auth/" + strings.Repeat("a", 65), noScope},
			{"/auth/Security-Director", noScope},
			{"/auth/a%22,%20scope=%22x", noScope},
			{"/auth//security-director", noScope},
		} {
			a := call(t, c, srv.URL+tc.path, "Bearer "+both)
			wantDenial(t, a, 403, "insufficient_access", tc.challenge)
			wantDenial(t, call(t, c, srv.URL+tc.path, ""), 401, "missing_token", challengeBare)
			wantDenial(t, call(t, c, srv.URL+tc.path, "Bearer not-a-token"), 401, "malformed_token", challengeInvalidToken)
			wantDenial(t, call(t, c, srv.URL+tc.path, "Bearer "+off), 401, "inactive_token", challengeInvalidToken)
			wantDenial(t, call(t, c, srv.URL+tc.path, "Bearer "+stale), 401, "inactive_token", challengeInvalidToken)
			wantDenial(t, call(t, c, srv.URL+tc.path, "Bearer "+blocked), 403, "ip_blocked", "")
		}
	})

	// Every answer of the gate has its reason: a path that is not the gate's
	// is a 404 in the form of the denials (issue 8, fault 7).
	t.Run("not gate paths", func(t *testing.T) {
		for _, path := range []string{"/", "/authx", "/AUTH", "/Auth/security-director", "/other", "/authx/security-director", "/api/auth"} {
			for _, authz := range []string{"Bearer " + both, ""} {
				a := call(t, c, srv.URL+path, authz)
				wantDenial(t, a, http.StatusNotFound, "not_found", "")
				if t.Failed() {
					t.Fatalf("%s (Authorization %q): %d %v %q", path, authz, a.status, a.header, a.body)
				}
			}
		}
		if a := call(t, c, srv.URL+"/healthz", ""); a.status != http.StatusOK || a.header.Get("X-Apptokens-Reason") != "ok" {
			t.Errorf("/healthz: %d %v", a.status, a.header)
		}
	})

	// Two Authorization headers: a proxy may have checked one and the gate the
	// other, so neither is believed (issue 8, fault 6), whatever their order.
	t.Run("two Authorization headers", func(t *testing.T) {
		for _, pair := range [][2]string{
			{"Bearer " + both, "Bearer " + feeds},
			{"Bearer not-a-token", "Bearer " + both},
			{"Bearer " + both, "Bearer " + both},
			{"Bearer " + both, ""},
		} {
			for _, path := range []string{"/auth", "/auth/security-director"} {
				a := call(t, c, srv.URL+path, pair[0], "Authorization", pair[1])
				wantDenial(t, a, http.StatusUnauthorized, "malformed_token", challengeInvalidToken)
			}
		}
	})
}

// TestGateUsage checks that allowed and denied requests reach the store's usage
// per IP within 2 s, with Run flushing at its default interval.
func TestGateUsage(t *testing.T) {
	s := openStore(t, nil)
	tok := create(t, s, "api-1", store.AccessSecurityDirector)
	g := newGate(t, Config{Store: s})
	run(t, g)
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(srv.Close)

	for range 3 {
		if a := call(t, srv.Client(), srv.URL+"/auth/security-director", "Bearer "+tok); a.status != 200 {
			t.Fatalf("status %d", a.status)
		}
	}
	if a := call(t, srv.Client(), srv.URL+"/auth/third-party-feeds", "Bearer "+tok); a.status != 403 {
		t.Fatalf("status %d", a.status)
	}
	start := time.Now()
	var got []store.Usage
	waitFor(t, 2*time.Second, "usage of 127.0.0.1 with 3 allowed and 1 denied", func() bool {
		u, err := s.Usage("api-1")
		if err != nil {
			t.Fatal(err)
		}
		got = u
		return len(u) == 1 && u[0].Allowed == 3 && u[0].Denied == 1
	})
	t.Logf("usage visible after %v", time.Since(start).Round(time.Millisecond))
	if got[0].IP != "127.0.0.1" || got[0].FirstUsedAt.IsZero() || got[0].LastUsedAt.Before(got[0].FirstUsedAt) {
		t.Errorf("usage row %+v", got[0])
	}
	tk, err := s.Get("api-1")
	if err != nil {
		t.Fatal(err)
	}
	if tk.LastUsedAt.IsZero() {
		t.Error("the token's last use did not move")
	}
}

// TestGateFlushOnShutdown: counts younger than the flush interval are written
// when Run stops, and not before: the inactivity sweep, which runs at start,
// writes usage only when a token is due (it was flaky under load, when the
// requests came before the first sweep).
func TestGateFlushOnShutdown(t *testing.T) {
	s := openStore(t, nil)
	tok := create(t, s, "api-1", store.AccessSecurityDirector)
	g := newGate(t, Config{Store: s, FlushInterval: time.Hour})
	srv := httptest.NewServer(g.Handler())
	defer srv.Close()
	// The requests come before Run, so before its first sweep: the order a
	// loaded machine could give them.
	call(t, srv.Client(), srv.URL+"/auth", "Bearer "+tok)
	call(t, srv.Client(), srv.URL+"/auth", "Bearer "+tok)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	waitFor(t, 10*time.Second, "the sweep at start", func() bool { return g.sweeps.Load() > 0 })
	if u, _ := s.Usage("api-1"); len(u) != 0 {
		t.Fatalf("usage written before shutdown: %+v", u)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	u, err := s.Usage("api-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(u) != 1 || u[0].Allowed != 2 {
		t.Fatalf("usage after shutdown: %+v", u)
	}
}

// TestGateSweepOnGateClock: the least gap between sweeps that requests ask for
// is measured on the configured clock, as inactivity is (issue 8, fault 12):
// once that clock has moved past the gap, a request for an expired token has
// it deactivated at once.
func TestGateSweepOnGateClock(t *testing.T) {
	clk := newClock()
	s := openStore(t, clk.Now)
	if err := s.SetInactiveAfter(time.Hour); err != nil {
		t.Fatal(err)
	}
	tok := create(t, s, "old", store.AccessSecurityDirector)
	g := newGate(t, Config{Store: s, Now: clk.Now, SweepInterval: time.Hour})
	g.sweepGap = time.Hour // on the wall clock, the test would wait an hour
	run(t, g)
	waitFor(t, 10*time.Second, "the sweep at start", func() bool { return g.sweeps.Load() > 0 })
	clk.Add(2 * time.Hour)
	srv := httptest.NewServer(g.Handler())
	defer srv.Close()
	wantDenial(t, call(t, srv.Client(), srv.URL+"/auth", "Bearer "+tok), 401, "inactive_token", challengeInvalidToken)
	waitFor(t, 10*time.Second, "the old token deactivated in the store", func() bool {
		old, err := s.Get("old")
		if err != nil {
			t.Fatal(err)
		}
		return !old.Active
	})
}

// TestGateClientIP: X-Forwarded-For from an untrusted peer is ignored; from a
// trusted proxy its rightmost untrusted address is the client.
func TestGateClientIP(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted []netip.Prefix
		hdr     []string
		want    string
	}{
		{"untrusted peer, header ignored", nil, []string{"X-Forwarded-For", "203.0.113.9", "X-Real-IP", "203.0.113.10"}, "127.0.0.1"},
		{"trusted proxy", []netip.Prefix{mustPrefix("127.0.0.0/8")}, []string{"X-Forwarded-For", "198.51.100.1, 203.0.113.9"}, "203.0.113.9"},
		{"trusted hops skipped", []netip.Prefix{mustPrefix("127.0.0.0/8"), mustPrefix("10.0.0.0/8")}, []string{"X-Forwarded-For", "198.51.100.1, 203.0.113.9, 10.1.2.3", "X-Forwarded-For", "127.0.0.9"}, "203.0.113.9"},
		{"X-Real-IP without X-Forwarded-For", []netip.Prefix{mustPrefix("127.0.0.0/8")}, []string{"X-Real-IP", "203.0.113.10"}, "203.0.113.10"},
		// The client wrote X-Real-IP and junk into X-Forwarded-For, which a
		// trusted hop (127.0.0.2) passed on: the client is that hop.
		{"junk in X-Forwarded-For, X-Real-IP ignored", []netip.Prefix{mustPrefix("127.0.0.0/8")}, []string{"X-Forwarded-For", "5.5.5.5, junk, 127.0.0.2", "X-Real-IP", "4.4.4.4"}, "127.0.0.2"},
		{"all trusted: the leftmost, X-Real-IP ignored", []netip.Prefix{mustPrefix("127.0.0.0/8")}, []string{"X-Forwarded-For", "127.0.0.3, 127.0.0.4", "X-Real-IP", "4.4.4.4"}, "127.0.0.3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t, nil)
			tok := create(t, s, "api-1", store.AccessSecurityDirector)
			g := newGate(t, Config{Store: s, TrustedProxies: tc.trusted})
			srv := httptest.NewServer(g.Handler())
			defer srv.Close()
			if a := call(t, srv.Client(), srv.URL+"/auth", "Bearer "+tok, tc.hdr...); a.status != 200 {
				t.Fatalf("status %d", a.status)
			}
			if err := g.Flush(); err != nil {
				t.Fatal(err)
			}
			u, err := s.Usage("api-1")
			if err != nil {
				t.Fatal(err)
			}
			if len(u) != 1 || u[0].IP != tc.want {
				t.Fatalf("usage %+v, want one row for %s", u, tc.want)
			}
			// Blocking that address refuses the next request.
			if _, err := s.SetBlocked(admin, "api-1", []string{tc.want}, true); err != nil {
				t.Fatal(err)
			}
			a := call(t, srv.Client(), srv.URL+"/auth", "Bearer "+tok, tc.hdr...)
			wantDenial(t, a, 403, "ip_blocked", "")
		})
	}
}

// TestGateNextRequestSeesCommit: once a store call that deactivates, blocks,
// re-scopes or deletes a token returns, the very next request is decided by it,
// whether or not Run is applying the feed in the background.
func TestGateNextRequestSeesCommit(t *testing.T) {
	for _, background := range []bool{false, true} {
		name := "inline"
		if background {
			name = "with Run"
		}
		t.Run(name, func(t *testing.T) {
			s := openStore(t, nil)
			tok := create(t, s, "api-1", store.AccessSecurityDirector)
			g := newGate(t, Config{Store: s})
			if background {
				run(t, g)
			}
			srv := httptest.NewServer(g.Handler())
			defer srv.Close()
			c := srv.Client()
			expect := func(step string, status int, reason string) {
				t.Helper()
				a := call(t, c, srv.URL+"/auth/security-director", "Bearer "+tok)
				if a.status != status || a.header.Get("X-Apptokens-Reason") != reason {
					t.Fatalf("%s: %d %s, want %d %s", step, a.status, a.header.Get("X-Apptokens-Reason"), status, reason)
				}
			}
			for i := range 20 {
				expect("before", 200, "ok")
				if _, err := s.SetActive(admin, []string{"api-1"}, false); err != nil {
					t.Fatal(err)
				}
				expect("deactivated", 401, "inactive_token")
				if _, err := s.SetActive(admin, []string{"api-1"}, true); err != nil {
					t.Fatal(err)
				}
				expect("activated", 200, "ok")
				if _, err := s.SetBlocked(admin, "api-1", []string{"127.0.0.1"}, true); err != nil {
					t.Fatal(err)
				}
				expect("blocked", 403, "ip_blocked")
				if _, err := s.SetBlocked(admin, "api-1", []string{"127.0.0.1"}, false); err != nil {
					t.Fatal(err)
				}
				if i%5 == 4 {
					if _, err := s.Edit(admin, "api-1", store.Edit{Access: []store.Access{store.AccessThirdPartyFeeds}}); err != nil {
						t.Fatal(err)
					}
					expect("access removed", 403, "insufficient_access")
					if _, err := s.Edit(admin, "api-1", store.Edit{Access: []store.Access{store.AccessSecurityDirector}}); err != nil {
						t.Fatal(err)
					}
				}
			}
			if _, err := s.Delete(admin, []string{"api-1"}); err != nil {
				t.Fatal(err)
			}
			expect("deleted", 401, "unknown_token")
			fresh := create(t, s, "api-2", store.AccessSecurityDirector)
			if a := call(t, c, srv.URL+"/auth", "Bearer "+fresh); a.status != 200 || a.header.Get("X-Token-Name") != "api-2" {
				t.Fatalf("created: %d %v", a.status, a.header)
			}
		})
	}
}

// TestGateReload: a bulk load or restore publishes a reload; the gate rebuilds.
func TestGateReload(t *testing.T) {
	s := openStore(t, nil)
	g := newGate(t, Config{Store: s})
	secrets := seed(t, s, 50)
	h := g.Handler()
	for i, tok := range secrets {
		r := httptest.NewRequest(http.MethodGet, "/auth", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 200 || w.Header().Get("X-Token-Name") != "tok-"+strconv.Itoa(i) {
			t.Fatalf("token %d: %d %v", i, w.Code, w.Header())
		}
	}
}

// TestGateSweep: the periodic sweep deactivates tokens that the policy made
// Inactive, with an "expire" audit event, and a request for one triggers it.
func TestGateSweep(t *testing.T) {
	clk := newClock()
	s := openStore(t, clk.Now)
	if err := s.SetInactiveAfter(time.Hour); err != nil {
		t.Fatal(err)
	}
	tok := create(t, s, "old", store.AccessSecurityDirector)
	create(t, s, "young", store.AccessSecurityDirector)
	g := newGate(t, Config{Store: s, Now: clk.Now, SweepInterval: time.Hour})
	run(t, g)
	clk.Add(2 * time.Hour)
	if _, err := s.Edit(admin, "young", store.Edit{Access: []store.Access{store.AccessThirdPartyFeeds}}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g.Handler())
	defer srv.Close()
	wantDenial(t, call(t, srv.Client(), srv.URL+"/auth", "Bearer "+tok), 401, "inactive_token", challengeInvalidToken)
	waitFor(t, 5*time.Second, "an expire event for the old token", func() bool {
		evs, err := s.Audit(20)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if e.Action == store.ActionExpire && e.Token == "old" {
				return true
			}
		}
		return false
	})
	old, err := s.Get("old")
	if err != nil {
		t.Fatal(err)
	}
	if old.Active {
		t.Error("the sweep did not deactivate the token")
	}
	// The policy off: nothing is inactive by age.
	if err := s.SetInactiveAfter(0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetActive(admin, []string{"old"}, true); err != nil {
		t.Fatal(err)
	}
	clk.Add(1000 * time.Hour)
	if a := call(t, srv.Client(), srv.URL+"/auth", "Bearer "+tok); a.status != 200 {
		t.Errorf("policy off: %d %s", a.status, a.header.Get("X-Apptokens-Reason"))
	}
}

// TestGateMiddleware: the middleware refuses like the gate, and a client cannot
// pose as a token with its own X-Token-* headers.
func TestGateMiddleware(t *testing.T) {
	s := openStore(t, nil)
	tok := create(t, s, "svc", store.AccessSecurityDirector)
	g := newGate(t, Config{Store: s})
	var seen http.Header
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r.Header.Clone()
		_, _ = io.WriteString(w, "hello "+r.Header.Get("X-Token-Name"))
	})
	mux := http.NewServeMux()
	mux.Handle("/sd/", g.Middleware(store.AccessSecurityDirector)(api))
	mux.Handle("/feeds/", g.Middleware(store.AccessThirdPartyFeeds)(api))
	mux.Handle("/any/", g.Middleware("")(api))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c := srv.Client()
	pose := []string{"X-Token-Name", "root", "x-token-access", "third-party-feeds", "X-Token-Extra", "1"}

	for _, path := range []string{"/sd/x", "/any/y"} {
		seen = nil
		a := call(t, c, srv.URL+path, "Bearer "+tok, pose...)
		if a.status != 200 || a.body != "hello svc" {
			t.Fatalf("%s: %d %q", path, a.status, a.body)
		}
		if got := seen.Values("X-Token-Name"); len(got) != 1 || got[0] != "svc" {
			t.Errorf("%s: handler saw X-Token-Name %q", path, got)
		}
		if got := seen.Values("X-Token-Access"); len(got) != 1 || got[0] != "security-director" {
			t.Errorf("%s: handler saw X-Token-Access %q", path, got)
		}
		if seen.Get("X-Token-Extra") != "" {
			t.Errorf("%s: a client's X-Token-Extra reached the handler", path)
		}
	}
	seen = nil
	wantDenial(t, call(t, c, srv.URL+"/feeds/z", "Bearer "+tok, pose...), 403, "insufficient_access", challengeScope(store.AccessThirdPartyFeeds))
	wantDenial(t, call(t, c, srv.URL+"/sd/x", "", pose...), 401, "missing_token", challengeBare)
	if seen != nil {
		t.Error("a denied request reached the handler")
	}
	defer func() {
		if recover() == nil {
			t.Error("Middleware accepted an unknown access type")
		}
	}()
	g.Middleware("admin")
}

// TestGateMiddlewareHeaderSpellings: a client's identity headers under any
// spelling that a backend folds into X-Token-Name or X-Token-Access (case
// ignored, "_" as "-") never reach the service; a CGI/WSGI-style backend sees
// only the gate's values (issue 8, fault 5).
func TestGateMiddlewareHeaderSpellings(t *testing.T) {
	s := openStore(t, nil)
	tok := create(t, s, "svc", store.AccessSecurityDirector)
	g := newGate(t, Config{Store: s})
	var env map[string]string
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { env = wsgiEnviron(r.Header) })
	srv := httptest.NewServer(g.Middleware("")(api))
	defer srv.Close()
	a := call(t, srv.Client(), srv.URL+"/reports", "Bearer "+tok, spoofedIdentity...)
	if a.status != http.StatusOK {
		t.Fatalf("status %d %q", a.status, a.body)
	}
	wantOnlyGateIdentity(t, env, "svc", "security-director")
	if v, ok := env["HTTP_X_TOKEN_EXTRA"]; ok {
		t.Errorf("the backend saw the client's HTTP_X_TOKEN_EXTRA %q", v)
	}
	for _, name := range []string{"X-Token-Name", "X_Token_Name", "x_TOKEN-access", "X-Token-", "x_token_"} {
		if !isIdentityHeader(name) {
			t.Errorf("%s is not taken for an identity header", name)
		}
	}
	for _, name := range []string{"X-Tokens-Name", "X-Token", "Token-Name", "X.Token.Name", "Authorization"} {
		if isIdentityHeader(name) {
			t.Errorf("%s is taken for an identity header", name)
		}
	}
}

// TestGateNoClientIP: a request that comes without a client IP (a unix socket
// listener) is verified but not counted: no usage row with a made-up address
// (0.0.0.0 before) that the TUI would offer for blocking (issue 8, fault 12).
func TestGateNoClientIP(t *testing.T) {
	s := openStore(t, nil)
	tok := create(t, s, "over-unix", store.AccessSecurityDirector)
	g := newGate(t, Config{Store: s})
	mux := http.NewServeMux()
	mux.Handle("/auth", g.Handler())
	mux.Handle("/api/", g.Middleware("")(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})))
	sock := filepath.Join(t.TempDir(), "gate.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(mux)
	srv.Listener = ln
	srv.Start()
	defer srv.Close()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	for _, path := range []string{"/auth", "/api/x"} {
		if a := call(t, c, "http://gate"+path, "Bearer "+tok); a.status != http.StatusOK {
			t.Fatalf("%s over a unix socket: %d %q", path, a.status, a.body)
		}
	}
	wantDenial(t, call(t, c, "http://gate/auth", "Bearer not-a-token"), 401, "malformed_token", challengeInvalidToken)
	if err := g.Flush(); err != nil {
		t.Fatal(err)
	}
	u, err := s.Usage("over-unix")
	if err != nil {
		t.Fatal(err)
	}
	if len(u) != 0 {
		t.Errorf("usage recorded for a peer without an IP: %+v", u)
	}
}

// TestGateNewServer: the server has header and slow-client limits, and the gate
// answers over it.
func TestGateNewServer(t *testing.T) {
	t.Parallel() // waits out the header timeout
	s := openStore(t, nil)
	g := newGate(t, Config{Store: s})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(ln.Addr().String(), g.Handler())
	if srv.ReadHeaderTimeout <= 0 || srv.MaxHeaderBytes <= 0 || srv.IdleTimeout <= 0 {
		t.Fatalf("limits missing: %+v", srv)
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	if a := call(t, http.DefaultClient, "http://"+ln.Addr().String()+"/healthz", ""); a.status != 200 {
		t.Fatalf("/healthz: %d", a.status)
	}
	// Headers over the limit are refused by the server, before the gate.
	big := strings.Repeat("a", 2*maxHeaderBytes)
	req, _ := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+"/auth", nil)
	req.Header.Set("X-Big", big)
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("oversized headers: %d", resp.StatusCode)
		}
	}
	// A client that never finishes its headers is cut off.
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /auth HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(readHeaderTimeout + 5*time.Second))
	_, err = io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Error("the server kept a slow client's connection open")
	}
}

// TestGateLogsNoToken: at debug level the gate logs each decision with the
// token's name, never the token.
func TestGateLogsNoToken(t *testing.T) {
	s := openStore(t, nil)
	tok := create(t, s, "api-1", store.AccessSecurityDirector)
	var logs syncBuffer
	g := newGate(t, Config{Store: s, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	srv := httptest.NewServer(g.Handler())
	defer srv.Close()
	bad := tok[:len(tok)-1] + "x"
	for _, authz := range []string{"Bearer " + tok, "Bearer " + bad, "Bearer " + tok[:20]} {
		call(t, srv.Client(), srv.URL+"/auth/third-party-feeds", authz)
	}
	out := logs.String()
	if !strings.Contains(out, "token=api-1") || !strings.Contains(out, "reason=insufficient_access") || !strings.Contains(out, "reason=malformed_token") {
		t.Errorf("logs miss the decisions:\n%s", out)
	}
	for _, secret := range []string{tok, bad, tok[:20], tok[len(tok)-12:]} {
		if strings.Contains(out, secret) {
			t.Fatalf("a log holds a token:\n%s", out)
		}
	}
}

// TestGateFlushReadsNothing: a usage flush comes back on the feed with the
// tokens' new last-used times, which the gate applies from memory: no store
// read, on the request path or elsewhere, even when one flush names more tokens
// than the feed queues for a subscriber. A token used within the policy is then
// never refused as expired; one left unused is.
func TestGateFlushReadsNothing(t *testing.T) {
	clk := newClock()
	s := openStore(t, clk.Now)
	secrets := seed(t, s, 5000)
	g := newGate(t, Config{Store: s, Now: clk.Now})
	h := g.Handler()
	get := func(tok string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, "/auth", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	reads := g.storeReads.Load()
	clk.Add(store.DefaultInactiveAfter - time.Hour)
	for _, tok := range secrets[1:] {
		if w := get(tok); w.Code != 200 {
			t.Fatalf("before the flush: %d %s", w.Code, w.Header().Get("X-Apptokens-Reason"))
		}
	}
	version := g.idx.Load().version
	if err := g.Flush(); err != nil {
		t.Fatal(err)
	}
	// Past the policy since creation, within it since the last use.
	clk.Add(2 * time.Hour)
	for i, tok := range secrets[1:] {
		if w := get(tok); w.Code != 200 {
			t.Fatalf("token %d used an hour ago: %d %s", i+1, w.Code, w.Header().Get("X-Apptokens-Reason"))
		}
	}
	if w := get(secrets[0]); w.Code != 401 || w.Header().Get("X-Apptokens-Reason") != "inactive_token" {
		t.Errorf("unused token: %d %s, want 401 inactive_token", w.Code, w.Header().Get("X-Apptokens-Reason"))
	}
	if g.idx.Load().version == version {
		t.Error("the flush's changes were not applied")
	}
	if n := g.storeReads.Load() - reads; n != 0 {
		t.Errorf("%d store reads after a usage flush, want none", n)
	}
	// The store agrees with the gate.
	if names, err := s.ExpireStale(admin); err != nil || len(names) != 1 || names[0] != "tok-0" {
		t.Errorf("ExpireStale: %v, %v; want [tok-0]", names, err)
	}

	// A request that finds a flush not yet applied applies it itself, from memory.
	if err := g.Flush(); err != nil { // the requests above
		t.Fatal(err)
	}
	clk.Add(time.Minute)
	if w := get(secrets[1]); w.Code != 200 {
		t.Fatal(w.Code)
	}
	reads = g.storeReads.Load() // after reading tok-0, which the sweep deactivated
	if _, err := s.RecordUsage(deltasOf(takePairs(g))); err != nil {
		t.Fatal(err)
	}
	before := g.idx.Load()
	if w := get(secrets[1]); w.Code != 200 {
		t.Fatal(w.Code)
	}
	if g.idx.Load() == before || g.storeReads.Load() != reads {
		t.Errorf("request after an unapplied flush: index moved %v, %d store reads", g.idx.Load() != before, g.storeReads.Load()-reads)
	}
}

// TestGateFlushFailureBounded: when the store refuses writes, counts stay in
// memory for the next flush, but never more (token, IP) pairs than the bound,
// however many addresses call; the requests left uncounted are reported in a
// rate-limited warning.
func TestGateFlushFailureBounded(t *testing.T) {
	s, err := storetest.OpenWith(storetest.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = s.Close()
		}
	})
	tok := create(t, s, "api-1", store.AccessSecurityDirector)
	var logs syncBuffer
	g := newGate(t, Config{Store: s, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	const limit = 10
	g.usage.limit = limit
	h := g.Handler()
	from := func(i int) {
		r := httptest.NewRequest(http.MethodGet, "/auth", nil)
		r.RemoteAddr = fmt.Sprintf("[2001:db8::%x]:443", i)
		r.Header.Set("Authorization", "Bearer "+tok)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 200 {
			t.Fatalf("request %d: %d", i, w.Code)
		}
	}
	for i := range 25 {
		from(i)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	for range 3 {
		if err := g.Flush(); err == nil {
			t.Fatal("Flush to a closed store succeeded")
		}
		from(100) // a new pair: no room
		from(0)   // a pair still waiting: counted
	}
	warnings := strings.Count(logs.String(), "level=WARN")
	if warnings != 1 || !strings.Contains(logs.String(), "dropped_requests=15 max_pairs=10") {
		t.Errorf("want one warning of 15 dropped requests:\n%s", logs.String())
	}
	// Rate-limited: the later drops are reported once the minute has passed.
	g.warnMu.Lock()
	g.lastDropWarn -= int64(dropWarnEvery)
	g.warnMu.Unlock()
	_ = g.Flush()
	if !strings.Contains(logs.String(), "dropped_requests=3 ") {
		t.Errorf("the later drops were not reported:\n%s", logs.String())
	}
	taken, _ := g.usage.take()
	allowed, _ := sum(taken)
	if len(taken) != limit || allowed != limit+3 {
		t.Fatalf("%d pairs, %d requests kept; want %d pairs, %d requests", len(taken), allowed, limit, limit+3)
	}
}

// TestGateFreshHeaders: every answer has header value slices of its own, so a
// wrapper that writes into one (h[k][0] = ...) or appends to one changes no
// other answer.
func TestGateFreshHeaders(t *testing.T) {
	s := openStore(t, nil)
	tok := create(t, s, "api-1", store.AccessSecurityDirector)
	g := newGate(t, Config{Store: s})
	h := g.Handler()
	mw := g.Middleware(store.AccessSecurityDirector)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header["X-Token-Name"][0] = "scribbled"
	}))
	for _, tc := range []struct {
		name, path, authz string
		handler           http.Handler
	}{
		{"allowed", "/auth", "Bearer " + tok, h},
		{"missing", "/auth", "", h},
		{"invalid", "/auth", "Bearer x", h},
		{"insufficient", "/auth/third-party-feeds", "Bearer " + tok, h},
		{"unknown scope", "/auth/admin", "Bearer " + tok, h},
		{"healthz", "/healthz", "", h},
		{"middleware allowed", "/x", "Bearer " + tok, mw},
		{"middleware denied", "/x", "", mw},
	} {
		t.Run(tc.name, func(t *testing.T) {
			serve := func() *httptest.ResponseRecorder {
				r := httptest.NewRequest(http.MethodGet, tc.path, nil)
				if tc.authz != "" {
					r.Header.Set("Authorization", tc.authz)
				}
				w := httptest.NewRecorder()
				tc.handler.ServeHTTP(w, r)
				return w
			}
			first := serve()
			want := first.Header().Clone()
			for k, vs := range first.Header() {
				vs[0] = "scribbled"
				_ = append(vs, "appended")
				first.Header()[k] = vs
			}
			second := serve().Header()
			delete(want, "Content-Length")
			delete(second, "Content-Length")
			for k, vs := range want {
				if got := second.Values(k); len(got) != len(vs) || got[0] != vs[0] {
					t.Errorf("%s: %q after another answer was written into, want %q", k, got, vs)
				}
			}
		})
	}
}

func takePairs(g *Gate) []pendingUse {
	ps, _ := g.usage.take()
	return ps
}

// TestGateUseBeforeFlush: a token used within the policy is never refused as
// expired, not even before that use is flushed (from another address), nor
// while the store refuses the flush; the sweep writes such uses before it
// judges. A token left unused is refused and expired.
func TestGateUseBeforeFlush(t *testing.T) {
	clk := newClock()
	s, err := storetest.OpenWith(storetest.Options{InMemory: true, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = s.Close()
		}
	})
	used := create(t, s, "used", store.AccessSecurityDirector)
	idle := create(t, s, "idle", store.AccessSecurityDirector)
	g := newGate(t, Config{Store: s, Now: clk.Now})
	h := g.Handler()
	get := func(tok, ip string) string {
		t.Helper()
		r := httptest.NewRequest(http.MethodGet, "/auth", nil)
		r.RemoteAddr = ip + ":443"
		r.Header.Set("Authorization", "Bearer "+tok)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Header().Get("X-Apptokens-Reason")
	}
	clk.Add(store.DefaultInactiveAfter - time.Minute)
	if got := get(used, "192.0.2.1"); got != "ok" {
		t.Fatalf("before the policy: %s", got)
	}
	clk.Add(2 * time.Minute)
	if got := get(used, "192.0.2.2"); got != "ok" {
		t.Errorf("used a minute ago, not flushed yet: %s", got)
	}
	if got := get(idle, "192.0.2.1"); got != "inactive_token" {
		t.Errorf("unused token: %s", got)
	}
	g.expire()
	for name, active := range map[string]bool{"used": true, "idle": false} {
		if tk, err := s.Get(name); err != nil || tk.Active != active {
			t.Errorf("after the sweep, %s active=%v (%v), want %v", name, tk.Active, err, active)
		}
	}

	// The store refuses the flush: the use is still known.
	clk.Add(store.DefaultInactiveAfter - time.Minute)
	if got := get(used, "192.0.2.1"); got != "ok" {
		t.Fatalf("before the policy again: %s", got)
	}
	clk.Add(2 * time.Minute)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	if err := g.Flush(); err == nil {
		t.Fatal("Flush to a closed store succeeded")
	}
	if got := get(used, "192.0.2.2"); got != "ok" {
		t.Errorf("used a minute ago, flush failed: %s", got)
	}
}

// TestGateOptionsStar: "OPTIONS *" is a path like any other that is not the
// gate's: 404 in the denials' form, not net/http's own bare 200.
func TestGateOptionsStar(t *testing.T) {
	s := openStore(t, newClock().Now)
	g := newGate(t, Config{Store: s})
	srv := httptest.NewUnstartedServer(g.Handler())
	srv.Config = NewServer("", g.Handler())
	srv.Start()
	t.Cleanup(srv.Close)
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "OPTIONS * HTTP/1.1\r\nHost: gate\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusNotFound || res.Header.Get("X-Apptokens-Reason") != "not_found" || strings.TrimSpace(string(body)) != `{"error":"not_found"}` {
		t.Fatalf("OPTIONS *: %d, reason %q, body %q; want 404 not_found", res.StatusCode, res.Header.Get("X-Apptokens-Reason"), body)
	}
}

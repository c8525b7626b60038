package gate

import (
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/apptokens/apptokens/store"
)

// TestGateLifecycleReasons runs the lifecycle's refusals over real HTTP, each
// with its status, X-Apptokens-Reason, challenge and body as DESIGN.md writes
// them, on both sides of each edge: expiry, the end of a rotation's grace
// window, allow-lists and blocked ranges (IPv4, IPv6, IPv4-mapped IPv6). The
// client address comes from X-Forwarded-For through a trusted proxy.
func TestGateLifecycleReasons(t *testing.T) {
	clk := newClock()
	s := openStore(t, clk.Now)
	start := clk.Now()
	expiring, err := s.Create(admin, store.NewToken{Name: "expiring", Access: []store.Access{store.AccessSecurityDirector}, ExpiresAt: start.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	exp := expiring.Secret.Reveal()
	oldSecret := create(t, s, "rotating", store.AccessSecurityDirector)
	rotated, err := s.Rotate(admin, "rotating", 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	newSecret := rotated.Secret.Reveal()
	netTok := create(t, s, "networked", store.AccessSecurityDirector)
	if _, err := s.SetAllowed(admin, "networked", []string{"10.0.0.0/8", "2001:db8::/32", "192.0.2.7"}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetBlocked(admin, "networked", []string{"10.1.0.0/16", "2001:db8:bad::/48"}, true); err != nil {
		t.Fatal(err)
	}
	rangeTok := create(t, s, "range-blocked", store.AccessSecurityDirector)
	if _, err := s.SetBlocked(admin, "range-blocked", []string{"203.0.113.0/24"}, true); err != nil {
		t.Fatal(err)
	}

	g := newGate(t, Config{Store: s, Now: clk.Now, TrustedProxies: []netip.Prefix{mustPrefix("127.0.0.0/8")}})
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(srv.Close)
	c := srv.Client()
	from := func(path, tok, ip string) answer {
		return call(t, c, srv.URL+path, "Bearer "+tok, "X-Forwarded-For", ip)
	}
	ok := func(t *testing.T, a answer) {
		t.Helper()
		if a.status != 200 || a.header.Get("X-Apptokens-Reason") != "ok" {
			t.Errorf("status %d, reason %q; want 200 ok", a.status, a.header.Get("X-Apptokens-Reason"))
		}
	}

	t.Run("network rules", func(t *testing.T) {
		for _, tc := range []struct {
			ip, reason string
		}{
			{"10.0.0.0", "ok"}, {"10.255.255.255", "ok"}, {"10.0.255.255", "ok"}, {"10.2.0.0", "ok"},
			{"::ffff:10.9.9.9", "ok"}, {"2001:db8::1", "ok"}, {"2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "ok"},
			{"192.0.2.7", "ok"}, {"::ffff:192.0.2.7", "ok"},
			{"9.255.255.255", "ip_not_allowed"}, {"11.0.0.0", "ip_not_allowed"}, {"192.0.2.8", "ip_not_allowed"},
			{"2001:db9::", "ip_not_allowed"}, {"2001:db7:ffff::1", "ip_not_allowed"}, {"::ffff:11.0.0.1", "ip_not_allowed"},
			// Blocked ranges inside the allow-list: blocked wins.
			{"10.1.0.0", "ip_blocked"}, {"10.1.255.255", "ip_blocked"}, {"::ffff:10.1.2.3", "ip_blocked"},
			{"2001:db8:bad:1::5", "ip_blocked"}, {"2001:db8:bae::1", "ok"},
		} {
			a := from("/auth", netTok, tc.ip)
			if tc.reason == "ok" {
				ok(t, a)
				continue
			}
			t.Logf("from %s", tc.ip)
			wantDenial(t, a, 403, tc.reason, "")
		}
		// Access is checked after the network: allowed address, wrong access.
		wantDenial(t, from("/auth/third-party-feeds", netTok, "10.2.0.1"), 403, "insufficient_access", challengeScope(store.AccessThirdPartyFeeds))
		// A range block on a token with no allow-list, at its edges.
		wantDenial(t, from("/auth", rangeTok, "203.0.113.0"), 403, "ip_blocked", "")
		wantDenial(t, from("/auth", rangeTok, "::ffff:203.0.113.255"), 403, "ip_blocked", "")
		ok(t, from("/auth", rangeTok, "203.0.112.255"))
		ok(t, from("/auth", rangeTok, "203.0.114.0"))
	})

	t.Run("not allowed is counted as denied", func(t *testing.T) {
		if err := g.Flush(); err != nil {
			t.Fatal(err)
		}
		u, err := s.Usage("networked")
		if err != nil {
			t.Fatal(err)
		}
		rows := map[string]store.Usage{}
		for _, r := range u {
			rows[r.IP] = r
		}
		if r := rows["11.0.0.0"]; r.Denied != 1 || r.Allowed != 0 {
			t.Errorf("usage of 11.0.0.0: %+v, want 1 denied", r)
		}
		if r := rows["10.0.0.0"]; r.Allowed != 1 || r.Denied != 0 {
			t.Errorf("usage of 10.0.0.0: %+v, want 1 allowed", r)
		}
	})

	t.Run("disallow opens the token again", func(t *testing.T) {
		if _, err := s.SetAllowed(admin, "networked", []string{"10.0.0.0/8", "2001:db8::/32", "192.0.2.7"}, false); err != nil {
			t.Fatal(err)
		}
		ok(t, from("/auth", netTok, "11.0.0.0"))
		wantDenial(t, from("/auth", netTok, "10.1.0.1"), 403, "ip_blocked", "") // the block stays
		if _, err := s.SetBlocked(admin, "networked", []string{"10.1.0.0/16"}, false); err != nil {
			t.Fatal(err)
		}
		ok(t, from("/auth", netTok, "10.1.0.1"))
	})

	t.Run("rotation and expiry edges", func(t *testing.T) {
		// Both secrets of a rotating token work during the grace window.
		ok(t, from("/auth", oldSecret, "198.51.100.1"))
		ok(t, from("/auth", newSecret, "198.51.100.1"))
		ok(t, from("/auth", exp, "198.51.100.1"))
		clk.Add(time.Hour - time.Nanosecond)
		ok(t, from("/auth", exp, "198.51.100.1"))
		clk.Add(time.Nanosecond) // the expiry instant
		wantDenial(t, from("/auth", exp, "198.51.100.1"), 401, "expired_token", challengeInvalidToken)
		// Expiry comes before the network rules: an expired token says so
		// from any address.
		wantDenial(t, from("/auth/third-party-feeds", exp, "203.0.113.9"), 401, "expired_token", challengeInvalidToken)

		clk.Add(time.Hour - time.Nanosecond)
		ok(t, from("/auth", oldSecret, "198.51.100.1"))
		clk.Add(time.Nanosecond) // the grace window's end
		wantDenial(t, from("/auth", oldSecret, "198.51.100.1"), 401, "rotated_token", challengeInvalidToken)
		ok(t, from("/auth", newSecret, "198.51.100.1"))
		// An admin's deactivation comes first: inactive_token for both.
		if _, err := s.SetActive(admin, []string{"rotating", "expiring"}, false); err != nil {
			t.Fatal(err)
		}
		wantDenial(t, from("/auth", oldSecret, "198.51.100.1"), 401, "inactive_token", challengeInvalidToken)
		wantDenial(t, from("/auth", exp, "198.51.100.1"), 401, "inactive_token", challengeInvalidToken)
	})

	t.Run("a new expiry revives the token", func(t *testing.T) {
		if _, err := s.SetActive(admin, []string{"expiring"}, true); err != nil {
			t.Fatal(err)
		}
		later := clk.Now().Add(24 * time.Hour)
		if _, err := s.Edit(admin, "expiring", store.Edit{ExpiresAt: &later}); err != nil {
			t.Fatal(err)
		}
		ok(t, from("/auth", exp, "198.51.100.1"))
	})
}

// After a rotation's grace window, the old secret is rotated_token whether
// the gate applied the rotation from the feed or built its index afresh, and
// the token keeps its name and rules. (A rotation with no grace window drops
// the old secret in the store at once, as the sweep does at a window's end:
// then it is unknown_token.)
func TestGateRotatedAfterRebuild(t *testing.T) {
	clk := newClock()
	s := openStore(t, clk.Now)
	old := create(t, s, "now", store.AccessThirdPartyFeeds)
	if _, err := s.SetAllowed(admin, "now", []string{"127.0.0.0/8"}, true); err != nil {
		t.Fatal(err)
	}
	g := newGate(t, Config{Store: s, Now: clk.Now})
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(srv.Close)
	c := srv.Client()
	if a := call(t, c, srv.URL+"/auth", "Bearer "+old); a.status != 200 {
		t.Fatalf("before the rotation: %d", a.status)
	}
	r, err := s.Rotate(admin, "now", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Minute)
	wantDenial(t, call(t, c, srv.URL+"/auth", "Bearer "+old), 401, "rotated_token", challengeInvalidToken)
	a := call(t, c, srv.URL+"/auth/third-party-feeds", "Bearer "+r.Secret.Reveal())
	if a.status != 200 || a.header.Get("X-Token-Name") != "now" {
		t.Errorf("new secret: %d %q", a.status, a.header.Get("X-Token-Name"))
	}
	g2 := newGate(t, Config{Store: s, Now: clk.Now})
	srv2 := httptest.NewServer(g2.Handler())
	t.Cleanup(srv2.Close)
	wantDenial(t, call(t, srv2.Client(), srv2.URL+"/auth", "Bearer "+old), 401, "rotated_token", challengeInvalidToken)
	if a := call(t, srv2.Client(), srv2.URL+"/auth", "Bearer "+r.Secret.Reveal()); a.status != 200 {
		t.Errorf("new secret after a rebuild: %d", a.status)
	}
	for _, x := range []*index{g.idx.Load(), g2.idx.Load()} {
		if n := x.size(); n != 1 {
			t.Errorf("index size %d, want 1 token (a previous secret is no token)", n)
		}
	}
	// The allow-list stayed with the token: another address is refused.
	if _, err := s.SetAllowed(admin, "now", []string{"127.0.0.0/8"}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetAllowed(admin, "now", []string{"10.0.0.0/8"}, true); err != nil {
		t.Fatal(err)
	}
	wantDenial(t, call(t, c, srv.URL+"/auth", "Bearer "+r.Secret.Reveal()), 403, "ip_not_allowed", "")
}

// A request with no client address (the middleware behind a unix socket)
// passes no allow-list, and is not refused by blocks it cannot match.
func TestGateAllowListWithoutClientIP(t *testing.T) {
	s := openStore(t, nil)
	listed := create(t, s, "listed", store.AccessSecurityDirector)
	blocked := create(t, s, "blocked", store.AccessSecurityDirector)
	if _, err := s.SetAllowed(admin, "listed", []string{"0.0.0.0/0", "::/0"}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetBlocked(admin, "blocked", []string{"0.0.0.0/0"}, true); err != nil {
		t.Fatal(err)
	}
	g := newGate(t, Config{Store: s})
	if v := g.verify("Bearer "+listed, 0, netip.Addr{}, g.now()); v.reason != reasonIPNotAllowed {
		t.Errorf("allow-list, no address: %v", v.reason)
	}
	if v := g.verify("Bearer "+blocked, 0, netip.Addr{}, g.now()); v.reason != reasonOK {
		t.Errorf("blocked range, no address: %v", v.reason)
	}
	// Everything is inside 0.0.0.0/0 and ::/0.
	for _, ip := range []string{"203.0.113.1", "::ffff:203.0.113.1", "2001:db8::1", "::1"} {
		if v := g.verify("Bearer "+listed, 0, netip.MustParseAddr(ip).Unmap(), g.now()); v.reason != reasonOK {
			t.Errorf("from %s: %v", ip, v.reason)
		}
		want := reasonIPBlocked
		if netip.MustParseAddr(ip).Unmap().Is6() {
			want = reasonOK // an IPv4 range holds no IPv6 address
		}
		if v := g.verify("Bearer "+blocked, 0, netip.MustParseAddr(ip).Unmap(), g.now()); v.reason != want {
			t.Errorf("blocked, from %s: %v, want %v", ip, v.reason, want)
		}
	}
}

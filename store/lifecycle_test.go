package store_test

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apptokens/apptokens/internal/cidr"
	"github.com/apptokens/apptokens/internal/secret"
	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/storetest"
)

// whoisAt answers which secret a digest is at the store's clock: "current",
// "old" (a previous secret still in its grace window), or "none".
func whoisAt(t *testing.T, s *store.Store, d secret.Digest) string {
	t.Helper()
	tok, old, err := s.Whois(d)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return "none"
	case err != nil:
		t.Fatal(err)
	case !old:
		return "current"
	case tok.OldValidAt(s.Now()):
		return "old"
	}
	return "none"
}

func TestRotateGrace(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		for _, tc := range []struct {
			name     string
			grace    time.Duration
			after    time.Duration // clock moves this far after the rotation
			sweep    bool
			wantOld  string
			wantNew  string
			rotating bool
		}{
			{"before end", 24 * time.Hour, 24*time.Hour - time.Nanosecond, false, "old", "current", true},
			{"at end", 24 * time.Hour, 24 * time.Hour, false, "none", "current", true},
			{"at end swept", 24 * time.Hour, 24 * time.Hour, true, "none", "current", false},
			{"after end swept", 24 * time.Hour, 25 * time.Hour, true, "none", "current", false},
			{"grace 0", 0, 0, false, "none", "current", false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c := newClock()
				s := openOn(t, e, c)
				cr := mustCreate(t, s, "feed")
				if _, err := s.SetAllowed(admin, "feed", []string{"10.0.0.0/8"}, true); err != nil {
					t.Fatal(err)
				}
				rot, err := s.Rotate(admin, "feed", tc.grace)
				if err != nil {
					t.Fatal(err)
				}
				if rot.Secret == cr.Secret || rot.Token.Digest != rot.Secret.Digest() || rot.Token.ID != cr.Token.ID {
					t.Fatalf("rotation: %+v", rot.Token)
				}
				if !reflect.DeepEqual(rot.Token.Allowed, []string{"10.0.0.0/8"}) || rot.Token.Name != "feed" {
					t.Fatalf("rotation lost the token's rules: %+v", rot.Token)
				}
				c.Add(tc.after)
				if tc.sweep {
					res, err := s.Sweep(admin)
					if err != nil {
						t.Fatal(err)
					}
					if !reflect.DeepEqual(res.RotationEnd, []string{"feed"}) {
						t.Errorf("sweep: %+v", res)
					}
				}
				if got := whoisAt(t, s, cr.Secret.Digest()); got != tc.wantOld {
					t.Errorf("old secret: %s, want %s", got, tc.wantOld)
				}
				if got := whoisAt(t, s, rot.Secret.Digest()); got != tc.wantNew {
					t.Errorf("new secret: %s, want %s", got, tc.wantNew)
				}
				tok, err := s.Get("feed")
				if err != nil {
					t.Fatal(err)
				}
				if got := tok.OldDigest != (secret.Digest{}); got != tc.rotating {
					t.Errorf("old digest kept: %v, want %v", got, tc.rotating)
				}
				ev, _ := s.Audit(0)
				var actions []string
				for _, e := range ev {
					actions = append(actions, e.Action+" "+e.Details)
				}
				if want := "rotate grace=" + map[time.Duration]string{0: "0", 24 * time.Hour: "1d"}[tc.grace]; !strings.Contains(strings.Join(actions, "|"), want) {
					t.Errorf("audit %q lacks %q", actions, want)
				}
			})
		}
	})
}

func TestRotateTwiceKeepsOneOld(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		c := newClock()
		s := openOn(t, e, c)
		first := mustCreate(t, s, "feed")
		second, err := s.Rotate(admin, "feed", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		third, err := s.Rotate(admin, "feed", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			d    secret.Digest
			want string
		}{{first.Secret.Digest(), "none"}, {second.Secret.Digest(), "old"}, {third.Secret.Digest(), "current"}} {
			if got := whoisAt(t, s, tc.d); got != tc.want {
				t.Errorf("%s: %s", tc.want, got)
			}
		}
	})
}

func TestExpiryStates(t *testing.T) {
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		expires time.Time
		active  bool
		want    store.State
	}{
		{"past", now.Add(-time.Second), true, store.StateExpired},
		{"now", now, true, store.StateExpired},
		{"future", now.Add(time.Nanosecond), true, store.StateActive},
		{"never", time.Time{}, true, store.StateActive},
		{"expired wins over inactive", now, false, store.StateExpired},
		{"inactive, not expired", now.Add(time.Hour), false, store.StateInactive},
	} {
		tok := store.Token{Active: tc.active, CreatedAt: now, ExpiresAt: tc.expires}
		if got := tok.StateAt(now, 30*24*time.Hour); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestParseExpires(t *testing.T) {
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
		err  string
	}{
		{"", time.Time{}, ""},
		{"never", time.Time{}, ""},
		{"90d", now.Add(90 * 24 * time.Hour), ""},
		{"12h", now.Add(12 * time.Hour), ""},
		{"30m", now.Add(30 * time.Minute), ""},
		{"1d12h", now.Add(36 * time.Hour), ""},
		{"2027-01-31", time.Date(2027, 1, 31, 0, 0, 0, 0, time.UTC), ""},
		{"2027-01-31T12:00:00+02:00", time.Date(2027, 1, 31, 10, 0, 0, 0, time.UTC), ""},
		{"2026-03-01T09:00:00Z", time.Time{}, "expires must be in the future"},
		{"2020-01-01", time.Time{}, "expires must be in the future"},
		{"0d", time.Time{}, "expires must be in the future"},
		{"soon", time.Time{}, "want never, a duration"},
	} {
		got, err := store.ParseExpires(tc.in, now)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, store.ErrInvalidExpires) || strings.Contains(err.Error(), "\n") {
				t.Errorf("ParseExpires(%q) = %v, %v; want error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("ParseExpires(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestExpiryCreateEditSweep(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		c := newClock()
		s := openOn(t, e, c)
		at := c.Now().Add(10 * 24 * time.Hour)
		if _, err := s.Create(admin, store.NewToken{Name: "feed", Access: []store.Access{store.AccessThirdPartyFeeds}, ExpiresAt: at}); err != nil {
			t.Fatal(err)
		}
		c.Add(10 * 24 * time.Hour)
		tok, _ := s.Get("feed")
		if tok.StateAt(c.Now(), s.InactiveAfter()) != store.StateExpired {
			t.Fatalf("state %s", tok.StateAt(c.Now(), s.InactiveAfter()))
		}
		for i := 0; i < 2; i++ { // audited once
			res, err := s.Sweep(admin)
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"feed"}; i == 0 && !reflect.DeepEqual(res.Expired, want) || i == 1 && res.Changed() {
				t.Errorf("sweep %d: %+v", i, res)
			}
		}
		later := c.Now().Add(time.Hour)
		tok, err := s.Edit(admin, "feed", store.Edit{ExpiresAt: &later})
		if err != nil {
			t.Fatal(err)
		}
		if tok.StateAt(c.Now(), s.InactiveAfter()) != store.StateActive {
			t.Errorf("a new date did not revive the token")
		}
	})
}

func TestAllowAndBlockRanges(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := openOn(t, e, nil)
		mustCreate(t, s, "feed")
		n, err := s.SetAllowed(admin, "feed", []string{"::ffff:192.0.2.0/120", "192.0.2.0/24", "2001:db8::/32", "198.51.100.7/32"}, true)
		if err != nil || n != 3 {
			t.Fatalf("allow: %d, %v", n, err)
		}
		tok, _ := s.Get("feed")
		if want := []string{"192.0.2.0/24", "198.51.100.7", "2001:db8::/32"}; !reflect.DeepEqual(tok.Allowed, want) {
			t.Errorf("allowed %q, want %q", tok.Allowed, want)
		}
		if _, err := s.SetBlocked(admin, "feed", []string{"203.0.113.0/24", "203.0.113.9"}, true); err != nil {
			t.Fatal(err)
		}
		mustCreate(t, s, "plain")
		// Every way of reading tokens has the allow-list (list --json shows it).
		var each []store.Token
		if err := s.EachToken(func(t store.Token) error { each = append(each, t); return nil }); err != nil {
			t.Fatal(err)
		}
		list, _ := s.List()
		byID, _ := s.GetByID(tok.ID)
		for _, got := range [][]store.Token{each, list, {byID}} {
			if !reflect.DeepEqual(got[0].Allowed, tok.Allowed) || len(got) > 1 && got[1].Allowed != nil {
				t.Errorf("allow-lists read: %+v", got)
			}
		}
		ge, _ := s.GateEntries()
		if len(ge) == 2 && ge[0].Token.ID != tok.ID {
			ge[0], ge[1] = ge[1], ge[0]
		}
		if len(ge) != 2 || ge[1].Allowed != nil || !reflect.DeepEqual(ge[0].Allowed, tok.Allowed) || !reflect.DeepEqual(ge[0].Blocked, []string{"203.0.113.0/24", "203.0.113.9"}) {
			t.Errorf("gate entries %+v", ge)
		}
		now := time.Now()
		if _, err := s.RecordUsage([]store.UsageDelta{
			{TokenID: tok.ID, IP: "203.0.113.77", FirstUsedAt: now, LastUsedAt: now, Denied: 1},
			{TokenID: tok.ID, IP: "203.0.114.0", FirstUsedAt: now, LastUsedAt: now, Allowed: 1},
		}); err != nil {
			t.Fatal(err)
		}
		rows, err := s.Usage("feed")
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, u := range rows {
			got[u.IP] = u.Blocked
		}
		// A range is no row; an address inside it is blocked, the next one past it is not.
		if want := map[string]bool{"203.0.113.77": true, "203.0.114.0": false, "203.0.113.9": true}; !reflect.DeepEqual(got, want) {
			t.Errorf("usage rows %v, want %v", got, want)
		}
		rules, err := s.NetworkRulesID(tok.ID)
		if err != nil || !reflect.DeepEqual(rules, store.NetworkRules{Allowed: tok.Allowed, Blocked: []string{"203.0.113.0/24", "203.0.113.9"}}) {
			t.Errorf("NetworkRulesID = %+v, %v", rules, err)
		}
		before := takeSnapshot(t, s)
		for _, bad := range [][]string{{"10.0.0.1/8"}, {"10.0.0.0/8", "nonsense"}, {"0.0.0.0"}} {
			if _, err := s.SetAllowed(admin, "feed", bad, true); err == nil || strings.Contains(err.Error(), "\n") {
				t.Errorf("allow %q: %v", bad, err)
			}
			if _, err := s.SetBlocked(admin, "feed", bad, true); err == nil {
				t.Errorf("block %q: %v", bad, err)
			}
		}
		assertUnchanged(t, before, takeSnapshot(t, s))
	})
}

// TestNetworkRuleEdges: what the store keeps, read into a cidr.Set as the
// gate does, decides addresses at the edges of ranges, IPv4-mapped IPv6 as
// IPv4, and overlapping ranges as their union; removing one of two
// overlapping ranges leaves the other whole.
func TestNetworkRuleEdges(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		s := openOn(t, e, nil)
		mustCreate(t, s, "feed")
		if _, err := s.SetAllowed(admin, "feed", []string{"10.0.0.0/8", "10.1.0.0/16", "::ffff:172.16.0.0/108", "2001:db8::/48"}, true); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SetBlocked(admin, "feed", []string{"10.1.2.0/24", "::ffff:10.1.3.4"}, true); err != nil {
			t.Fatal(err)
		}
		sets := func() (allowed, blocked cidr.Set) {
			ge, err := s.GateEntries()
			if err != nil || len(ge) != 1 {
				t.Fatal(ge, err)
			}
			if allowed, err = cidr.NewSet(ge[0].Allowed); err != nil {
				t.Fatal(err)
			}
			if blocked, err = cidr.NewSet(ge[0].Blocked); err != nil {
				t.Fatal(err)
			}
			return allowed, blocked
		}
		allowed, blocked := sets()
		for _, tc := range []struct {
			ip               string
			allowed, blocked bool
		}{
			{"9.255.255.255", false, false},
			{"10.0.0.0", true, false},
			{"10.255.255.255", true, false},
			{"11.0.0.0", false, false},
			{"::ffff:10.0.0.0", true, false},
			{"172.15.255.255", false, false},
			{"172.16.0.0", true, false},
			{"172.31.255.255", true, false},
			{"::ffff:172.31.255.255", true, false},
			{"172.32.0.0", false, false},
			{"10.1.1.255", true, false},
			{"10.1.2.0", true, true},
			{"10.1.2.255", true, true},
			{"10.1.3.0", true, false},
			{"10.1.3.4", true, true},
			{"::ffff:10.1.3.4", true, true},
			{"2001:db8::", true, false},
			{"2001:db8:0:ffff:ffff:ffff:ffff:ffff", true, false},
			{"2001:db8:1::", false, false},
		} {
			a := netip.MustParseAddr(tc.ip)
			if got := allowed.Contains(a); got != tc.allowed {
				t.Errorf("%s allowed: %v, want %v", tc.ip, got, tc.allowed)
			}
			if got := blocked.Contains(a); got != tc.blocked {
				t.Errorf("%s blocked: %v, want %v", tc.ip, got, tc.blocked)
			}
		}
		// Of two overlapping ranges, taking away the wider leaves the narrower.
		if n, err := s.SetAllowed(admin, "feed", []string{"10.0.0.0/8"}, false); n != 1 || err != nil {
			t.Fatal(n, err)
		}
		allowed, _ = sets()
		for ip, want := range map[string]bool{"10.0.0.1": false, "10.1.0.0": true, "10.1.255.255": true, "10.2.0.0": false} {
			if got := allowed.Contains(netip.MustParseAddr(ip)); got != want {
				t.Errorf("after disallowing 10.0.0.0/8: %s allowed %v, want %v", ip, got, want)
			}
		}
	})
}

// TestParseGrace: the grace window as the CLI's --grace and the TUI's prompt
// read it, one parser: days, Go durations and 0; junk, negatives and more
// than MaxGrace refused with one line.
func TestParseGrace(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"24h", 24 * time.Hour, true},
		{"7d", 7 * 24 * time.Hour, true},
		{"1d12h", 36 * time.Hour, true},
		{"0", 0, true},
		{" 30m ", 30 * time.Minute, true},
		{"365d", store.MaxGrace, true},
		{"366d", 0, false},
		{"-1h", 0, false},
		{"banana", 0, false},
		{"", 0, false},
	} {
		got, err := store.ParseGrace(tc.in)
		if tc.ok && (err != nil || got != tc.want) {
			t.Errorf("ParseGrace(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		if !tc.ok && (err == nil || !errors.Is(err, store.ErrInvalidGrace) || strings.Contains(err.Error(), "\n")) {
			t.Errorf("ParseGrace(%q) = %v, %v; want one line matching ErrInvalidGrace", tc.in, got, err)
		}
	}
}

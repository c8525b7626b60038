package gate

import (
	"net/netip"
	"testing"

	"github.com/apptokens/apptokens/store/storetest"
)

// Verification allocates nothing (issue: 0 allocations per op), for an allowed
// token and for each kind of refusal that reaches the index.
func TestVerifyAllocatesNothing(t *testing.T) {
	s, err := storetest.OpenWith(storetest.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	secrets := seed(t, s, 100)
	g := newGate(t, Config{Store: s})
	ip := netip.MustParseAddr("192.0.2.7")
	for _, authz := range []string{"Bearer " + secrets[0], "Bearer " + secrets[1][:20], ""} {
		if n := testing.AllocsPerRun(1000, func() { g.verify(authz, 0, ip, g.now()) }); n != 0 {
			t.Errorf("verify(%.12q…) allocates %.0f times per call", authz, n)
		}
	}
	// With the lifecycle's rules (issue 11): allow-lists, blocked ranges, a
	// blocked address, expiry and a rotated secret; every verdict they give.
	if _, err := s.SetAllowed(admin, "tok-2", []string{"192.0.2.0/24", "2001:db8::/32"}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetBlocked(admin, "tok-2", []string{"192.0.2.128/25", "192.0.2.9"}, true); err != nil {
		t.Fatal(err)
	}
	r, err := s.Rotate(admin, "tok-3", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		authz, ip string
		want      reason
	}{
		{"Bearer " + secrets[2], "192.0.2.7", reasonOK},
		{"Bearer " + secrets[2], "2001:db8::7", reasonOK},
		{"Bearer " + secrets[2], "192.0.2.200", reasonIPBlocked},
		{"Bearer " + secrets[2], "192.0.2.9", reasonIPBlocked},
		{"Bearer " + secrets[2], "198.51.100.1", reasonIPNotAllowed},
		{"Bearer " + r.Secret.Reveal(), "198.51.100.1", reasonOK},
		{"Bearer " + secrets[3], "198.51.100.1", reasonUnknownToken}, // rotated with no grace: gone
	} {
		ip := netip.MustParseAddr(tc.ip)
		if v := g.verify(tc.authz, 0, ip, g.now()); v.reason != tc.want {
			t.Errorf("from %s: %v, want %v", tc.ip, v.reason, tc.want)
		}
		if n := testing.AllocsPerRun(1000, func() { g.verify(tc.authz, 0, ip, g.now()) }); n != 0 {
			t.Errorf("verify from %s (%v) allocates %.0f times per call", tc.ip, tc.want, n)
		}
	}
}

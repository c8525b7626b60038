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
}

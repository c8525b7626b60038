package gate

import (
	"fmt"
	"maps"
	"net/netip"
	"testing"
	"time"

	"github.com/apptokens/apptokens/internal/secret"
	"github.com/apptokens/apptokens/store"
)

// rulesGate is a gate over the benchmarks' store whose index gives every one
// of its benchTokens tokens the lifecycle's rules, as build makes them from
// store.GateEntries: an expiry a year on, an allow-list of four ranges (one
// holds the client), two blocked ranges and a blocked address. (Written to
// the store one token at a time, the rules would take the benchmark minutes
// to set up.)
func rulesGate(b *testing.B) *Gate {
	b.Helper()
	setupBench(b)
	s := benchGate.g.store
	g := newGate(b, Config{Store: s})
	g.mu.Lock()
	defer g.mu.Unlock()
	entries, err := s.GateEntries()
	if err != nil {
		b.Fatal(err)
	}
	year := s.Now().Add(365 * 24 * time.Hour)
	for i := range entries {
		t := &entries[i].Token
		t.ExpiresAt = year
		t.Allowed = []string{"10.0.0.0/8", "172.16.0.0/12", "192.0.2.0/24", "2001:db8::/32"}
		entries[i].Blocked = append(entries[i].Blocked, "192.0.2.128/25", "10.9.0.0/16")
	}
	g.byID = make(map[string]keys, len(entries))
	g.idx.Store(build(entries, s.InactiveAfter(), s.FeedVersion(), g.byID))
	return g
}

// benchVsFloor times verify of the Authorization headers from ip on g (with
// rules), walking them with a stride (cold cache lines, as a busy gate's), in
// alternate rounds with its floors, so that all meet
// the same load on a shared machine: verify of plainAuthz on plain, tokens
// with no rule, and SHA-256 of authz with one probe of the
// map floor (BenchmarkGateVerifyFloor's). The benchmark's time is g's verify.
// It reports x_plain and x_floor, the ratios to each; x_plain must stay within
// 2 (rules at most double the check), and verify must not allocate.
func benchVsFloor(b *testing.B, g *Gate, authz []string, plain *Gate, plainAuthz []string, floor map[secret.Digest]entry, ip netip.Addr, want reason) {
	if a := testing.AllocsPerRun(100, func() { g.verify(authz[0], 0, ip, g.now()) }); a != 0 {
		b.Errorf("verify allocates %.0f times per call", a)
	}
	const round = 256
	var took, plainTook, floorTook time.Duration
	// Each walk starts elsewhere, so that none reads what another warmed.
	i, j, k := 0, len(plainAuthz)/3, 2*len(authz)/3
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += round {
		n := min(round, b.N-done)
		start := time.Now()
		for range n {
			i = (i + 7919) % len(authz)
			if v := g.verify(authz[i], 0, ip, g.now()); v.reason != want {
				b.Fatalf("verify: %v, want %v", v.reason, want)
			}
		}
		took += time.Since(start)
		b.StopTimer()
		start = time.Now()
		for range n {
			j = (j + 7919) % len(plainAuthz)
			if v := plain.verify(plainAuthz[j], 0, ip, plain.now()); v.reason != reasonOK {
				b.Fatalf("plain verify: %v", v.reason)
			}
		}
		plainTook += time.Since(start)
		start = time.Now()
		for range n {
			k = (k + 7919) % len(authz)
			// The floor hashes the token as verify does (the header without "Bearer ").
			if _, ok := floor[secret.DigestOf(authz[k][len("Bearer "):])]; !ok {
				b.Fatal("the floor found no token")
			}
		}
		floorTook += time.Since(start)
		b.StartTimer()
	}
	xPlain := float64(took) / float64(plainTook)
	b.ReportMetric(xPlain, "x_plain")
	b.ReportMetric(float64(took)/float64(floorTook), "x_floor")
	if b.N >= 10_000 && xPlain > 2 {
		b.Errorf("verify with rules takes %.2f× verify without (at most 2×)", xPlain)
	}
}

// BenchmarkGateVerifyRules is BenchmarkGateVerify with every token under
// rules (expiry, allow-list, blocked ranges and address): valid tokens among
// benchTokens from an allowed address, beside its floor (x_floor ≤ 2, 0
// allocations).
func BenchmarkGateVerifyRules(b *testing.B) {
	g := rulesGate(b)
	benchVsFloor(b, g, benchGate.authz, benchGate.g, benchGate.authz, benchGate.g.idx.Load().base, netip.MustParseAddr("192.0.2.7"), reasonOK)
}

// cidrTokens are the tokens of BenchmarkGateVerifyCIDR by number of ranges,
// set up once per run (the benchmark function runs more than once).
var cidrTokens = map[int]string{}

// cidrToken creates a token with an allow-list of n ranges and as many
// blocked ranges, through the store, and returns its Authorization header.
func cidrToken(b *testing.B, s *store.Store, n int) string {
	if authz, ok := cidrTokens[n]; ok {
		return authz
	}
	c, err := s.Create(admin, store.NewToken{Name: fmt.Sprint("cidr-", n), Access: []store.Access{store.AccessSecurityDirector}})
	if err != nil {
		b.Fatal(err)
	}
	allow, block := make([]string, n), make([]string, n)
	for i := range n {
		allow[i] = fmt.Sprintf("10.%d.%d.0/24", i/250, i%250)     // 10.0.0.0/24 … 10.3.249.0/24
		block[i] = fmt.Sprintf("172.%d.%d.0/24", 16+i/250, i%250) // disjoint from the allowed
	}
	for i := 0; i < n; i += 500 { // the store takes 500 at once
		if _, err := s.SetAllowed(admin, c.Token.Name, allow[i:min(n, i+500)], true); err != nil {
			b.Fatal(err)
		}
		if _, err := s.SetBlocked(admin, c.Token.Name, block[i:min(n, i+500)], true); err != nil {
			b.Fatal(err)
		}
	}
	cidrTokens[n] = "Bearer " + c.Secret.Reveal()
	return cidrTokens[n]
}

// BenchmarkGateVerifyCIDR verifies one token with many ranges: an allow-list
// of ranges ranges and as many blocked ranges, set through the store, from an
// allowed address in the middle of them, beside its floor (x_floor ≤ 2, 0
// allocations); ranges=0 is the same with none.
func BenchmarkGateVerifyCIDR(b *testing.B) {
	setupBench(b)
	s := benchGate.g.store
	for _, n := range []int{0, 1000} {
		b.Run(fmt.Sprint("ranges=", n), func(b *testing.B) {
			authz := cidrToken(b, s, n)
			g := benchGate.g
			if n > 0 {
				for ip, want := range map[string]reason{"10.4.0.1": reasonIPNotAllowed, "172.17.0.1": reasonIPBlocked, "10.0.0.0": reasonOK, "10.3.249.255": reasonOK} {
					if v := g.verify(authz, 0, netip.MustParseAddr(ip), g.now()); v.reason != want {
						b.Fatalf("from %s: %v, want %v", ip, v.reason, want)
					}
				}
			}
			// The floor: one probe of a map of benchTokens digests, which holds
			// this token's.
			floor := maps.Clone(benchGate.g.idx.Load().base)
			floor[secret.DigestOf(authz[len("Bearer "):])] = entry{}
			// Plain: the same check of the token with no rule (ranges=0).
			plain := cidrToken(b, s, 0)
			benchVsFloor(b, g, []string{authz}, g, []string{plain}, floor, netip.MustParseAddr("10.2.0.77"), reasonOK) // in the 500th allowed range
		})
	}
}

package store_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/storetest"
)

// Operations over many keys read them at once, in a few read calls per
// transaction, not one (or more) per key: on etcd each read call is a network
// round trip, and a gate flushes its usage every second (issue 10: a flush of
// 2,000 pairs took 12× its bare writes, one Get at a time). A full chunk of
// usage, a sweep of a full chunk of tokens, a SetActive of a full batch of
// names, a SetBlocked of a full batch of addresses and a page of EachToken each read within a bound that does not grow
// with how many keys they read, on every shared engine.
func TestManyKeysReadAtOnce(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		var reads *atomic.Int64
		counted := storetest.NewEngine(e.Name, func(t testing.TB) store.Engine {
			eng, n := storetest.CountReads(e.New(t))
			reads = n
			return eng
		})
		c := newClock()
		s := openOn(t, counted, c)
		if _, ok := s.Engine().(store.SharedEngine); !ok {
			// Badger's reads cost no round trip: the store reads its keys
			// as it goes there, which costs less than gathering them.
			t.Skipf("%s: reads are in process", e.Name)
		}
		created := c.Now().Add(-60 * day)
		toks := seedTokens(t, s, "busy", s.MaxBatch(), created, "", 0)
		// A bound on read calls per transaction, far below the keys read:
		// the check that the keys are gathered first and read together.
		const bound = 6
		check := func(what string, keys int) {
			t.Helper()
			if got := reads.Swap(0); got > bound {
				t.Errorf("%s (%d keys) made %d read calls, want at most %d", what, keys, got, bound)
			}
		}

		n := s.UsageChunk()
		deltas := make([]store.UsageDelta, n)
		for i := range deltas {
			deltas[i] = store.UsageDelta{TokenID: toks[(i/2)%len(toks)].ID, IP: fmt.Sprintf("10.0.0.%d", i%2+1),
				FirstUsedAt: created, LastUsedAt: created, Allowed: 3, Denied: 1}
		}
		reads.Store(0)
		if w, err := s.RecordUsage(deltas); err != nil || w != n {
			t.Fatalf("RecordUsage: %d written, %v", w, err)
		}
		check("RecordUsage of one chunk", n)

		swept, err := s.ExpireStale(store.Actor{User: "policy"})
		if err != nil || len(swept) != len(toks) {
			t.Fatalf("ExpireStale swept %d of %d: %v", len(swept), len(toks), err)
		}
		check("ExpireStale of one chunk", len(toks))

		names := make([]string, len(toks))
		for i, tok := range toks {
			names[i] = tok.Name
		}
		if k, err := s.SetActive(admin, names, true); err != nil || k != len(names) {
			t.Fatalf("SetActive changed %d of %d: %v", k, len(names), err)
		}
		check("SetActive of a full batch", len(names))

		ips := make([]string, s.MaxBatch())
		for i := range ips {
			ips[i] = fmt.Sprintf("192.0.2.%d", i%250+1)
			if i >= 250 {
				ips[i] = fmt.Sprintf("2001:db8::%x", i)
			}
		}
		if k, err := s.SetBlocked(admin, toks[1].Name, ips, true); err != nil || k != len(ips) {
			t.Fatalf("SetBlocked changed %d of %d: %v", k, len(ips), err)
		}
		check("SetBlocked of many addresses", len(ips))

		var seen int
		if err := s.EachToken(func(store.Token) error { seen++; return nil }); err != nil || seen != len(toks) {
			t.Fatalf("EachToken gave %d of %d: %v", seen, len(toks), err)
		}
		check("EachToken", len(toks))

		u, err := s.Usage(toks[0].Name)
		if err != nil || len(u) != 2 || u[0].Allowed < 3 || u[1].Allowed < 3 {
			t.Fatalf("usage of %s after the flush: %+v, %v", toks[0].Name, u, err)
		}
	})
}

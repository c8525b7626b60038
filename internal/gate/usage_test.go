package gate

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
)

// sum adds up the requests in taken counts.
func sum(ps []pendingUse) (allowed, denied uint64) {
	for _, p := range ps {
		allowed += p.c.allowed
		denied += p.c.denied
	}
	return allowed, denied
}

// Parallel requests lose no count, and counts that could not be written come
// back with the next batch.
func TestUsageCounts(t *testing.T) {
	u := usage{limit: maxPendingPairs}
	ips := []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")}
	const workers, each = 8, 500
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				u.add(uint32(w%2), []string{"a", "b"}[w%2], ips[i%2], int64(1000+i), i%5 != 0, false)
			}
		})
	}
	wg.Wait()
	taken, _ := u.take()
	if len(taken) != 4 {
		t.Fatalf("%d rows, want 4 (2 tokens × 2 IPs): %+v", len(taken), taken)
	}
	for _, d := range deltasOf(taken) {
		if d.FirstUsedAt.UnixNano() > d.LastUsedAt.UnixNano() || d.LastUsedAt.UnixNano() != 1000+each-1 && d.LastUsedAt.UnixNano() != 1000+each-2 {
			t.Errorf("times of %+v", d)
		}
	}
	allowed, denied := sum(taken)
	if allowed+denied != workers*each || denied != workers*each/5 {
		t.Fatalf("allowed %d denied %d, want %d in all, %d denied", allowed, denied, workers*each, workers*each/5)
	}
	if again, _ := u.take(); len(again) != 0 || u.pairs.Load() != 0 {
		t.Fatalf("take did not empty the counters: %+v, %d pairs", again, u.pairs.Load())
	}
	// Requests arrive while the batch is being written, and the batch fails:
	// both are in the next batch, one row per pair.
	u.add(0, "a", ips[0], 5000, true, false)
	u.requeue(taken, nil)
	back, _ := u.take()
	allowed, denied = sum(back)
	if len(back) != 4 || allowed+denied != workers*each+1 {
		t.Fatalf("after requeue: %d rows, %d requests", len(back), allowed+denied)
	}
	for _, p := range back {
		if p.key.id == "a" && p.key.ip == ips[0] && (p.c.last != 5000 || p.c.first != 1000) {
			t.Errorf("merged times of %+v", p)
		}
	}
}

// TestUsageBound: past the bound on waiting pairs, requests of new pairs are
// dropped and counted as dropped, while known pairs still count; requeued counts
// that no longer fit are dropped too, never growing past the bound.
func TestUsageBound(t *testing.T) {
	const limit = 50
	u := usage{limit: limit}
	ipN := func(i int) netip.Addr { return netip.MustParseAddr(fmt.Sprintf("2001:db8::%x", i)) }
	known := netip.MustParseAddr("192.0.2.1")
	u.add(7, "known", known, 1, true, false)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 100 {
				u.add(uint32(w), "tok", ipN(w*100+i), int64(i+1), true, false)
			}
		})
	}
	wg.Wait()
	if n := u.pairs.Load(); n != limit {
		t.Fatalf("%d pairs waiting, want the bound %d", n, limit)
	}
	if d := u.dropped.Load(); d != 400-(limit-1) {
		t.Fatalf("%d requests dropped, want %d", d, 400-(limit-1))
	}
	// A pair already waiting still counts, also after a failed write.
	u.requeue(u.take())
	u.add(7, "known", known, 2, false, false)
	if d := u.dropped.Load(); d != 400-(limit-1) {
		t.Fatalf("a known pair's request was dropped")
	}
	taken, _ := u.take()
	if allowed, denied := sum(taken); len(taken) != limit || allowed != limit || denied != 1 {
		t.Fatalf("taken %d pairs, %d allowed, %d denied", len(taken), allowed, denied)
	}

	// The first 30 of the batch were written; new pairs fill 40 places while the
	// rest is written and fails: 10 of the 20 unwritten fit back.
	u.dropped.Store(0)
	for i := range 40 {
		u.add(9, "other", ipN(1000+i), 1, true, false)
	}
	u.requeue(taken[30:], nil)
	if n := u.pairs.Load(); n != limit {
		t.Fatalf("%d pairs after requeue, want %d", n, limit)
	}
	unwritten := map[usageKey]uint64{}
	var want uint64
	for _, p := range taken[30:] {
		unwritten[p.key] = p.c.allowed + p.c.denied
		want += p.c.allowed + p.c.denied
	}
	back := 0
	rest, _ := u.take()
	for _, p := range rest {
		if n, ok := unwritten[p.key]; ok {
			back++
			want -= n
		}
	}
	if back != 10 || u.dropped.Load() != want {
		t.Fatalf("%d unwritten pairs back, %d requests dropped; want 10 back, %d dropped", back, u.dropped.Load(), want)
	}
}

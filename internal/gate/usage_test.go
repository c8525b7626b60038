package gate

import (
	"net/netip"
	"sync"
	"testing"
)

// Parallel requests lose no count, and counts that could not be written come
// back with the next batch.
func TestUsageCounts(t *testing.T) {
	var u usage
	ips := []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")}
	const workers, each = 8, 500
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				u.add(uint32(w%2), []string{"a", "b"}[w%2], ips[i%2], int64(1000+i), i%5 != 0)
			}
		})
	}
	wg.Wait()
	deltas := u.take()
	if len(deltas) != 4 {
		t.Fatalf("%d rows, want 4 (2 tokens × 2 IPs): %+v", len(deltas), deltas)
	}
	var allowed, denied uint64
	for _, d := range deltas {
		allowed += d.Allowed
		denied += d.Denied
		if d.FirstUsedAt.UnixNano() > d.LastUsedAt.UnixNano() || d.LastUsedAt.UnixNano() != 1000+each-1 && d.LastUsedAt.UnixNano() != 1000+each-2 {
			t.Errorf("times of %+v", d)
		}
	}
	if allowed+denied != workers*each || denied != workers*each/5 {
		t.Fatalf("allowed %d denied %d, want %d in all, %d denied", allowed, denied, workers*each, workers*each/5)
	}
	if again := u.take(); len(again) != 0 {
		t.Fatalf("take did not empty the counters: %+v", again)
	}
	u.putBack(deltas)
	back := u.take()
	var total uint64
	for _, d := range back {
		total += d.Allowed + d.Denied
	}
	if len(back) != 4 || total != workers*each {
		t.Fatalf("after putBack: %d rows, %d requests", len(back), total)
	}
}

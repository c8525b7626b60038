package gate

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/apptokens/apptokens/internal/secret"
	"github.com/apptokens/apptokens/store"
)

// TestIndexExpiredMatchesStore: the gate's inactivity check agrees with
// store.Token.Expired on both sides of the boundary, for each clock start.
func TestIndexExpiredMatchesStore(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	after := 30 * 24 * time.Hour
	for _, tk := range []store.Token{
		{Active: true, CreatedAt: t0},
		{Active: true, CreatedAt: t0, LastUsedAt: t0.Add(5 * time.Hour)},
		{Active: true, CreatedAt: t0, LastUsedAt: t0.Add(time.Hour), ActivatedAt: t0.Add(9 * time.Hour)},
		{Active: false, CreatedAt: t0},
	} {
		x := &index{inactiveAfter: int64(after)}
		e := entry{since: tk.Since().UnixNano()}
		if tk.Active {
			e.flags = flagActive
		}
		start := time.Unix(0, e.since)
		for _, now := range []time.Time{start.Add(after - time.Nanosecond), start.Add(after), start.Add(after + time.Hour)} {
			if got, want := x.expired(&e, now.UnixNano()), tk.Expired(now, after); got != want {
				t.Errorf("token %+v at %v: expired %v, store says %v", tk, now, got, want)
			}
		}
		x.inactiveAfter = 0
		if x.expired(&e, start.Add(1000*after).UnixNano()) {
			t.Error("expired with the policy off")
		}
	}
}

func gateEntry(i int, active bool, blocked ...string) (store.GateEntry, secret.Digest) {
	d := secret.DigestOf(fmt.Sprint("token-", i))
	return store.GateEntry{Token: store.Token{
		ID: fmt.Sprintf("id%04d", i), Name: fmt.Sprintf("name-%d", i), Digest: d, Active: active,
		Access: []store.Access{store.AccessSecurityDirector}, CreatedAt: time.Unix(int64(i), 0),
	}, Blocked: blocked}, d
}

// TestIndexEdits: puts, removes and blocks through many snapshots, across folds
// and text compaction, never change an older snapshot and always read back.
func TestIndexEdits(t *testing.T) {
	byID := map[string]secret.Digest{}
	var initial []store.GateEntry
	for i := range 100 {
		ge, _ := gateEntry(i, true)
		initial = append(initial, ge)
	}
	x := build(initial, time.Hour, 1, byID)
	first := x
	ip := netip.MustParseAddr("192.0.2.1")
	// Enough changes for several folds; delete most tokens so the text is compacted.
	for i := 100; i < 100+3*maxRecent; i++ {
		ed := newEditor(x, byID)
		ge, _ := gateEntry(i, true)
		ed.put(ge)
		if i%2 == 0 {
			ge, _ = gateEntry(i, false, "192.0.2.1")
			ed.put(ge)
		}
		if i%4 != 0 {
			ed.remove(ge.Token.ID)
		}
		x = ed.done(uint64(i))
	}
	if len(x.recent) > maxRecent {
		t.Errorf("recent has %d entries: not folded", len(x.recent))
	}
	if x.deadText >= len(x.text) {
		t.Errorf("text of deleted tokens not dropped: %d of %d", x.deadText, len(x.text))
	}
	for i := range 100 + 3*maxRecent {
		_, d := gateEntry(i, true)
		e, ok := x.lookup(d)
		switch {
		case i < 100:
			if !ok || x.name(&e) != fmt.Sprint("name-", i) || x.id(&e) != fmt.Sprintf("id%04d", i) || e.flags&flagActive == 0 {
				t.Fatalf("token %d: %v %+v", i, ok, e)
			}
		case i%4 != 0:
			if ok {
				t.Fatalf("deleted token %d found", i)
			}
		default:
			if !ok || x.name(&e) != fmt.Sprint("name-", i) || e.flags&flagActive != 0 || !x.isBlocked(e.slot, ip) {
				t.Fatalf("token %d: %v %+v blocked=%v", i, ok, e, ok && x.isBlocked(e.slot, ip))
			}
		}
	}
	// The first snapshot still reads as it was.
	if len(first.base) != 100 || len(first.recent) != 0 {
		t.Fatalf("first snapshot changed: %d %d", len(first.base), len(first.recent))
	}
	// Unblocking forgets the IP.
	ed := newEditor(x, byID)
	ge, d := gateEntry(100, false)
	ed.block(ge.Token.ID, "192.0.2.1", false)
	x = ed.done(0)
	if e, _ := x.lookup(d); e.flags&flagBlocked != 0 || x.isBlocked(e.slot, ip) {
		t.Error("unblocked IP still blocked")
	}
}

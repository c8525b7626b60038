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
	byID := map[string]keys{}
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

// TestIndexRulesAcrossFolds: allow-lists, blocked ranges and rotations
// changed through many snapshots, across folds and the compaction of the
// rules' arrays, read back as set, while an early snapshot keeps its own.
func TestIndexRulesAcrossFolds(t *testing.T) {
	byID := map[string]keys{}
	var initial []store.GateEntry
	for i := range 50 {
		ge, _ := gateEntry(i, true)
		ge.Token.Allowed = []string{"10.0.0.0/8"}
		initial = append(initial, ge)
	}
	x := build(initial, 0, 1, byID)
	first := x
	in, out := netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("192.0.2.1")
	check := func(x *index, d secret.Digest, ip netip.Addr, want reason) {
		t.Helper()
		e, ok := x.lookup(d)
		if !ok {
			t.Fatal("token not found")
		}
		if got := x.network(&e, ip); got != want {
			t.Fatalf("from %v: %v, want %v", ip, got, want)
		}
	}
	// Each round gives token i%50 a new allow-list and a blocked range, and
	// takes the allow-list of another away: the old rules die, many folds pass.
	for r := range 3 * maxRecent {
		ed := newEditor(x, byID)
		ge, _ := gateEntry(r%50, true)
		ge.Token.Allowed = []string{fmt.Sprintf("10.%d.0.0/16", r%200), "2001:db8::/32"}
		ed.token(&ge.Token)
		ed.block(ge.Token.ID, fmt.Sprintf("10.%d.128.0/17", r%200), true)
		other, _ := gateEntry((r+25)%50, true)
		ed.token(&other.Token) // no allow-list: any address
		x = ed.done(uint64(r + 2))
	}
	// 3×2048 rounds replaced about 30,000 spans: the arrays stay bounded.
	if len(x.spans) > 2*maxDeadSpans || len(x.ruleSets) > maxDeadSpans {
		t.Errorf("dead rules not dropped: %d of %d spans, %d of %d sets", x.deadSpans, len(x.spans), x.deadRules, len(x.ruleSets))
	}
	last := 3*maxRecent - 1
	_, d := gateEntry(last%50, true)
	check(x, d, netip.MustParseAddr(fmt.Sprintf("10.%d.1.1", last%200)), reasonOK)
	check(x, d, netip.MustParseAddr(fmt.Sprintf("10.%d.200.1", last%200)), reasonIPBlocked)
	check(x, d, netip.MustParseAddr("2001:db8::1"), reasonOK)
	check(x, d, netip.MustParseAddr("::ffff:192.0.2.1"), reasonIPNotAllowed)
	_, open := gateEntry((last+25)%50, true)
	check(x, open, out, reasonOK)
	// The first snapshot reads as it was built.
	_, d0 := gateEntry(0, true)
	check(first, d0, in, reasonOK)
	check(first, d0, out, reasonIPNotAllowed)

	// A rotation: the previous secret has the token's rules too, and keeps
	// them when they change.
	ed := newEditor(x, byID)
	ge, oldDigest := gateEntry(7, true)
	ge.Token.OldDigest, ge.Token.OldValidUntil = oldDigest, time.Unix(1e9, 0)
	ge.Token.Digest = secret.DigestOf("rotated-7")
	ge.Token.Allowed = []string{"192.0.2.0/24"}
	ed.token(&ge.Token)
	x = ed.done(1 << 20)
	check(x, oldDigest, out, reasonOK)
	check(x, ge.Token.Digest, out, reasonOK)
	check(x, ge.Token.Digest, in, reasonIPNotAllowed)
	if e, _ := x.lookup(oldDigest); e.flags&flagOldSecret == 0 || e.until != time.Unix(1e9, 0).UnixNano() {
		t.Errorf("previous secret's entry %+v", e)
	}
	if n := x.size(); n != 50 {
		t.Errorf("size %d, want 50", n)
	}
}

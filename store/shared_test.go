package store_test

import (
	"testing"
	"time"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/storetest"
)

// twoNodes opens two stores, nodes "a" and "b", over one shared engine with
// etcd's default limits.
func twoNodes(t *testing.T, c *clock) (a, b *store.Store) {
	t.Helper()
	cl := storetest.NewCluster(t, storetest.Badger().New(t), storetest.EtcdLimits())
	open := func(name string) *store.Store {
		s, err := store.New(cl.Node(name), store.Options{Now: c.Now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	return open("a"), open("b")
}

// TestNodesUsageAddsUp: two gates record usage of the same (token, IP), each
// under its own keys: every read merges them (counts add up, first use is the
// earliest, last use the latest) on either node, and the ChangeUsed each node
// publishes carries the merged totals.
func TestNodesUsageAddsUp(t *testing.T) {
	c := newClock()
	a, b := twoNodes(t, c)
	tok := mustCreate(t, a, "feed").Token
	subB := b.Subscribe()
	defer subB.Close()
	t0 := c.Now()
	t1 := t0.Add(time.Minute)
	if _, err := a.RecordUsage([]store.UsageDelta{{TokenID: tok.ID, IP: "192.0.2.7", FirstUsedAt: t1, LastUsedAt: t1, Allowed: 3, Denied: 1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.RecordUsage([]store.UsageDelta{{TokenID: tok.ID, IP: "192.0.2.7", FirstUsedAt: t0, LastUsedAt: t0, Allowed: 5, Denied: 2}}); err != nil {
		t.Fatal(err)
	}
	want := store.Usage{TokenID: tok.ID, IP: "192.0.2.7", FirstUsedAt: t0, LastUsedAt: t1, Allowed: 8, Denied: 3}
	for name, s := range map[string]*store.Store{"a": a, "b": b} {
		rows, err := s.Usage("feed")
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || rows[0] != want {
			t.Errorf("node %s: usage = %+v, want %+v", name, rows, want)
		}
		got, err := s.Get("feed")
		if err != nil || !got.LastUsedAt.Equal(t1) {
			t.Errorf("node %s: last used = %v, %v; want %v", name, got.LastUsedAt, err, t1)
		}
		hours, err := s.UsageSeries("feed", "", t0.Add(-time.Hour))
		if err != nil || len(hours) != 1 || hours[0].Allowed != 8 || hours[0].Denied != 3 {
			t.Errorf("node %s: series = %+v, %v; want one hour of 8 allowed, 3 denied", name, hours, err)
		}
	}
	changes, reload := subB.Take()
	if reload {
		t.Fatal("node b was told to reload")
	}
	var last *store.Change
	for i := range changes {
		if changes[i].Kind == store.ChangeUsed {
			last = &changes[i]
		}
	}
	if last == nil || len(last.Usage) != 1 || last.Usage[0].Allowed != 8 || last.Usage[0].Denied != 3 || !last.Usage[0].FirstUsedAt.Equal(t0) {
		t.Fatalf("node b's last ChangeUsed = %+v, want the merged row (8 allowed, 3 denied)", last)
	}
}

// TestChangesReachEveryNode: a deactivation, a block and a policy change made
// on node a reach node b's subscribers with the state they need, and node b
// applies the policy.
func TestChangesReachEveryNode(t *testing.T) {
	c := newClock()
	a, b := twoNodes(t, c)
	mustCreate(t, a, "feed")
	sub := b.Subscribe()
	defer sub.Close()
	if _, err := a.SetActive(admin, []string{"feed"}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := a.SetBlocked(admin, "feed", []string{"198.51.100.9"}, true); err != nil {
		t.Fatal(err)
	}
	if err := a.SetInactiveAfter(48 * time.Hour); err != nil {
		t.Fatal(err)
	}
	changes, reload := sub.Take()
	if reload || len(changes) != 3 {
		t.Fatalf("node b got %+v (reload %v), want 3 changes", changes, reload)
	}
	if c0 := changes[0]; c0.Kind != store.ChangeToken || c0.Token == nil || c0.Token.Active {
		t.Errorf("first change = %+v, want the token, inactive", c0)
	}
	if c1 := changes[1]; c1.Kind != store.ChangeUsage || c1.IP != "198.51.100.9" || !c1.Blocked {
		t.Errorf("second change = %+v, want the block", c1)
	}
	if c2 := changes[2]; c2.Kind != store.ChangePolicy || c2.InactiveAfter != 48*time.Hour {
		t.Errorf("third change = %+v, want the policy", c2)
	}
	if got := b.InactiveAfter(); got != 48*time.Hour {
		t.Errorf("node b's policy = %v, want 48h", got)
	}
}

package store_test

import (
	"maps"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/storetest"
)

var admin = store.Actor{User: "alice"}

// openDir opens a store in a fresh temporary directory, closed at the end of the test.
func openDir(t testing.TB) (*store.Store, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := storetest.OpenWith(storetest.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, dir
}

// clock is a settable test clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock {
	return &clock{now: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// openMem opens an in-memory store on the given clock (time.Now when nil).
func openMem(t testing.TB, c *clock) *store.Store {
	t.Helper()
	return openOn(t, storetest.Badger(), c)
}

// openOn opens a store over a fresh engine of e on the given clock (time.Now
// when nil), closed at the end of the test.
func openOn(t testing.TB, e storetest.Engine, c *clock) *store.Store {
	t.Helper()
	var opts store.Options
	if c != nil {
		opts.Now = c.Now
	}
	return e.Open(t, opts)
}

func mustCreate(t testing.TB, s *store.Store, name string, access ...store.Access) store.Created {
	t.Helper()
	if len(access) == 0 {
		access = []store.Access{store.AccessSecurityDirector}
	}
	c, err := s.Create(admin, store.NewToken{Name: name, Description: "test token " + name, Access: access})
	if err != nil {
		t.Fatalf("create %q: %v", name, err)
	}
	return c
}

// snapshot is everything a caller can read from a store, plus its raw key/values.
type snapshot struct {
	tokens []store.Token
	usage  map[string][]store.Usage
	audit  []store.Event
	gate   []store.GateEntry
	policy time.Duration
	raw    map[string]string
}

func takeSnapshot(t testing.TB, s *store.Store) snapshot {
	t.Helper()
	var sn snapshot
	var err error
	if sn.tokens, err = s.List(); err != nil {
		t.Fatal(err)
	}
	sn.usage = map[string][]store.Usage{}
	for _, tok := range sn.tokens {
		if sn.usage[tok.Name], err = s.Usage(tok.Name); err != nil {
			t.Fatal(err)
		}
	}
	if sn.audit, err = s.Audit(0); err != nil {
		t.Fatal(err)
	}
	if sn.gate, err = s.GateEntries(); err != nil {
		t.Fatal(err)
	}
	sn.policy = s.InactiveAfter()
	if sn.raw, err = s.DumpKV(); err != nil {
		t.Fatal(err)
	}
	return sn
}

// assertUnchanged fails when anything readable, or any raw key, value or version,
// differs between two snapshots.
func assertUnchanged(t testing.TB, before, after snapshot) {
	t.Helper()
	if !reflect.DeepEqual(before.tokens, after.tokens) {
		t.Errorf("tokens changed:\nbefore %+v\nafter  %+v", before.tokens, after.tokens)
	}
	if !reflect.DeepEqual(before.usage, after.usage) {
		t.Errorf("usage changed:\nbefore %+v\nafter  %+v", before.usage, after.usage)
	}
	if !reflect.DeepEqual(before.audit, after.audit) {
		t.Errorf("audit changed:\nbefore %+v\nafter  %+v", before.audit, after.audit)
	}
	if !reflect.DeepEqual(before.gate, after.gate) {
		t.Errorf("gate entries changed")
	}
	if before.policy != after.policy {
		t.Errorf("policy changed from %v to %v", before.policy, after.policy)
	}
	if !maps.Equal(before.raw, after.raw) {
		t.Errorf("raw key/values changed: %d keys before, %d after", len(before.raw), len(after.raw))
	}
}

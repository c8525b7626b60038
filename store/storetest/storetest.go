// Package storetest opens stores for tests: over an in-memory Badger engine
// (Open), over Badger with any of its options (OpenWith), and over every
// engine in turn (Engines, Each), so that the domain's tests run unchanged
// against each.
package storetest

import (
	"testing"
	"time"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/badger"
	"github.com/apptokens/apptokens/store/etcd/etcdtest"
)

// Options are the Badger engine's options and the store's, for OpenWith.
type Options struct {
	// Dir is the database directory; ignored when InMemory.
	Dir string
	// InMemory keeps everything in memory.
	InMemory bool
	// Now is the store's clock; time.Now when nil.
	Now func() time.Time
	// ValueLogGCInterval is the Badger engine's (badger.Options).
	ValueLogGCInterval time.Duration
}

// OpenWith opens a store over the Badger engine with o: what a test of
// opening (a locked directory, a full disk) or of a restart needs. The caller
// closes it.
func OpenWith(o Options) (*store.Store, error) {
	eng, err := badger.Open(badger.Options{Dir: o.Dir, InMemory: o.InMemory, ValueLogGCInterval: o.ValueLogGCInterval})
	if err != nil {
		return nil, err
	}
	return store.New(eng, store.Options{Now: o.Now, LegacyBackup: badger.ReadLegacyBackup})
}

// Open opens a store over an in-memory Badger engine, with opts (at most one)
// when given, closed at the end of the test.
func Open(t testing.TB, opts ...store.Options) *store.Store {
	t.Helper()
	return Badger().Open(t, opts...)
}

// Engine is a named engine constructor.
type Engine struct {
	Name string
	// New returns a fresh, empty engine for t; the store over it closes it.
	New func(t testing.TB) store.Engine
}

// NewEngine is the table entry of an engine named name, which new opens
// fresh and empty for each test.
func NewEngine(name string, new func(t testing.TB) store.Engine) Engine {
	return Engine{Name: name, New: new}
}

// Open opens a store over a fresh engine of e, with opts (at most one) when
// given, closed at the end of the test.
func (e Engine) Open(t testing.TB, opts ...store.Options) *store.Store {
	t.Helper()
	var o store.Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.LegacyBackup == nil {
		o.LegacyBackup = badger.ReadLegacyBackup // as cmd opens stores
	}
	s, err := store.New(e.New(t), o)
	if err != nil {
		t.Fatalf("open a store over %s: %v", e.Name, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// Badger is the Badger engine in memory.
func Badger() Engine {
	return NewEngine("badger", func(t testing.TB) store.Engine {
		t.Helper()
		eng, err := badger.Open(badger.Options{InMemory: true})
		if err != nil {
			t.Fatal(err)
		}
		return eng
	})
}

// BadgerDisk is the Badger engine in a fresh temporary directory: what
// in memory cannot show (the value log, a data-directory switch).
func BadgerDisk() Engine {
	return NewEngine("badger-disk", func(t testing.TB) store.Engine {
		t.Helper()
		eng, err := badger.Open(badger.Options{Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		return eng
	})
}

// Etcd is the etcd engine on the test process's shared single-member
// cluster (etcdtest.Shared), under a fresh prefix for each test; a test
// binary that uses it runs through etcdtest.SharedMain.
func Etcd() Engine {
	return NewEngine("etcd", func(t testing.TB) store.Engine { return etcdtest.SharedEngine(t, "n1") })
}

// Engines is the table of engines the store's tests and benchmarks run
// against, in order: Badger in memory, a Cluster node (the shared path with
// etcd's limits) and etcd (the test process's shared member, etcdtest). More
// engines join here: an engine's test harness must not import storetest.
func Engines() []Engine {
	return []Engine{Badger(), Shared(), Etcd()}
}

// Each runs fn as a subtest for every engine of Engines.
func Each(t *testing.T, fn func(t *testing.T, e Engine)) {
	t.Helper()
	for _, e := range Engines() {
		t.Run(e.Name, func(t *testing.T) { fn(t, e) })
	}
}

// EachB runs fn as a sub-benchmark for every engine of engines (Engines when
// nil).
func EachB(b *testing.B, engines []Engine, fn func(b *testing.B, e Engine)) {
	b.Helper()
	if engines == nil {
		engines = Engines()
	}
	for _, e := range engines {
		b.Run(e.Name, func(b *testing.B) { fn(b, e) })
	}
}

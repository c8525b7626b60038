package store

import (
	"context"
	"errors"
)

// An Engine keeps the store's keys: the domain (this package) is written once
// over it, and store/badger (the embedded default, one process) and
// store/etcd (a cluster shared by many nodes) implement it. Keys are byte
// strings chosen by the domain (see store.go for the layout); an engine treats
// them as opaque and orders them bytewise. An engine never imports anything of
// the domain's beyond this file's types.
//
// Reads happen in View or Update; every read of one call sees one consistent
// snapshot. Writes happen only in Update (all or nothing), in Load (bulk,
// bounded batches, not atomic) and in Replace (everything at once, atomic).
type Engine interface {
	// View runs fn over a consistent snapshot of every key.
	View(fn func(Reader) error) error
	// Update runs fn in a serializable read-write transaction and commits what
	// it wrote, or nothing when fn returns an error (which Update returns as it
	// is). When another writer changed a key fn read with Get between that read
	// and the commit, the transaction is run again from the start, so fn must
	// have no effect outside tx; after too many conflicts it gives up with an
	// error matching ErrConflict. A transaction over Limits is refused with an
	// error matching ErrTooMany before anything is written.
	Update(fn func(Txn) error) error
	// Load writes many keys outside a transaction (seed data, a merging
	// restore), in batches the engine can hold: each batch is atomic, the whole
	// is not. What fn wrote before an error stays written.
	Load(fn func(Writer) error) error
	// Replace replaces every key with what fn writes, atomically: readers see
	// all of the old keys until Replace returns nil, and all of the new ones
	// after; when fn or the switch fails, the old keys stay whole and the error
	// is returned. Subscribers of a shared engine are reset (Watch).
	Replace(fn func(Writer) error) error
	// Limits are the most one Update may hold.
	Limits() Limits
	// String names the engine and where its data is, for errors and logs:
	// "database /var/lib/apptokens", "etcd at 10.0.0.1:2379,10.0.0.2:2379 (prefix /apptokens/)".
	String() string
	// Close releases the engine. Nothing may be called after it.
	Close() error
}

// Limits bound one Update. The domain splits writes that need not be all or
// nothing (usage, sweeps, clearing a deleted token's records) into chunks
// within them, and refuses an all-or-nothing change beyond them.
type Limits struct {
	// MaxOps is the most keys one transaction may read with Get plus write
	// (Set and Delete), whichever of the two is larger; 0 means no bound beyond
	// MaxBytes.
	MaxOps int
	// MaxBytes is the most bytes (keys and values written) one transaction may
	// hold.
	MaxBytes int
}

// Reader reads keys from one snapshot.
type Reader interface {
	// Get returns the value of key, or an error matching ErrNoKey when there is
	// none. The value is the caller's (a copy): it may be kept and modified.
	Get(key []byte) ([]byte, error)
	// GetMany is Get of every key of keys at once, in as few round trips as
	// the engine needs (one on etcd for up to Limits.MaxOps keys; Badger
	// reads them one by one, which costs no round trip): values[i] is the
	// value of keys[i], a copy, or nil when it is absent (no error for an
	// absent key). In an Update each key counts as one Get: toward the
	// conflict check and Limits, and a key the transaction wrote reads as
	// written. An error is a failed read, as Get's.
	GetMany(keys [][]byte) (values [][]byte, err error)
	// Scan returns an iterator over the keys with prefix, in key order
	// (descending when opts.Reverse), starting at opts.Start when it is set
	// (inclusive; a key at or after it ascending, at or before it descending).
	// In an Update, a scan does not add the keys it reads to the conflict check
	// and does not see the transaction's own writes: read a key with Get when
	// its change must abort the transaction.
	Scan(prefix []byte, opts ScanOptions) Iterator
	// ScanMany is a Scan (ascending, from the start, with values) of every
	// prefix of prefixes at once, in as few round trips as the engine needs
	// (one on etcd for up to Limits.MaxOps prefixes of up to a page of keys
	// each; a longer one is read on page by page): kvs[i] are the keys and
	// values under prefixes[i], in key order, the caller's. As with Scan, in
	// an Update the keys read do not count toward the conflict check nor
	// Limits. Meant for many small prefixes (every node's rows of one key):
	// all of it is held in memory.
	ScanMany(prefixes [][]byte) (kvs [][]KV, err error)
}

// KV is one key and its value, as ScanMany returns them.
type KV struct{ Key, Value []byte }

// ScanOptions tune a Scan.
type ScanOptions struct {
	// Start is where the scan begins (see Scan); nil is the prefix's first key
	// (its last when Reverse).
	Start []byte
	// Reverse scans in descending key order.
	Reverse bool
	// KeysOnly skips the values: Value returns nil.
	KeysOnly bool
}

// Iterator walks the keys of a Scan. It must be closed.
type Iterator interface {
	// Next moves to the next key; false at the end or on an error (Err).
	Next() bool
	// Key and Value are the current key and value, valid until Next or Close.
	Key() []byte
	Value() []byte
	// Err is the error that stopped the iteration, if any.
	Err() error
	Close()
}

// Writer writes keys.
type Writer interface {
	Set(key, value []byte) error
	Delete(key []byte) error
}

// Txn is a read-write transaction. Get sees the transaction's own writes.
type Txn interface {
	Reader
	Writer
}

// SharedEngine is an Engine whose keys other processes write too (etcd): a
// change committed anywhere reaches this process's subscribers through Watch,
// not from the writer. The domain writes each transaction's changes (the
// state its subscribers need, encoded) to one key, ChangesKey, in that same
// transaction, and every process watches that key.
type SharedEngine interface {
	Engine
	// Watch calls fn with each value written to key by any process, in commit
	// order, from the first write after Watch is called, until ctx is done. A
	// connection that drops is resumed from the last value delivered. When
	// values may have been missed (the history was compacted, Replace ran) it
	// calls reset instead, and goes on from the present. fn and reset are
	// called from one goroutine, one call at a time. Watch returns once the
	// watch is in place; the calls run in the background.
	Watch(ctx context.Context, key []byte, fn func(value []byte), reset func()) error
	// Lead runs fn while this process holds the leadership named name, which
	// at most one process of the cluster holds at a time: fn's context is
	// cancelled when the leadership is lost. Lead blocks until ctx is done and
	// returns nil then.
	Lead(ctx context.Context, name string, fn func(ctx context.Context)) error
	// Health is nil when a write would be accepted now (a quorum answers), or
	// an error that names the engine and its endpoints.
	Health(ctx context.Context) error
	// Node is this process's name among the nodes writing to the engine: the
	// domain writes what must never conflict between nodes (usage counts, last
	// use) under keys of its own node. Stable across restarts of one node.
	Node() string
}

// ChangesKey is the key a SharedEngine's transactions write their changes to.
const ChangesKey = "x"

// ErrNoKey is matched by a Get of a key that is absent.
var ErrNoKey = errors.New("key not found")

// ErrConflict is matched by an Update that gave up after conflicting with
// other writers too often.
var ErrConflict = errors.New("too many concurrent changes, try again")

// ErrUnavailable is matched when the engine cannot be reached or has no
// quorum; the error's text names the engine and its endpoints.
var ErrUnavailable = errors.New("store unavailable")

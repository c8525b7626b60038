package store

import (
	"errors"
	"fmt"
)

// MaxBatch is the most tokens SetActive or Delete, and the most IP addresses
// SetBlocked, accept in one call on any engine. Such a call is one
// all-or-nothing transaction, and Badger bounds a transaction (15% of the 8 MB
// memtable, about 1.2 MB). A record counts at most about 1 KB there (larger
// values go to the value log and count as a pointer), so a token record plus
// its audit event is at most about 2 KB, and 500 of them always fit. An engine
// with tighter Limits (etcd: 128 operations a transaction by default) allows
// fewer: Store.MaxBatch is the bound in force.
const MaxBatch = 500

// writeChunk is the most items the writes that need not be all-or-nothing
// (RecordUsage, ExpireStale, clearing a deleted token's usage, pruning the
// history) put in one transaction, by the same reckoning as MaxBatch; Store.chunk
// lowers it to the engine's Limits.
const writeChunk = MaxBatch

// What one item of a change costs a transaction, by the engine's reckoning of
// Limits: keys read with Get or written, whichever is more (MaxOps), and bytes.
const (
	// opsPerToken: SetActive and ExpireStale read a token's name, record and
	// last use, and write its record and an audit event; Delete writes five
	// keys (six on a shared engine, with this node's last use) and the event.
	opsPerToken = 7
	// opsPerAddress: SetBlocked reads and writes an address's block and its
	// usage row.
	opsPerAddress = 2
	// opsPerDelta: RecordUsage reads a delta's token record and last use (the
	// first time), its usage row, block and two hourly buckets, and writes
	// the row, the buckets and the last use.
	opsPerDelta = 6
	// opsFixed: what a transaction holds besides its items (the token of
	// SetBlocked, the audit event, the changes of a shared engine).
	opsFixed = 4
	// bytesPerToken is a token record plus its audit event as Badger counts
	// them (values above 1 KB are a pointer); bytesPerSharedToken adds the
	// whole record (up to 4 KB of description) and the change a shared engine
	// writes to ChangesKey.
	bytesPerToken       = 2 << 10
	bytesPerSharedToken = 12 << 10
	// bytesPerDelta is a usage row, two hourly buckets and the last use, with
	// their keys, and the change carrying them.
	bytesPerDelta = 1 << 10
)

func (s *Store) bytesPerToken() int {
	if s.shared != nil {
		return bytesPerSharedToken
	}
	return bytesPerToken
}

// chunk is how many items of ops keys (read or written) and bytes each one
// transaction holds: at most writeChunk, and within the engine's Limits.
func (s *Store) chunk(ops, bytes int) int {
	n := writeChunk
	l := s.eng.Limits()
	if l.MaxOps > 0 {
		n = min(n, (l.MaxOps-opsFixed)/ops)
	}
	if l.MaxBytes > 0 {
		n = min(n, (l.MaxBytes-4<<10)/bytes)
	}
	return max(n, 1)
}

// MaxBatch is the most tokens SetActive or Delete accept in one call on this
// store's engine: MaxBatch (500) on Badger, fewer on an engine with tighter
// Limits (17 on etcd with its default of 128 operations a transaction).
// SetBlocked accepts at least as many IP addresses (500 on Badger, 62 on
// etcd). More are refused (ErrTooMany) before anything is read, with an error
// that names the bound.
func (s *Store) MaxBatch() int {
	return s.chunk(opsPerToken, s.bytesPerToken())
}

// ErrTooMany is matched (errors.Is) by a refused change that names more items
// than one transaction can hold.
var ErrTooMany = errors.New("too many items in one change")

// limitError is a one-line message for the user that matches ErrTooMany.
type limitError struct{ msg string }

func (e *limitError) Error() string { return e.msg }
func (e *limitError) Unwrap() error { return ErrTooMany }

func tooMany(limit int, what string, got int) error {
	return &limitError{msg: fmt.Sprintf("at most %d %s at once (got %d)", limit, what, got)}
}

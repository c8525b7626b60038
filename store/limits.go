package store

import (
	"errors"
	"fmt"
)

// MaxBatch is the most tokens SetActive or Delete, and the most IP addresses
// SetBlocked, accept in one call. Such a call is one all-or-nothing transaction,
// and Badger bounds a transaction (15% of the 8 MB memtable, about 1.2 MB). A
// record counts at most about 1 KB there (larger values go to the value log and
// count as a pointer), so a token record plus its audit event is at most about
// 2 KB, and 500 of them always fit.
const MaxBatch = 500

// writeChunk is how many records the writes that need not be all-or-nothing
// (RecordUsage, ExpireStale, clearing a deleted token's usage) put in one
// transaction, by the same reckoning as MaxBatch.
const writeChunk = MaxBatch

// ErrTooMany is matched (errors.Is) by a refused change that names more items
// than one transaction can hold.
var ErrTooMany = errors.New("too many items in one change")

// limitError is a one-line message for the user that matches ErrTooMany.
type limitError struct{ msg string }

func (e *limitError) Error() string { return e.msg }
func (e *limitError) Unwrap() error { return ErrTooMany }

func tooMany(what string, got int) error {
	return &limitError{msg: fmt.Sprintf("at most %d %s at once (got %d)", MaxBatch, what, got)}
}

// errTxnTooBig replaces Badger's raw "Txn is too big to fit into one request".
var errTxnTooBig = &limitError{msg: "change too large for one database transaction; make it in smaller parts"}

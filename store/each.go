package store

import (
	"bytes"
	"errors"
)

// eachBatch is how many tokens EachToken reads in one transaction before it
// hands them on.
const eachBatch = 1024

// EachToken calls fn with every token in name order (case-insensitively, as
// List), so that a caller that streams the tokens (list --json, the TUI's
// shared token list) never holds all of them. The tokens are read eachBatch
// at a time, each batch in its own read transaction, and fn runs between
// them, outside any transaction: a slow fn (a client reading slowly) holds
// nothing of the store. A token created or deleted while EachToken runs may
// or may not be seen. An error from fn stops the iteration and is returned as
// it is.
func (s *Store) EachToken(fn func(Token) error) error {
	var last []byte // the name key read last
	batch := make([]Token, 0, eachBatch)
	for {
		batch = batch[:0]
		more := false
		err := s.view(func(txn Reader) error {
			// Every allow-list in one scan, not one scan per token.
			allowed, err := allAllowed(txn)
			if err != nil {
				return err
			}
			it := txn.Scan([]byte(pfxName), ScanOptions{Start: last})
			defer it.Close()
			for it.Next() {
				if last != nil && bytes.Equal(it.Key(), last) {
					continue
				}
				if len(batch) == eachBatch {
					more = true
					return nil
				}
				last = append(last[:0], it.Key()...)
				var t Token
				if err := s.getTokenBare(txn, string(it.Value()), &t); errors.Is(err, ErrNoKey) {
					continue // a name index without its token: nothing to show
				} else if err != nil {
					return err
				}
				t.Allowed = allowed[t.ID]
				batch = append(batch, t)
			}
			return it.Err()
		})
		if err != nil {
			return err
		}
		for _, t := range batch {
			if err := fn(t); err != nil {
				return err
			}
		}
		if !more {
			return nil
		}
	}
}

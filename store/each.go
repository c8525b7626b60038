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
			// The batch's IDs first, then their tokens read at once (one
			// round trip on etcd, not one a token).
			// fn may run again (an engine retries a read): it starts over
			// from last, which moves only when it is done.
			batch, more = batch[:0], false
			var ids []string
			next := last
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
				if len(ids) == eachBatch {
					more = true
					break
				}
				next = bytes.Clone(it.Key())
				ids = append(ids, string(it.Value()))
			}
			if err := it.Err(); err != nil {
				return err
			}
			ptx, err := s.prefetchTokens(txn, ids, nil, nil)
			if err != nil {
				return err
			}
			for _, id := range ids {
				var t Token
				if err := s.getTokenBare(ptx, id, &t); errors.Is(err, ErrNoKey) {
					continue // a name index without its token: nothing to show
				} else if err != nil {
					return err
				}
				t.Allowed = allowed[t.ID]
				batch = append(batch, t)
			}
			last = next
			return nil
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

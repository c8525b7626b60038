package store

import (
	"bytes"
	"errors"

	badger "github.com/dgraph-io/badger/v4"
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
		err := s.view(func(txn *badger.Txn) error {
			opts := badger.DefaultIteratorOptions
			opts.Prefix = []byte(pfxName)
			opts.PrefetchSize = 256
			it := txn.NewIterator(opts)
			defer it.Close()
			if last == nil {
				it.Rewind()
			} else if it.Seek(last); it.Valid() && bytes.Equal(it.Item().Key(), last) {
				it.Next()
			}
			var id []byte
			for ; it.Valid(); it.Next() {
				if len(batch) == eachBatch {
					more = true
					return nil
				}
				last = it.Item().KeyCopy(last[:0])
				var err error
				if id, err = it.Item().ValueCopy(id[:0]); err != nil {
					return err
				}
				var t Token
				if err := getToken(txn, string(id), &t); errors.Is(err, badger.ErrKeyNotFound) {
					continue // a name index without its token: nothing to show
				} else if err != nil {
					return err
				}
				batch = append(batch, t)
			}
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

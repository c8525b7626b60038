package store

import (
	"encoding/json"

	badger "github.com/dgraph-io/badger/v4"
)

// Audit returns audit events, newest first; limit <= 0 means all.
func (s *Store) Audit(limit int) ([]Event, error) {
	var out []Event
	err := s.view(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte(pfxEvent)
		opts.Reverse = true
		it := txn.NewIterator(opts)
		defer it.Close()
		// Reverse iteration must seek past the last key with the prefix.
		for it.Seek([]byte(pfxEvent + "\xff")); it.ValidForPrefix(opts.Prefix); it.Next() {
			var e Event
			if err := it.Item().Value(func(b []byte) error { return json.Unmarshal(b, &e) }); err != nil {
				return err
			}
			out = append(out, e)
			if limit > 0 && len(out) >= limit {
				break
			}
		}
		return nil
	})
	return out, err
}

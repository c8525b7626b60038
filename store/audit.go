package store

import (
	"encoding/json"
)

// Audit returns audit events, newest first; limit <= 0 means all.
func (s *Store) Audit(limit int) ([]Event, error) {
	var out []Event
	err := s.view(func(txn Reader) error {
		it := txn.Scan([]byte(pfxEvent), ScanOptions{Reverse: true})
		defer it.Close()
		for it.Next() {
			var e Event
			if err := json.Unmarshal(it.Value(), &e); err != nil {
				return err
			}
			out = append(out, e)
			if limit > 0 && len(out) >= limit {
				break
			}
		}
		return it.Err()
	})
	return out, err
}

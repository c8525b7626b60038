package store

import (
	"encoding/hex"
	"time"
)

// Test hooks for the external store_test package.

// PrefixToken is the key prefix of token records.
const PrefixToken = pfxToken

// DumpKV returns every live key (hex) with its value, and its commit version
// when the engine tells it (Badger: Versions): two equal dumps mean nothing
// at all was written in between.
func (s *Store) DumpKV() (map[string]string, error) {
	if v, ok := s.eng.(interface {
		Versions() (map[string]string, error)
	}); ok {
		return v.Versions()
	}
	out := map[string]string{}
	err := s.view(func(txn Reader) error {
		it := txn.Scan(nil, ScanOptions{})
		defer it.Close()
		for it.Next() {
			out[hex.EncodeToString(it.Key())] = hex.EncodeToString(it.Value())
		}
		return it.Err()
	})
	return out, err
}

// PrefixUsage is the key prefix of usage records.
const PrefixUsage = pfxUsage

// TokenRecords is what Create writes for t: its record and both index entries,
// keyed by raw key, for crafting backups in tests.
func TokenRecords(t Token) map[string][]byte {
	return map[string][]byte{
		string(tokenKey(t.ID)):      encodeToken(&t),
		string(nameKey(t.Name)):     []byte(t.ID),
		string(digestKey(t.Digest)): []byte(t.ID),
	}
}

// UsageKey is the key of the usage record of (id, ip) on a plain engine.
func UsageKey(id, ip string) []byte { return usageKey(id, ip) }

// PutRaw writes one record as given, bypassing every rule: a test corrupts a
// store with it on purpose.
func (s *Store) PutRaw(key, value []byte) error {
	return s.eng.Update(func(txn Txn) error { return txn.Set(key, value) })
}

// SetRestoreHook makes s call hook before each record a restore writes, with
// how many it has written; an error from hook fails the restore there.
func SetRestoreHook(s *Store, hook func(written int) error) { s.restoreHook = hook }

// LayoutKey is the key that says which key layout a database is in.
const LayoutKey = keyLayout

// LiveBytes is the size of every live record (key and value, latest version
// only): what the database would hold with no history at all.
func (s *Store) LiveBytes() (int64, error) {
	var n int64
	err := s.view(func(txn Reader) error {
		it := txn.Scan(nil, ScanOptions{})
		defer it.Close()
		for it.Next() {
			n += int64(len(it.Key()) + len(it.Value()))
		}
		return it.Err()
	})
	return n, err
}

// HourKey is the key of an hourly usage bucket on a plain engine: per token
// when ip is "".
func HourKey(id, ip string, hour time.Time) string {
	h, _ := hourNum(hour)
	if ip == "" {
		return string(withHour(hourTokenPrefix(id), h))
	}
	return string(withHour(hourIPPrefix(id, ip), h))
}

// EncodeHour is the value of an hourly usage bucket.
func EncodeHour(allowed, denied uint64) []byte { return encodeHour(allowed, denied) }

// WithoutHistory makes RecordUsage write the totals alone (a benchmark floor).
func (s *Store) WithoutHistory() { s.noHistory = true }

// HistoryBytes is the encoded size (keys and values) of the usage history.
func (s *Store) HistoryBytes() (n int, err error) {
	err = s.view(func(txn Reader) error {
		for _, pfx := range []string{pfxHourToken, pfxHourIP} {
			it := txn.Scan([]byte(pfx), ScanOptions{})
			for it.Next() {
				n += len(it.Key()) + len(it.Value())
			}
			err := it.Err()
			it.Close()
			if err != nil {
				return err
			}
		}
		return nil
	})
	return n, err
}

// UsageChunk is how many deltas RecordUsage writes in one transaction.
func (s *Store) UsageChunk() int { return s.chunk(opsPerDelta, bytesPerDelta) }

// SetPendingBound makes n the most changes a subscriber's queue holds (see
// maxPending), for subscriptions made after it: a test of the bound passes
// it in n+1 writes, not thousands.
func (s *Store) SetPendingBound(n int) { s.feed.pending = n }

// ClearChunk is how many keys of a deleted token's records one transaction
// clears (deletePrefix).
func (s *Store) ClearChunk() int { return s.chunk(1, 128) }

// RawKV is every key and value as they are (not hex), for tests that look
// for a token's keys.
func (s *Store) RawKV() (map[string]string, error) {
	out := map[string]string{}
	err := s.view(func(txn Reader) error {
		it := txn.Scan(nil, ScanOptions{})
		defer it.Close()
		for it.Next() {
			out[string(it.Key())] = string(it.Value())
		}
		return it.Err()
	})
	return out, err
}

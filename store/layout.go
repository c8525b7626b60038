package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Keys that hold state which changes often or must be found without reading a
// token's usage history. Why apart from the token record and the usage rows:
//
//   - A token record holds a description of up to 1,024 characters (up to 4 KB),
//     above Badger's value threshold, so it lives in the value log. The gate
//     records usage every second; if that rewrote the record (as it once did),
//     every flush left a dead copy of every used token in the value log: about
//     0.7 MB/s of garbage for 200 busy tokens. The last-used time now has its
//     own small key (l/<id>), written inline in the LSM tree, where compaction
//     drops overwritten versions by itself; the big record is rewritten only by
//     an admin's change, and the value-log GC loop (gc.go) reclaims those.
//   - Blocks have their own range (b/<id>/<ip>) so that finding a token's
//     blocked addresses reads its blocks, never its usage history (a token may
//     have been used from 100k addresses).
const (
	pfxBlock    = "b/" // b/<id>/<ip> → empty: ip is blocked for the token
	pfxLastUsed = "l/" // l/<id>[/<node>] → last use, varint unix nanoseconds
	keyLayout   = "m/layout"
)

// layoutVersion is the key layout this code writes; keyLayout holds it once a
// database has been migrated to it. Version 1 (no key) kept blocked flags in the
// usage rows and the last-used time only in the token record.
const layoutVersion = "2"

func blockPrefix(id string) []byte { return []byte(pfxBlock + id + "/") }
func blockKey(id, ip string) []byte {
	return []byte(pfxBlock + id + "/" + ip)
}

// lastUsedKey is the token's last-use key as a plain engine (Badger) writes
// it; on a shared engine each node writes its own, l/<id>/<node>
// (myLastUsedKey), under lastUsedNodePrefix, and a token's last use is the
// latest of them all.
func lastUsedKey(id string) []byte        { return []byte(pfxLastUsed + id) }
func lastUsedNodePrefix(id string) []byte { return []byte(pfxLastUsed + id + "/") }

// myLastUsedKey is the last-use key this process writes.
func (s *Store) myLastUsedKey(id string) []byte {
	if s.node == "" {
		return lastUsedKey(id)
	}
	return []byte(pfxLastUsed + id + "/" + s.node)
}

// mergeLastUse moves t.LastUsedAt forward to its last use as every node
// recorded it. It reads this process's own key with Get (in an Update: a
// conflict when it changes meanwhile); the other nodes' keys, on a shared
// engine, with a Scan, which no other node's write conflicts with.
func (s *Store) mergeLastUse(txn Reader, t *Token) error {
	v, err := txn.Get(s.myLastUsedKey(t.ID))
	if err == nil {
		err = mergeLastUsed(t, v)
	} else if errors.Is(err, ErrNoKey) {
		err = nil
	}
	if err != nil || s.node == "" {
		return err
	}
	// One scan of l/<id>: the plain key, every node's l/<id>/<node>, and
	// other tokens' keys whose ID starts with this one (skipped).
	own := s.myLastUsedKey(t.ID)
	base := lastUsedKey(t.ID)
	it := txn.Scan(base, ScanOptions{})
	defer it.Close()
	for it.Next() {
		k := it.Key()
		if len(k) > len(base) && k[len(base)] != '/' || bytes.Equal(k, own) {
			continue
		}
		if err := mergeLastUsed(t, it.Value()); err != nil {
			return err
		}
	}
	return it.Err()
}

func encodeLastUsed(t time.Time) []byte {
	return binary.AppendVarint(nil, t.UnixNano())
}

func decodeLastUsed(b []byte) (time.Time, error) {
	n, k := binary.Varint(b)
	if k <= 0 || k != len(b) || n <= 0 {
		return time.Time{}, errors.New("stored last-used time is corrupt")
	}
	return time.Unix(0, n).UTC(), nil
}

// mergeLastUsed moves t.LastUsedAt forward to the time in l/<id>, if later.
func mergeLastUsed(t *Token, v []byte) error {
	at, err := decodeLastUsed(v)
	if err != nil {
		return err
	}
	if at.After(t.LastUsedAt) {
		t.LastUsedAt = at
	}
	return nil
}

// isBlocked reports whether ip is blocked for the token id.
func isBlocked(txn Reader, id, ip string) (bool, error) {
	_, err := txn.Get(blockKey(id, ip))
	if errors.Is(err, ErrNoKey) {
		return false, nil
	}
	return err == nil, err
}

// listBlocks returns the addresses blocked for the token id, in key order.
func listBlocks(txn Reader, id string) ([]string, error) {
	prefix := blockPrefix(id)
	it := txn.Scan(prefix, ScanOptions{KeysOnly: true})
	defer it.Close()
	var out []string
	for it.Next() {
		out = append(out, string(it.Key()[len(prefix):]))
	}
	return out, it.Err()
}

// The layout migration is the domain's, written over the Engine: a backup of
// the old layout restored into any engine needs it as much as a Badger
// directory left by an older release does, and it only reads and writes keys.

// migrate brings a database written by an older layout to layoutVersion, once:
// blocked flags move from the usage rows to b/ keys (the row keeps its counts),
// and each token's last-used time gets its l/ key. It is idempotent: a run cut
// short redoes only what is left, and the layout key is written last. It
// writes through Load, reading a snapshot as it goes.
func (s *Store) migrate() error {
	err := s.eng.Load(func(w Writer) error {
		return s.view(func(txn Reader) error {
			if err := migrateRecords(txn, w, nil); err != nil {
				return err
			}
			return w.Set([]byte(keyLayout), []byte(layoutVersion))
		})
	})
	if err != nil {
		return fmt.Errorf("migrate database layout: %w", err)
	}
	return nil
}

// migrateRecords writes to w what the layout migration changes in what txn
// holds (layout 1), but the skipped keys: the usage rows that hold a blocked flag, without it, and
// their b/ keys; the l/ key of every token used, never moving one back.
func migrateRecords(txn Reader, w Writer, skip map[string]bool) error {
	it := txn.Scan([]byte(pfxUsage), ScanOptions{})
	defer it.Close()
	for it.Next() {
		if skip[string(it.Key())] || !bytes.Contains(it.Value(), []byte(`"blocked":true`)) {
			continue // most rows: no need to decode
		}
		var u Usage
		if err := json.Unmarshal(it.Value(), &u); err != nil {
			return err
		}
		if !u.Blocked {
			continue
		}
		if err := w.Set(blockKey(u.TokenID, u.IP), nil); err != nil {
			return err
		}
		u.Blocked = false
		if err := setJSON(w, bytes.Clone(it.Key()), u); err != nil {
			return err
		}
	}
	if err := it.Err(); err != nil {
		return err
	}
	tit := txn.Scan([]byte(pfxToken), ScanOptions{})
	defer tit.Close()
	for tit.Next() {
		var t Token
		if err := decodeToken(tit.Value(), &t); err != nil {
			return err
		}
		if t.LastUsedAt.IsZero() {
			continue
		}
		// Never move a last-used time back (a run cut short and redone).
		if v, err := txn.Get(lastUsedKey(t.ID)); err == nil {
			if err := mergeLastUsed(&t, v); err != nil {
				return err
			}
		} else if !errors.Is(err, ErrNoKey) {
			return err
		}
		if err := w.Set(lastUsedKey(t.ID), encodeLastUsed(t.LastUsedAt)); err != nil {
			return err
		}
	}
	return tit.Err()
}

// layoutCurrent reports whether the store is at layoutVersion (migrate writes
// nothing).
func (s *Store) layoutCurrent() (bool, error) {
	done := false
	err := s.view(func(txn Reader) error {
		v, err := txn.Get([]byte(keyLayout))
		if errors.Is(err, ErrNoKey) {
			return nil
		}
		done = string(v) == layoutVersion
		return err
	})
	return done, err
}

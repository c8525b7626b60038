package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger/v4"
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
	pfxLastUsed = "l/" // l/<id>      → last use, varint unix nanoseconds
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
func lastUsedKey(id string) []byte { return []byte(pfxLastUsed + id) }

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
func isBlocked(txn *badger.Txn, id, ip string) (bool, error) {
	_, err := txn.Get(blockKey(id, ip))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	return err == nil, err
}

// listBlocks returns the addresses blocked for the token id, in key order.
func listBlocks(txn *badger.Txn, id string) ([]string, error) {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = blockPrefix(id)
	opts.PrefetchValues = false
	it := txn.NewIterator(opts)
	defer it.Close()
	var out []string
	for it.Rewind(); it.Valid(); it.Next() {
		out = append(out, string(it.Item().Key()[len(opts.Prefix):]))
	}
	return out, nil
}

// migrate brings a database written by an older layout to layoutVersion, once:
// blocked flags move from the usage rows to b/ keys (the row keeps its counts),
// and each token's last-used time gets its l/ key. It is idempotent: a run cut
// short redoes only what is left, and the layout key is written last.
func migrate(db *badger.DB) error {
	done, err := layoutCurrent(db)
	if err != nil || done {
		return err
	}
	wb := db.NewWriteBatch()
	defer wb.Cancel()
	err = db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte(pfxUsage)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var u Usage
			err := it.Item().Value(func(b []byte) error {
				if !bytes.Contains(b, []byte(`"blocked":true`)) {
					return nil // most rows: no need to decode
				}
				return json.Unmarshal(b, &u)
			})
			if err != nil {
				return err
			}
			if !u.Blocked {
				continue
			}
			if err := wb.Set(blockKey(u.TokenID, u.IP), nil); err != nil {
				return err
			}
			u.Blocked = false
			if err := setJSON(wb, it.Item().KeyCopy(nil), u); err != nil {
				return err
			}
		}
		opts.Prefix = []byte(pfxToken)
		tit := txn.NewIterator(opts)
		defer tit.Close()
		for tit.Rewind(); tit.Valid(); tit.Next() {
			var t Token
			if err := tit.Item().Value(func(b []byte) error { return decodeToken(b, &t) }); err != nil {
				return err
			}
			if t.LastUsedAt.IsZero() {
				continue
			}
			// Never move a last-used time back (a run cut short and redone).
			if item, err := txn.Get(lastUsedKey(t.ID)); err == nil {
				if err := item.Value(func(v []byte) error { return mergeLastUsed(&t, v) }); err != nil {
					return err
				}
			} else if !errors.Is(err, badger.ErrKeyNotFound) {
				return err
			}
			if err := wb.Set(lastUsedKey(t.ID), encodeLastUsed(t.LastUsedAt)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("migrate database layout: %w", err)
	}
	if err := wb.Set([]byte(keyLayout), []byte(layoutVersion)); err != nil {
		return err
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("migrate database layout: %w", err)
	}
	return db.Sync()
}

// layoutCurrent reports whether db is at layoutVersion (migrate writes nothing).
func layoutCurrent(db *badger.DB) (bool, error) {
	done := false
	err := db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(keyLayout))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			done = string(v) == layoutVersion
			return nil
		})
	})
	return done, err
}

package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// Usage history: hourly buckets of allowed and denied requests, per token and
// per (token, IP), written by RecordUsage in the same transaction as the totals
// and kept HistoryRetention (PruneHistory drops older ones).
//
// Keys end in the hour as 4 big-endian bytes (hours since the Unix epoch, UTC),
// so a token's or an address's buckets are in time order and a window is one
// seek; values are two uvarints (allowed, denied): a bucket is 2 to 20 bytes.
//
//	ht/<id>/<hour>       → allowed, denied of the token (all addresses)
//	hi/<id>/<ip>/<hour>  → allowed, denied of the token from ip
//
// The per-token buckets are kept apart from the per-address ones so that the
// tokens table (24 buckets a token) never reads a token's addresses.
const (
	pfxHourToken = "ht/"
	pfxHourIP    = "hi/"
)

// HistoryRetention is how long hourly buckets are kept: a bucket goes once its
// hour ended more than HistoryRetention ago.
const HistoryRetention = 30 * 24 * time.Hour

// HourCount is the allowed and denied requests of one hour; Hour is UTC,
// truncated to the hour.
type HourCount struct {
	Hour            time.Time
	Allowed, Denied uint64
}

// UsageHour is what one commit added to one address's hour (increments, not
// totals): ChangeUsed carries them so that subscribers keep their charts
// current without reading the store.
type UsageHour struct {
	IP              string
	Hour            time.Time
	Allowed, Denied uint64
}

// hourNum is the hour holding t, in hours since the Unix epoch; ok is false
// for a time outside what a key can hold (before 1970, after year 490,000).
func hourNum(t time.Time) (uint32, bool) {
	s := t.Unix()
	if s < 0 || s/3600 > math.MaxUint32 {
		return 0, false
	}
	return uint32(s / 3600), true
}

// hourCeil is the first hour starting at or after t (0 before the epoch).
func hourCeil(t time.Time) uint32 {
	if t.Unix() < 0 {
		return 0
	}
	h, ok := hourNum(t)
	if !ok {
		return math.MaxUint32
	}
	if !time.Unix(int64(h)*3600, 0).Equal(t) && h < math.MaxUint32 {
		h++
	}
	return h
}

func hourTime(h uint32) time.Time { return time.Unix(int64(h)*3600, 0).UTC() }

func hourTokenPrefix(id string) []byte { return []byte(pfxHourToken + id + "/") }
func hourIPPrefix(id, ip string) []byte {
	return []byte(pfxHourIP + id + "/" + ip + "/")
}
func hourIPTokenPrefix(id string) []byte { return []byte(pfxHourIP + id + "/") }

// hourIPKey is withHour(hourIPPrefix(id, ip), h) in one allocation.
func hourIPKey(id, ip string, h uint32) []byte {
	k := make([]byte, 0, len(pfxHourIP)+len(id)+len(ip)+6)
	k = append(append(append(append(append(k, pfxHourIP...), id...), '/'), ip...), '/')
	return binary.BigEndian.AppendUint32(k, h)
}

func withHour(prefix []byte, h uint32) []byte {
	return binary.BigEndian.AppendUint32(prefix[:len(prefix):len(prefix)], h)
}

func encodeHour(allowed, denied uint64) []byte {
	b := binary.AppendUvarint(make([]byte, 0, 4), allowed)
	return binary.AppendUvarint(b, denied)
}

func decodeHour(b []byte) (allowed, denied uint64, err error) {
	a, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, 0, errors.New("stored hourly count is corrupt")
	}
	d, m := binary.Uvarint(b[n:])
	if m <= 0 || n+m != len(b) {
		return 0, 0, errors.New("stored hourly count is corrupt")
	}
	return a, d, nil
}

// addHour adds allowed and denied to the bucket at key, in txn.
func addHour(txn *badger.Txn, key []byte, allowed, denied uint64) error {
	item, err := txn.Get(key)
	if err == nil {
		err = item.Value(func(v []byte) error {
			a, d, err := decodeHour(v)
			allowed += a
			denied += d
			return err
		})
	} else if errors.Is(err, badger.ErrKeyNotFound) {
		err = nil
	}
	if err != nil {
		return err
	}
	return txn.Set(key, encodeHour(allowed, denied))
}

// hourBuckets accumulates one RecordUsage chunk's per-token hours, so that each
// token's bucket of an hour is written once per transaction.
type hourBuckets struct {
	order []tokenHour
	n     map[tokenHour]*[2]uint64
}

type tokenHour struct {
	id string
	h  uint32
}

// record writes d's per-address bucket in txn, notes its per-token one, and
// returns the increment for the change feed (ok false: nothing to count, or a
// time no bucket can hold).
func (hb *hourBuckets) record(txn *badger.Txn, d UsageDelta) (UsageHour, bool, error) {
	h, ok := hourNum(d.LastUsedAt)
	if !ok || d.Allowed+d.Denied == 0 {
		return UsageHour{}, false, nil
	}
	if err := addHour(txn, hourIPKey(d.TokenID, d.IP, h), d.Allowed, d.Denied); err != nil {
		return UsageHour{}, false, err
	}
	k := tokenHour{d.TokenID, h}
	c := hb.n[k]
	if c == nil {
		if hb.n == nil {
			hb.n = map[tokenHour]*[2]uint64{}
		}
		c = new([2]uint64)
		hb.n[k] = c
		hb.order = append(hb.order, k)
	}
	c[0] += d.Allowed
	c[1] += d.Denied
	return UsageHour{IP: d.IP, Hour: hourTime(h), Allowed: d.Allowed, Denied: d.Denied}, true, nil
}

// flush writes the noted per-token buckets in txn.
func (hb *hourBuckets) flush(txn *badger.Txn) error {
	for _, k := range hb.order {
		c := hb.n[k]
		if err := addHour(txn, withHour(hourTokenPrefix(k.id), k.h), c[0], c[1]); err != nil {
			return err
		}
	}
	return nil
}

// UsageSeries returns the hourly counts of the token named name for hours >=
// since, ascending, hours without requests omitted; ip "" sums all addresses,
// else only that address. It returns ErrNotFound for an unknown name and a
// one-line error for an invalid ip.
func (s *Store) UsageSeries(name, ip string, since time.Time) ([]HourCount, error) {
	if ip != "" {
		n, err := ClientIP(ip)
		if err != nil {
			return nil, err
		}
		ip = n
	}
	var out []HourCount
	err := s.view(func(txn *badger.Txn) error {
		t, err := getByName(txn, name)
		if err != nil {
			return err
		}
		prefix := hourTokenPrefix(t.ID)
		if ip != "" {
			prefix = hourIPPrefix(t.ID, ip)
		}
		out, err = readHours(txn, prefix, hourCeil(since), nil)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// readHours appends to out the buckets under prefix from hour from on.
func readHours(txn *badger.Txn, prefix []byte, from uint32, out []HourCount) ([]HourCount, error) {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = prefix
	it := txn.NewIterator(opts)
	defer it.Close()
	for it.Seek(withHour(prefix, from)); it.Valid(); it.Next() {
		item := it.Item()
		k := item.Key()
		if len(k) != len(prefix)+4 {
			return nil, fmt.Errorf("hourly bucket key %q is corrupt", k)
		}
		hc := HourCount{Hour: hourTime(binary.BigEndian.Uint32(k[len(prefix):]))}
		err := item.Value(func(v []byte) error {
			var err error
			hc.Allowed, hc.Denied, err = decodeHour(v)
			return err
		})
		if err != nil {
			return nil, err
		}
		out = append(out, hc)
	}
	return out, nil
}

// EachRecentHour calls fn for every per-token (all addresses) hourly bucket
// with Hour >= since, grouped by token and ascending within a token. The
// buckets are read first and fn called after, outside any transaction; an
// error from fn stops the walk and is returned.
func (s *Store) EachRecentHour(since time.Time, fn func(tokenID string, h HourCount) error) error {
	type bucket struct {
		id string
		h  HourCount
	}
	var all []bucket
	from := hourCeil(since)
	err := s.view(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte(pfxHourToken)
		it := txn.NewIterator(opts)
		defer it.Close()
		it.Rewind()
		for it.Valid() {
			item := it.Item()
			k := item.Key()
			if len(k) < len(pfxHourToken)+5 {
				return fmt.Errorf("hourly bucket key %q is corrupt", k)
			}
			prefix := k[:len(k)-4]
			h := binary.BigEndian.Uint32(k[len(prefix):])
			if h < from {
				it.Seek(withHour(append([]byte(nil), prefix...), from))
				continue
			}
			b := bucket{id: string(prefix[len(pfxHourToken) : len(prefix)-1]), h: HourCount{Hour: hourTime(h)}}
			if err := item.Value(func(v []byte) error {
				var err error
				b.h.Allowed, b.h.Denied, err = decodeHour(v)
				return err
			}); err != nil {
				return err
			}
			all = append(all, b)
			it.Next()
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, b := range all {
		if err := fn(b.id, b.h); err != nil {
			return err
		}
	}
	return nil
}

// PruneHistory deletes the hourly buckets whose hour ended more than
// HistoryRetention ago (by the store's clock) and returns how many. The gate's
// sweep calls it every minute; it reads nothing when it has already pruned up
// to the current cutoff (so it works once an hour). Deleting is chunked like
// every bulk write; on error, what was deleted stays deleted and the next call
// goes on.
func (s *Store) PruneHistory() (int, error) {
	cutoff, ok := hourNum(s.now().Add(-HistoryRetention))
	if !ok || int64(cutoff) <= s.prunedHour.Load() {
		return 0, nil
	}
	total := 0
	for _, pfx := range [...]string{pfxHourToken, pfxHourIP} {
		var from []byte
		for {
			var keys [][]byte
			err := s.view(func(txn *badger.Txn) error {
				var err error
				keys, from, err = oldHourKeys(txn, []byte(pfx), from, cutoff)
				return err
			})
			if err != nil {
				return total, fmt.Errorf("prune usage history: %w", err)
			}
			if len(keys) > 0 {
				if err := s.update(func(txn *badger.Txn) error {
					for _, k := range keys {
						if err := txn.Delete(k); err != nil {
							return err
						}
					}
					return nil
				}); err != nil {
					return total, fmt.Errorf("prune usage history: %w", err)
				}
				total += len(keys)
			}
			if from == nil {
				break
			}
		}
	}
	s.prunedHour.Store(int64(cutoff))
	return total, nil
}

// oldHourKeys returns up to writeChunk keys under pfx, from the key from on,
// whose hour is before cutoff, and where to go on (nil: done). It skips each
// bucket series at its first kept hour: the rest of it is newer.
func oldHourKeys(txn *badger.Txn, pfx, from []byte, cutoff uint32) (keys [][]byte, next []byte, err error) {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = pfx
	opts.PrefetchValues = false
	it := txn.NewIterator(opts)
	defer it.Close()
	if from == nil {
		it.Rewind()
	} else {
		it.Seek(from)
	}
	for it.Valid() {
		k := it.Item().Key()
		if len(k) < len(pfx)+5 {
			return nil, nil, fmt.Errorf("hourly bucket key %q is corrupt", k)
		}
		if binary.BigEndian.Uint32(k[len(k)-4:]) >= cutoff {
			// Past the series: its prefix then 5 bytes of 0xff sorts after
			// every key of it and before any other.
			skip := append(append([]byte(nil), k[:len(k)-4]...), 0xff, 0xff, 0xff, 0xff, 0xff)
			it.Seek(skip)
			continue
		}
		if len(keys) == writeChunk {
			return keys, it.Item().KeyCopy(nil), nil
		}
		keys = append(keys, it.Item().KeyCopy(nil))
		it.Next()
	}
	return keys, nil, nil
}

// checkHourRecord checks an hourly bucket of a backup and returns the ID of its
// token.
func checkHourRecord(key string, v []byte) (string, error) {
	if _, _, err := decodeHour(v); err != nil {
		return "", err
	}
	if len(key) < 5 {
		return "", errors.New("is malformed")
	}
	rest := key[:len(key)-4]
	var id string
	switch {
	case len(rest) > len(pfxHourToken) && rest[:len(pfxHourToken)] == pfxHourToken:
		id = rest[len(pfxHourToken) : len(rest)-1]
		if rest[len(rest)-1] != '/' || !validID(id) {
			return "", errors.New("is malformed")
		}
	case len(rest) > len(pfxHourIP) && rest[:len(pfxHourIP)] == pfxHourIP:
		body := rest[len(pfxHourIP):]
		if body[len(body)-1] != '/' {
			return "", errors.New("is malformed")
		}
		body = body[:len(body)-1]
		var ip string
		for i := 0; i < len(body); i++ {
			if body[i] == '/' {
				id, ip = body[:i], body[i+1:]
				break
			}
		}
		if !validID(id) {
			return "", errors.New("is malformed")
		}
		if n, err := ClientIP(ip); err != nil || n != ip {
			return "", fmt.Errorf("%s is not a normalized client address", quote(ip))
		}
	default:
		return "", errors.New("is malformed")
	}
	return id, nil
}

package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// Usage history: hourly buckets of allowed and denied requests, per token and
// per (token, IP), written by RecordUsage in the same transaction as the totals
// and kept HistoryRetention (PruneHistory drops older ones).
//
// Keys end in the hour as 4 big-endian bytes (hours since the Unix epoch, UTC),
// so a token's or an address's buckets are in time order and a window is one
// seek; values are two uvarints (allowed, denied): a bucket is 2 to 20 bytes.
//
//	ht/<id>/<hour>[/<node>]       → allowed, denied of the token (all addresses)
//	hi/<id>/<ip>/<hour>[/<node>]  → allowed, denied of the token from ip
//
// A plain engine (Badger) writes no /<node>; on a shared engine each node
// writes its own buckets, and a bucket read is the sum of every node's
// (which sort next to each other, right after the hour).
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

// myHourKey is the key of the bucket this process writes of the series
// prefix (hourTokenPrefix, hourIPPrefix) and hour h.
func (s *Store) myHourKey(prefix []byte, h uint32) []byte {
	k := withHour(prefix, h)
	if s.node != "" {
		k = append(append(k, '/'), s.node...)
	}
	return k
}

// hourKeyParts splits a bucket key under pfx (pfxHourToken: the series is
// pfx, the ID and '/'; pfxHourIP: pfx, the ID, '/', the address and '/') into
// the length of its series prefix and its hour; ok is false for a key that is
// not one.
func hourKeyParts(pfx string, k []byte) (series int, h uint32, ok bool) {
	slashes := 1
	if pfx == pfxHourIP {
		slashes = 2
	}
	series = len(pfx)
	for ; slashes > 0; slashes-- {
		i := bytes.IndexByte(k[min(series, len(k)):], '/')
		if i < 0 {
			return 0, 0, false
		}
		series += i + 1
	}
	if len(k) < series+4 || len(k) > series+4 && k[series+4] != '/' {
		return 0, 0, false
	}
	return series, binary.BigEndian.Uint32(k[series:]), true
}

// addHour adds allowed and denied to the bucket at key, in txn.
func addHour(txn Txn, key []byte, allowed, denied uint64) error {
	v, err := txn.Get(key)
	if err == nil {
		var a, d uint64
		a, d, err = decodeHour(v)
		allowed += a
		denied += d
	} else if errors.Is(err, ErrNoKey) {
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
	s     *Store
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
func (hb *hourBuckets) record(txn Txn, d UsageDelta) (UsageHour, bool, error) {
	h, ok := hourNum(d.LastUsedAt)
	if !ok || d.Allowed+d.Denied == 0 {
		return UsageHour{}, false, nil
	}
	if err := addHour(txn, hb.ipKey(d, h), d.Allowed, d.Denied); err != nil {
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

// ipKey is the per-address bucket of d in hour h that this process writes.
func (hb *hourBuckets) ipKey(d UsageDelta, h uint32) []byte {
	if hb.s.node != "" {
		return hb.s.myHourKey(hourIPPrefix(d.TokenID, d.IP), h)
	}
	return hourIPKey(d.TokenID, d.IP, h)
}

// keys are the buckets record and flush read for d: its per-address and
// per-token ones (none when record counts nothing).
func (hb *hourBuckets) keys(d UsageDelta) [][]byte {
	h, ok := hourNum(d.LastUsedAt)
	if !ok || d.Allowed+d.Denied == 0 {
		return nil
	}
	return [][]byte{hb.ipKey(d, h), hb.s.myHourKey(hourTokenPrefix(d.TokenID), h)}
}

// flush writes the noted per-token buckets in txn.
func (hb *hourBuckets) flush(txn Txn) error {
	for _, k := range hb.order {
		c := hb.n[k]
		if err := addHour(txn, hb.s.myHourKey(hourTokenPrefix(k.id), k.h), c[0], c[1]); err != nil {
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
	return s.usageSeries(byName(name), ip, since)
}

func (s *Store) usageSeries(ref tokenRef, ip string, since time.Time) ([]HourCount, error) {
	if ip != "" {
		n, err := ClientIP(ip)
		if err != nil {
			return nil, err
		}
		ip = n
	}
	var out []HourCount
	err := s.view(func(txn Reader) error {
		t, err := s.getRef(txn, ref)
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

// readHours appends to out the buckets under prefix from hour from on, every
// node's buckets of an hour summed.
func readHours(txn Reader, prefix []byte, from uint32, out []HourCount) ([]HourCount, error) {
	it := txn.Scan(prefix, ScanOptions{Start: withHour(prefix, from)})
	defer it.Close()
	for it.Next() {
		k := it.Key()
		if len(k) < len(prefix)+4 || len(k) > len(prefix)+4 && k[len(prefix)+4] != '/' {
			return nil, fmt.Errorf("hourly bucket key %q is corrupt", k)
		}
		a, d, err := decodeHour(it.Value())
		if err != nil {
			return nil, err
		}
		hour := hourTime(binary.BigEndian.Uint32(k[len(prefix):]))
		if n := len(out); n > 0 && out[n-1].Hour.Equal(hour) {
			out[n-1].Allowed += a
			out[n-1].Denied += d
			continue
		}
		out = append(out, HourCount{Hour: hour, Allowed: a, Denied: d})
	}
	return out, it.Err()
}

// EachRecentHour calls fn for every per-token (all addresses) hourly bucket
// with Hour >= since, grouped by token and ascending within a token (every
// node's bucket of an hour summed). The buckets are read first and fn called
// after, outside any transaction; an error from fn stops the walk and is
// returned.
func (s *Store) EachRecentHour(since time.Time, fn func(tokenID string, h HourCount) error) error {
	type bucket struct {
		id string
		h  HourCount
	}
	var all []bucket
	from := hourCeil(since)
	err := s.view(func(txn Reader) error {
		var start []byte
		for {
			more, err := func() (bool, error) {
				it := txn.Scan([]byte(pfxHourToken), ScanOptions{Start: start})
				defer it.Close()
				for it.Next() {
					k := it.Key()
					series, h, ok := hourKeyParts(pfxHourToken, k)
					if !ok || series < len(pfxHourToken)+2 {
						return false, fmt.Errorf("hourly bucket key %q is corrupt", k)
					}
					if h < from {
						// Skip to the series' first recent hour.
						start = withHour(bytes.Clone(k[:series]), from)
						return true, nil
					}
					a, d, err := decodeHour(it.Value())
					if err != nil {
						return false, err
					}
					id := string(k[len(pfxHourToken) : series-1])
					hour := hourTime(h)
					if n := len(all); n > 0 && all[n-1].id == id && all[n-1].h.Hour.Equal(hour) {
						all[n-1].h.Allowed += a
						all[n-1].h.Denied += d
						continue
					}
					all = append(all, bucket{id: id, h: HourCount{Hour: hour, Allowed: a, Denied: d}})
				}
				return false, it.Err()
			}()
			if err != nil || !more {
				return err
			}
		}
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
	chunk := s.chunk(1, 128)
	for _, pfx := range [...]string{pfxHourToken, pfxHourIP} {
		var from []byte
		for {
			var keys [][]byte
			err := s.view(func(txn Reader) error {
				var err error
				keys, from, err = oldHourKeys(txn, pfx, from, cutoff, chunk)
				return err
			})
			if err != nil {
				return total, fmt.Errorf("prune usage history: %w", err)
			}
			if len(keys) > 0 {
				if err := s.commit(func(txn Txn) ([]Change, error) {
					for _, k := range keys {
						if err := txn.Delete(k); err != nil {
							return nil, err
						}
					}
					return nil, nil
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

// oldHourKeys returns up to chunk keys under pfx, from the key from on, whose
// hour is before cutoff, and where to go on (nil: done). It skips each bucket
// series at its first kept hour: the rest of it is newer.
func oldHourKeys(txn Reader, pfx string, from []byte, cutoff uint32, chunk int) (keys [][]byte, next []byte, err error) {
	for {
		var skip []byte
		it := txn.Scan([]byte(pfx), ScanOptions{Start: from, KeysOnly: true})
		for it.Next() {
			k := it.Key()
			series, h, ok := hourKeyParts(pfx, k)
			if !ok {
				it.Close()
				return nil, nil, fmt.Errorf("hourly bucket key %q is corrupt", k)
			}
			if h >= cutoff {
				// Past the series: its prefix then 5 bytes of 0xff sorts after
				// every key of it (a node's name follows the hour) and before
				// any other.
				skip = append(bytes.Clone(k[:series]), 0xff, 0xff, 0xff, 0xff, 0xff)
				break
			}
			if len(keys) == chunk {
				next = bytes.Clone(k)
				break
			}
			keys = append(keys, bytes.Clone(k))
		}
		err := it.Err()
		it.Close()
		if err != nil || skip == nil {
			return keys, next, err
		}
		from = skip
	}
}

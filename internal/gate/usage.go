package gate

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apptokens/apptokens/store"
)

// usageShards spreads the counters over locks so that parallel requests for
// different (token, IP) pairs do not queue on one mutex.
const usageShards = 64

// maxPendingPairs bounds the (token, IP) pairs waiting for a flush (a pair
// counts once per hour it has requests in, see usageKey). Anyone with
// a token, even an inactive one, can add pairs by calling from many addresses
// (an IPv6 prefix has plenty), and a store that refuses writes keeps them: past
// the bound, requests of new pairs are not counted (Flush logs how many).
const maxPendingPairs = 100_000

// usageKey is one (token, IP) pair in one hour (unix nanoseconds at its
// start, on the gate's clock): a flush that spans the turn of an hour gives the
// store one delta per hour, so each request lands in its hour's bucket.
type usageKey struct {
	id   string
	ip   netip.Addr
	hour int64
}

// hourOf is the start of the hour holding now (unix nanoseconds).
func hourOf(now int64) int64 {
	h := now - now%int64(time.Hour)
	if now < 0 && h != now {
		h -= int64(time.Hour)
	}
	return h
}

type usageCount struct {
	first, last     int64 // unix nanoseconds
	allowed, denied uint64
}

type usageShard struct {
	mu sync.Mutex
	m  map[usageKey]*usageCount
	// used is, for tokens whose inactivity clock in the index had run more
	// than half the policy, their latest allowed request (unix nanoseconds), by
	// ID: the index learns of a use only once it is flushed, and verify must
	// not refuse a token used within the policy as expired meanwhile.
	used map[string]int64
	_    [40]byte // one shard per 64-byte cache line: no false sharing between locks
}

// usage aggregates requests per (token, IP) in memory until the next flush.
type usage struct {
	shards  [usageShards]usageShard
	limit   int64         // most pairs waiting at once
	pairs   atomic.Int64  // pairs waiting, in all shards
	dropped atomic.Uint64 // requests not counted since the last report
	// droppedTotal is every request not counted, for the metrics.
	droppedTotal atomic.Uint64
}

// pendingUse is one (token, IP) pair's counts taken for a flush, with the shard
// that held it, where it goes back if it cannot be written.
type pendingUse struct {
	shard int
	key   usageKey
	c     usageCount
}

func (u *usage) shard(slot uint32, ip netip.Addr) *usageShard {
	b := ip.As16()
	return &u.shards[(slot*31+uint32(b[15])+uint32(b[14])<<8)%usageShards]
}

// newPair makes room for one more pair, unless the bound is reached.
func (u *usage) newPair() bool {
	if u.pairs.Add(1) > u.limit {
		u.pairs.Add(-1)
		return false
	}
	return true
}

// add counts one request; keepUse also records an allowed one in used.
func (u *usage) add(slot uint32, id string, ip netip.Addr, now int64, allowed, keepUse bool) {
	s := u.shard(slot, ip)
	k := usageKey{id, ip, hourOf(now)}
	s.mu.Lock()
	c := s.m[k]
	if c == nil {
		if !u.newPair() {
			s.mu.Unlock()
			u.dropped.Add(1)
			u.droppedTotal.Add(1)
			return
		}
		if s.m == nil {
			s.m = map[usageKey]*usageCount{}
		}
		c = &usageCount{first: now}
		s.m[k] = c
	}
	if allowed {
		c.allowed++
	} else {
		c.denied++
	}
	if now > c.last {
		c.last = now
	}
	if allowed && keepUse && now > s.used[id] {
		if s.used == nil {
			s.used = map[string]int64{}
		}
		s.used[id] = now
	}
	s.mu.Unlock()
}

// usedAfter reports whether add kept an allowed use of the token later than
// cutoff (unix nanoseconds) that has not been taken yet.
func (u *usage) usedAfter(id string, cutoff int64) bool {
	for i := range u.shards {
		s := &u.shards[i]
		s.mu.Lock()
		at, ok := s.used[id]
		s.mu.Unlock()
		if ok && at > cutoff {
			return true
		}
	}
	return false
}

// take empties the counters and returns them, with the kept uses (nil when
// there are none).
func (u *usage) take() (out []pendingUse, used map[string]int64) {
	if n := u.pairs.Load(); n > 0 {
		out = make([]pendingUse, 0, n) // pairs may still arrive: a hint
	}
	for i := range u.shards {
		s := &u.shards[i]
		s.mu.Lock()
		m, su := s.m, s.used
		s.m, s.used = nil, nil
		s.mu.Unlock()
		for id, at := range su {
			if used == nil {
				used = map[string]int64{}
			}
			used[id] = max(used[id], at)
		}
		if len(m) == 0 {
			continue
		}
		u.pairs.Add(-int64(len(m)))
		for k, c := range m {
			out = append(out, pendingUse{shard: i, key: k, c: *c})
		}
	}
	return out, used
}

// requeue puts back counts that could not be written, merged with the counts of
// the same pairs since, so that the next flush writes them, and the kept uses.
// Pairs that no longer fit under the bound are dropped and reported like new
// ones. (Kept uses are at most one per token, which the index bounds.)
func (u *usage) requeue(ps []pendingUse, used map[string]int64) {
	if len(used) > 0 {
		s := &u.shards[0]
		s.mu.Lock()
		if s.used == nil {
			s.used = make(map[string]int64, len(used))
		}
		for id, at := range used {
			s.used[id] = max(s.used[id], at)
		}
		s.mu.Unlock()
	}
	for _, p := range ps {
		s := &u.shards[p.shard]
		s.mu.Lock()
		c := s.m[p.key]
		if c == nil {
			if !u.newPair() {
				s.mu.Unlock()
				u.dropped.Add(p.c.allowed + p.c.denied)
				u.droppedTotal.Add(p.c.allowed + p.c.denied)
				continue
			}
			if s.m == nil {
				s.m = map[usageKey]*usageCount{}
			}
			c = &usageCount{first: p.c.first}
			s.m[p.key] = c
		}
		c.first = min(c.first, p.c.first)
		c.last = max(c.last, p.c.last)
		c.allowed += p.c.allowed
		c.denied += p.c.denied
		s.mu.Unlock()
	}
}

// deltasOf is the store's form of taken counts.
func deltasOf(ps []pendingUse) []store.UsageDelta {
	out := make([]store.UsageDelta, len(ps))
	for i, p := range ps {
		out[i] = store.UsageDelta{
			TokenID:     p.key.id,
			IP:          p.key.ip.String(), // check counts only requests with a client IP
			FirstUsedAt: time.Unix(0, p.c.first).UTC(),
			LastUsedAt:  time.Unix(0, p.c.last).UTC(),
			Allowed:     p.c.allowed,
			Denied:      p.c.denied,
		}
	}
	return out
}

package gate

import (
	"net/netip"
	"sync"
	"time"

	"github.com/apptokens/apptokens/store"
)

// usageShards spreads the counters over locks so that parallel requests for
// different (token, IP) pairs do not queue on one mutex.
const usageShards = 64

type usageKey struct {
	id string
	ip netip.Addr
}

type usageCount struct {
	first, last     int64 // unix nanoseconds
	allowed, denied uint64
}

type usageShard struct {
	mu sync.Mutex
	m  map[usageKey]*usageCount
	_  [48]byte // one shard per 64-byte cache line: no false sharing between locks
}

// usage aggregates requests per (token, IP) in memory until the next flush.
type usage struct {
	shards [usageShards]usageShard
}

func (u *usage) add(slot uint32, id string, ip netip.Addr, now int64, allowed bool) {
	b := ip.As16()
	s := &u.shards[(slot*31+uint32(b[15])+uint32(b[14])<<8)%usageShards]
	s.mu.Lock()
	c := s.m[usageKey{id, ip}]
	if c == nil {
		if s.m == nil {
			s.m = map[usageKey]*usageCount{}
		}
		c = &usageCount{first: now}
		s.m[usageKey{id, ip}] = c
	}
	if allowed {
		c.allowed++
	} else {
		c.denied++
	}
	if now > c.last {
		c.last = now
	}
	s.mu.Unlock()
}

// take empties the counters and returns them as store deltas.
func (u *usage) take() []store.UsageDelta {
	var out []store.UsageDelta
	for i := range u.shards {
		s := &u.shards[i]
		s.mu.Lock()
		m := s.m
		s.m = nil
		s.mu.Unlock()
		for k, c := range m {
			out = append(out, store.UsageDelta{
				TokenID:     k.id,
				IP:          ipString(k.ip),
				FirstUsedAt: time.Unix(0, c.first).UTC(),
				LastUsedAt:  time.Unix(0, c.last).UTC(),
				Allowed:     c.allowed,
				Denied:      c.denied,
			})
		}
	}
	return out
}

// putBack returns deltas that could not be written, to be written with the next
// batch. They all go to the first shard: a pair may then come out twice in one
// batch, which the store adds up.
func (u *usage) putBack(deltas []store.UsageDelta) {
	for _, d := range deltas {
		ip, err := netip.ParseAddr(d.IP)
		if err != nil {
			ip = netip.IPv4Unspecified()
		}
		k := usageKey{d.TokenID, ip}
		s := &u.shards[0]
		s.mu.Lock()
		if s.m == nil {
			s.m = map[usageKey]*usageCount{}
		}
		c := s.m[k]
		if c == nil {
			c = &usageCount{first: d.FirstUsedAt.UnixNano()}
			s.m[k] = c
		}
		c.first = min(c.first, d.FirstUsedAt.UnixNano())
		c.last = max(c.last, d.LastUsedAt.UnixNano())
		c.allowed += d.Allowed
		c.denied += d.Denied
		s.mu.Unlock()
	}
}

// ipString is the usage row's IP: the client address, or 0.0.0.0 when the
// request did not come over TCP and has none.
func ipString(ip netip.Addr) string {
	if !ip.IsValid() {
		return netip.IPv4Unspecified().String()
	}
	return ip.String()
}

// Package tokenset is the token list that every TUI session of a process
// shares: one immutable, copy-on-write snapshot (Set), kept current from the
// store's change feed by one Hub per process. A session keeps only its view of
// it (an order of positions, a filter result, a selection, a window).
package tokenset

import (
	"cmp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/apptokens/apptokens/internal/secret"
	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/tui/table"
)

// SortKey is an order of the table.
type SortKey int

// Orders the sort key cycles through.
const (
	SortName     SortKey = iota // name, A to Z
	SortCreated                 // newest first
	SortLastUsed                // most recently used first, never used last
	NumSortKeys
)

func (k SortKey) String() string {
	switch k {
	case SortCreated:
		return "created (newest first)"
	case SortLastUsed:
		return "last used (most recent first)"
	}
	return "name"
}

// chunkSize is how many tokens share one chunk: a change to one token copies
// its chunk (and the slice of chunk pointers), never the whole list.
const chunkSize = 256

// entry is one token slot, compact: what the TUI shows of a token (never its
// digest), times as Unix nanoseconds (0: never), access as bits. Its last use
// is apart, in Set.used: the gate moves it every second for many tokens, and
// only those small chunks are copied then. A deleted token leaves an empty
// slot (gone) until the next compaction, so that positions stay the same
// token within an epoch.
type entry struct {
	id, name, desc, hint string
	lower                string // lower-cased name: the sort key and the filter's first field
	text                 string // lower-cased description: the filter's second field
	created, updated     int64
	activated            int64
	// expires is when the token expires (0: never); oldUntil is when its
	// old secret stops working after a rotation (0: none).
	expires, oldUntil int64
	access            uint8
	active, gone      bool
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// oldUntil is when t's old secret stops working, 0 when it has none.
func oldUntil(t store.Token) int64 {
	if t.OldDigest == (secret.Digest{}) {
		return 0
	}
	return nanos(t.OldValidUntil)
}

// makeEntry is t's entry and its last use.
func makeEntry(t store.Token) (entry, int64) {
	var bits uint8
	for i, a := range store.AllAccess() {
		if t.HasAccess(a) {
			bits |= 1 << i
		}
	}
	return entry{
		id: t.ID, name: t.Name, desc: t.Description, hint: t.Hint,
		lower: strings.ToLower(t.Name), text: strings.ToLower(t.Description),
		created: nanos(t.CreatedAt), updated: nanos(t.UpdatedAt),
		activated: nanos(t.ActivatedAt),
		expires:   nanos(t.ExpiresAt), oldUntil: oldUntil(t),
		access: bits, active: t.Active,
	}, nanos(t.LastUsedAt)
}

// token is the token at p as a store.Token (without its digest, which the
// TUI never needs).
func (s *Set) token(p int) store.Token {
	e := s.entry(p)
	t := store.Token{
		ID: e.id, Name: e.name, Description: e.desc, Hint: e.hint, Active: e.active,
		CreatedAt: fromNanos(e.created), UpdatedAt: fromNanos(e.updated),
		ActivatedAt: fromNanos(e.activated), LastUsedAt: fromNanos(s.lastUsed(p)),
		ExpiresAt: fromNanos(e.expires), OldValidUntil: fromNanos(e.oldUntil),
		Access: make([]store.Access, 0, 2),
	}
	for i, a := range store.AllAccess() {
		if e.access&(1<<i) != 0 {
			t.Access = append(t.Access, a)
		}
	}
	return t
}

// Set is an immutable snapshot of every token. Sessions share it: nothing in
// it is written after it is published, except the sort orders, which are
// computed once on first use and then shared too.
//
// A position (0 ≤ p < Len()) names the same token in every Set of one epoch
// (Epoch); a reload or a compaction starts a new epoch.
type Set struct {
	chunks        []*[chunkSize]entry
	used          []*[chunkSize]int64 // last use of each slot, Unix nanoseconds
	n             int                 // slots, gone ones included
	live          int
	epoch         uint64
	inactiveAfter time.Duration
	deleteAfter   time.Duration
	// textGen moves whenever a token's filter text may have changed (a token
	// added, removed or edited): a session whose filter result was made on a
	// Set of the same epoch and textGen, and whose order is the same slice,
	// keeps that result.
	textGen uint64

	orderMu sync.Mutex
	orders  [NumSortKeys][]int32 // nil until computed
	stats   stats
}

// Len is the number of positions, deleted slots included.
func (s *Set) Len() int { return s.n }

// Live is the number of tokens.
func (s *Set) Live() int { return s.live }

// Epoch is the epoch of the positions (see Set).
func (s *Set) Epoch() uint64 { return s.epoch }

// SameFilterInput reports whether a filter result made on o, in order k, is
// also the result on s: same positions, same filter text, and the same shared
// order.
func (s *Set) SameFilterInput(o *Set, k SortKey) bool {
	if o == nil || s.epoch != o.epoch || s.textGen != o.textGen {
		return false
	}
	a, b := s.Order(k), o.Order(k)
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// InactiveAfter is the inactivity policy in force when the Set was made.
func (s *Set) InactiveAfter() time.Duration { return s.inactiveAfter }

func (s *Set) entry(p int) *entry { return &s.chunks[p/chunkSize][p%chunkSize] }

func (s *Set) lastUsed(p int) int64 { return s.used[p/chunkSize][p%chunkSize] }

// Live reports whether position p holds a token (not a deleted one).
func (s *Set) IsLive(p int) bool { return !s.entry(p).gone }

// ID is the ID of the token at position p ("" when it was deleted).
func (s *Set) ID(p int) string { return s.entry(p).id }

// At is the token at position p, or nil when it was deleted: a copy of its
// own, without the digest.
func (s *Set) At(p int) *store.Token {
	if s.entry(p).gone {
		return nil
	}
	t := s.token(p)
	return &t
}

// Matches reports whether the token at p (live) contains q, lower-cased
// already, in its name or description, ignoring case.
func (s *Set) Matches(p int, q string) bool {
	e := s.entry(p)
	return strings.Contains(e.lower, q) || strings.Contains(e.text, q)
}

// Order is the positions of every token in the order k, computed once per Set
// and shared: callers must not change it.
func (s *Set) Order(k SortKey) []int32 {
	s.orderMu.Lock()
	defer s.orderMu.Unlock()
	if s.orders[k] == nil {
		o := make([]int32, 0, s.live)
		for p := 0; p < s.n; p++ {
			if !s.entry(p).gone {
				o = append(o, int32(p))
			}
		}
		slices.SortFunc(o, s.comparer(k))
		s.orders[k] = o
	}
	return s.orders[k]
}

// computedOrders is the orders computed so far.
func (s *Set) computedOrders() [NumSortKeys][]int32 {
	s.orderMu.Lock()
	defer s.orderMu.Unlock()
	return s.orders
}

// comparer orders positions by k, then by name.
func (s *Set) comparer(k SortKey) func(a, b int32) int {
	return func(a, b int32) int {
		ea, eb := s.entry(int(a)), s.entry(int(b))
		switch k {
		case SortCreated:
			if c := cmp.Compare(eb.created, ea.created); c != 0 {
				return c
			}
		case SortLastUsed:
			if c := cmp.Compare(s.lastUsed(int(b)), s.lastUsed(int(a))); c != 0 {
				return c
			}
		}
		return strings.Compare(ea.lower, eb.lower)
	}
}

// FromTokens builds a Set of toks in a new epoch (tests, and a full load).
func FromTokens(toks []store.Token, inactiveAfter time.Duration) *Set {
	var b Builder
	b.Reset(inactiveAfter)
	for _, t := range toks {
		b.Add(t)
	}
	return b.Publish()
}

// Name is the name of the token at position p ("" when it was deleted).
func (s *Set) Name(p int) string { return s.entry(p).name }

// StateAt is the state of the live token at p at now under the policy after,
// as store.Token.StateAt, without copying the token out.
func (s *Set) StateAt(p int, now time.Time, after time.Duration) store.State {
	at := now.UnixNano()
	if e := s.entry(p); e.expires != 0 && at >= e.expires {
		return store.StateExpired // whatever else holds, as store.Token.StateAt
	}
	if s.active(p, at, after) {
		return store.StateActive
	}
	return store.StateInactive
}

// active reports whether the token at p is active at now (Unix nanoseconds)
// under the policy after: store.Token.StateAt on the entry's own numbers.
func (s *Set) active(p int, now int64, after time.Duration) bool {
	e := s.entry(p)
	if !e.active || e.expires != 0 && now >= e.expires {
		return false
	}
	if after <= 0 {
		return true
	}
	since := max(e.created, e.activated, s.lastUsed(p))
	return now < since+int64(after)
}

// stats are counts over every token, computed once per Set and shared.
type stats struct {
	mu          sync.Mutex
	nameWidth   int
	hintWidth   int
	widthsDone  bool
	activeSec   int64 // the second the active count is for
	activeAfter time.Duration
	active      int
	staleAt     int64 // the earliest moment an active token passes its limit; 0: none
	activeDone  bool
}

// NameWidth is the length of the longest name, computed once.
func (s *Set) NameWidth() int {
	s.widths()
	return s.stats.nameWidth
}

// HintWidth is the width in cells of the widest hint, computed once.
func (s *Set) HintWidth() int {
	s.widths()
	return s.stats.hintWidth
}

func (s *Set) widths() {
	s.stats.mu.Lock()
	defer s.stats.mu.Unlock()
	if s.stats.widthsDone {
		return
	}
	nw, hw := 0, 0
	for p := range s.n {
		e := s.entry(p)
		nw = max(nw, len(e.name))
		hw = max(hw, table.Width(e.hint))
	}
	s.stats.nameWidth, s.stats.hintWidth, s.stats.widthsDone = nw, hw, true
}

// ActiveAt is how many tokens are active at now under the policy after, and
// the first moment after now that one of them passes its limit (zero: none).
// It is counted once per second of now and shared by every session asking
// within that second: a token that crosses its limit during that second is
// counted by the next.
func (s *Set) ActiveAt(now time.Time, after time.Duration) (active int, staleAt time.Time) {
	s.stats.mu.Lock()
	defer s.stats.mu.Unlock()
	sec := now.Unix()
	if !s.stats.activeDone || s.stats.activeSec != sec || s.stats.activeAfter != after {
		n, at, stale := 0, now.UnixNano(), int64(0)
		for p := range s.n {
			if s.active(p, at, after) {
				n++
				e := s.entry(p)
				end := e.expires // 0: never
				if after > 0 {
					inactive := max(e.created, e.activated, s.lastUsed(p)) + int64(after)
					if end == 0 || inactive < end {
						end = inactive
					}
				}
				if end != 0 && (stale == 0 || end < stale) {
					stale = end
				}
			}
		}
		s.stats.active, s.stats.staleAt = n, stale
		s.stats.activeSec, s.stats.activeAfter, s.stats.activeDone = sec, after, true
	}
	if s.stats.staleAt != 0 {
		staleAt = time.Unix(0, s.stats.staleAt).UTC()
	}
	return s.stats.active, staleAt
}

// OldUntil is when the old secret of the token at p stops working after a
// rotation (zero: it has none).
func (s *Set) OldUntil(p int) time.Time { return fromNanos(s.entry(p).oldUntil) }

// DeleteAfter is the auto-delete policy in force when the Set was made.
func (s *Set) DeleteAfter() time.Duration { return s.deleteAfter }

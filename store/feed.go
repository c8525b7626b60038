package store

import (
	"sync"
	"sync/atomic"
	"time"
)

// ChangeKind says what a committed change touched.
type ChangeKind int

// Kinds of change. Each carries the state its subscribers need, so that none
// of them (the gate's index, every TUI session) reads the store back to apply it.
const (
	ChangeToken   ChangeKind = iota + 1 // a token was created or changed: Token
	ChangeDeleted                       // a token was deleted: Token as it was
	ChangeUsage                         // an address was blocked or unblocked: IP, Blocked
	ChangePolicy                        // the inactivity policy changed: InactiveAfter
	ChangeReload                        // everything may have changed (restore, seed)
	// ChangeUsed: the gate's usage counts were recorded (RecordUsage); LastUsedAt
	// carries the token's new last-used time and Usage the rows written, so no
	// subscriber needs to read the store for them. Blocks never change with it.
	ChangeUsed
	// ChangeAllowed: a token's allow-list changed (SetAllowed); Allowed is the
	// whole list after the change and Token the token with it, so the gate
	// rebuilds that token's set without reading.
	ChangeAllowed
)

// Change is one committed change, published after the commit. Fields beyond
// Kind, TokenID and Name are set for the kinds that say so; subscribers share
// a Change and must not modify what its pointers and slices hold.
type Change struct {
	Kind    ChangeKind
	TokenID string
	Name    string
	// LastUsedAt is set for ChangeUsed.
	LastUsedAt time.Time
	// Token is the token as committed, for ChangeToken, and as it was before
	// it went, for ChangeDeleted (last use merged in).
	Token *Token
	// IP and Blocked are set for ChangeUsage: one change per address or
	// range whose block changed; IP is an address normalized as ParseIP does,
	// or a CIDR ("203.0.113.0/24") as cidr.Canonical gives it.
	IP      string
	Blocked bool
	// Usage is set for ChangeUsed: the (token, IP) rows as they are after the
	// write (totals, not the deltas), with their Blocked flag.
	Usage []Usage
	// Hours is set for ChangeUsed: what the write added to each (IP, hour)
	// bucket of the usage history (increments, not totals; an address and
	// hour may appear more than once: add them all).
	Hours []UsageHour
	// InactiveAfter and DeleteAfter are set for ChangePolicy: both policies
	// now in force (0: off).
	InactiveAfter time.Duration
	DeleteAfter   time.Duration
	// Allowed is set for ChangeAllowed: the token's whole allow-list.
	Allowed []string
}

// maxPending bounds a subscriber's queue; past it the subscriber is told to reload.
const maxPending = 4096

// Subscription receives changes. A slow subscriber never blocks a writer: its
// changes queue up to a bound, then collapse into one reload.
type Subscription struct {
	c      chan struct{}
	mu     sync.Mutex
	queue  []Change
	reload bool
	feed   *feed
	// used indexes the queued ChangeUsed of each token: the gate records usage
	// every second, and a later one supersedes an earlier one in the queue.
	used map[string]int
}

// C is signalled (coalesced) when changes are waiting; it is closed when the
// store closes or the subscription is cancelled.
func (s *Subscription) C() <-chan struct{} { return s.c }

// Take returns the waiting changes. reload is true when changes were dropped and
// the subscriber must reload everything it holds.
func (s *Subscription) Take() (changes []Change, reload bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	changes, reload = s.queue, s.reload
	s.queue, s.reload, s.used = nil, false, nil
	return changes, reload
}

// Close cancels the subscription.
func (s *Subscription) Close() { s.feed.remove(s) }

type feed struct {
	mu     sync.Mutex
	subs   map[*Subscription]struct{}
	closed bool
	// pending bounds each subscriber's queue: maxPending when 0 (a test sets
	// a smaller one before subscribing, so that it need not make thousands
	// of writes to pass it).
	pending int
	// version counts publications. It moves after the changes are queued to every
	// subscriber, so a subscriber that reads version v and then calls Take has
	// received every change published up to v.
	version atomic.Uint64
}

// bound is the most changes a subscriber's queue holds.
func (f *feed) bound() int {
	if f.pending > 0 {
		return f.pending
	}
	return maxPending
}

// FeedVersion is the number of publications so far, a cheap atomic read. A reader
// that must not act on state older than the last commit (the gate: "a deactivation
// is refused by the next request") compares it with the version it has applied:
// read FeedVersion, then Take, then apply; every change up to that version is in.
func (s *Store) FeedVersion() uint64 { return s.feed.version.Load() }

// Subscribe returns a subscription to committed changes.
func (s *Store) Subscribe() *Subscription {
	sub := &Subscription{c: make(chan struct{}, 1), feed: &s.feed}
	s.feed.mu.Lock()
	defer s.feed.mu.Unlock()
	if s.feed.closed {
		close(sub.c)
		return sub
	}
	if s.feed.subs == nil {
		s.feed.subs = map[*Subscription]struct{}{}
	}
	s.feed.subs[sub] = struct{}{}
	return sub
}

func (f *feed) publish(changes ...Change) {
	if len(changes) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for sub := range f.subs {
		sub.mu.Lock()
		if !sub.reload {
			sub.enqueue(changes)
		}
		sub.mu.Unlock()
		select {
		case sub.c <- struct{}{}:
		default:
		}
	}
	f.version.Add(1)
}

func (f *feed) remove(sub *Subscription) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.subs[sub]; ok {
		delete(f.subs, sub)
		close(sub.c)
	}
}

func (f *feed) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for sub := range f.subs {
		close(sub.c)
	}
	f.subs = nil
}

// enqueue adds changes to the queue, collapsing repeated ChangeUsed of a token
// into the newest, and turns an overlong queue into one reload. sub.mu is held.
func (s *Subscription) enqueue(changes []Change) {
	for _, c := range changes {
		if c.Kind == ChangeUsed {
			if i, ok := s.used[c.TokenID]; ok {
				s.queue[i] = mergeUsed(s.queue[i], c)
				continue
			}
			if s.used == nil {
				s.used = map[string]int{}
			}
			s.used[c.TokenID] = len(s.queue)
		}
		if len(s.queue) >= s.feed.bound() {
			s.queue, s.used, s.reload = nil, nil, true
			return
		}
		s.queue = append(s.queue, c)
	}
}

// mergeUsed is one ChangeUsed for two of the same token, older first: the later
// last-used time, each address's newer row (rows are totals: the counts
// only grow, so the larger is the newer), and the hourly increments of both. The older change's Usage is not modified: other subscribers hold it.
func mergeUsed(older, newer Change) Change {
	out := newer
	if older.LastUsedAt.After(out.LastUsedAt) {
		out.LastUsedAt = older.LastUsedAt
	}
	if len(older.Hours) > 0 {
		// Increments: both changes' count, older first, in a new slice.
		out.Hours = append(append(make([]UsageHour, 0, len(older.Hours)+len(newer.Hours)), older.Hours...), newer.Hours...)
	}
	if len(older.Usage) == 0 {
		return out
	}
	rows := make([]Usage, 0, len(older.Usage)+len(newer.Usage))
	at := make(map[string]int, len(older.Usage)+len(newer.Usage))
	for _, u := range older.Usage {
		at[u.IP] = len(rows)
		rows = append(rows, u)
	}
	for _, u := range newer.Usage {
		if i, ok := at[u.IP]; ok {
			// Two writers may publish out of order: the larger totals are newer.
			if u.Allowed+u.Denied >= rows[i].Allowed+rows[i].Denied {
				rows[i] = u
			}
			continue
		}
		at[u.IP] = len(rows)
		rows = append(rows, u)
	}
	out.Usage = rows
	return out
}

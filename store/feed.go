package store

import (
	"sync"
	"sync/atomic"
	"time"
)

// ChangeKind says what a committed change touched.
type ChangeKind int

// Kinds of change.
const (
	ChangeToken   ChangeKind = iota + 1 // a token was created or changed
	ChangeDeleted                       // a token was deleted
	ChangeUsage                         // blocks of a token changed (SetBlocked)
	ChangePolicy                        // the inactivity policy changed
	ChangeReload                        // everything may have changed (restore)
	// ChangeUsed: the gate's usage counts were recorded (RecordUsage); LastUsedAt
	// carries the token's new last-used time, so no subscriber needs to read the
	// store for it. Blocks never change with it.
	ChangeUsed
)

// Change is one committed change, published after the commit.
type Change struct {
	Kind    ChangeKind
	TokenID string
	Name    string
	// LastUsedAt is set for ChangeUsed.
	LastUsedAt time.Time
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
	// version counts publications. It moves after the changes are queued to every
	// subscriber, so a subscriber that reads version v and then calls Take has
	// received every change published up to v.
	version atomic.Uint64
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
				if c.LastUsedAt.After(s.queue[i].LastUsedAt) {
					s.queue[i] = c
				}
				continue
			}
			if s.used == nil {
				s.used = map[string]int{}
			}
			s.used[c.TokenID] = len(s.queue)
		}
		if len(s.queue) >= maxPending {
			s.queue, s.used, s.reload = nil, nil, true
			return
		}
		s.queue = append(s.queue, c)
	}
}

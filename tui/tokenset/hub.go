package tokenset

import (
	"errors"
	"sync"
	"time"

	"github.com/apptokens/apptokens/store"
)

// Source is what the Hub reads: the tokens once, then the change feed (whose
// changes carry their state), and a token again only when a change does not
// carry it.
type Source interface {
	EachToken(fn func(store.Token) error) error
	GetByID(id string) (store.Token, error)
	InactiveAfter() time.Duration
	DeleteAfter() time.Duration
	Subscribe() *store.Subscription
}

// patchLimit is how many changed tokens are read one by one; past it the whole
// list is read again. The gate's usage (store.ChangeUsed) carries its new
// last-used time and is applied without a read.
const patchLimit = 256

// maxQueued bounds the changes waiting for one Watch; past it they collapse
// into one reload, as the store's feed does.
const maxQueued = 4096

// Hub keeps one Set current for every session of a process: one store
// subscription, one read of the tokens, each change applied once. It holds
// nothing while no one watches: the first Watch loads the tokens, the last
// Close drops them. Build one per process with NewHub and share it.
type Hub struct {
	src Source
	// Release, when set (before the first Watch), runs after each full read of
	// the tokens and after the last watch closed (the set is garbage then): a
	// server gives that memory back to the OS there (debug.FreeOSMemory)
	// rather than over minutes.
	Release func()

	mu       sync.Mutex
	feed     *feeder // nil while no one watches
	set      *Set
	watchers map[*Watch]struct{}
}

// NewHub returns a Hub over src. It reads nothing until the first Watch.
func NewHub(src Source) *Hub {
	return &Hub{src: src, watchers: map[*Watch]struct{}{}}
}

// Update is what a Watch has waiting: the newest Set (nil until the first
// load), the last error of a load or patch since the last Take (nil: none),
// with when it is tried again, and the store changes since the last Take, for
// screens that follow other things than the token list (usage, audit). Reload
// means changes were dropped.
type Update struct {
	Tokens  *Set
	Err     error
	RetryIn time.Duration
	Changes []store.Change
	Reload  bool
}

// Watch is one session's subscription to the Hub.
type Watch struct {
	h *Hub
	c chan struct{}
	// guarded by h.mu
	changes []store.Change
	reload  bool
	err     error
	retryIn time.Duration
	closed  bool
}

// Watch subscribes a session. Its channel is signalled when a new Set or
// changes are waiting (at once when a Set is loaded already).
func (h *Hub) Watch() *Watch {
	w := &Watch{h: h, c: make(chan struct{}, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.watchers[w] = struct{}{}
	if h.feed == nil {
		f := &feeder{h: h, sub: h.src.Subscribe()}
		h.feed = f
		go f.run()
	}
	if h.set != nil {
		w.signal()
	}
	return w
}

// Sync applies every change published so far before it returns (and loads
// the tokens if they are not yet), then signals the watchers. The Hub does
// this by itself when the store signals; tests call it to be deterministic.
func (h *Hub) Sync() {
	h.mu.Lock()
	f := h.feed
	h.mu.Unlock()
	if f != nil {
		f.sync()
	}
}

// C is signalled (coalesced) when an Update is waiting; it is closed when the
// store closes or the Watch is closed.
func (w *Watch) C() <-chan struct{} { return w.c }

// Take returns what is waiting.
func (w *Watch) Take() Update {
	h := w.h
	h.mu.Lock()
	defer h.mu.Unlock()
	u := Update{Tokens: h.set, Err: w.err, RetryIn: w.retryIn, Changes: w.changes, Reload: w.reload}
	w.changes, w.reload, w.err, w.retryIn = nil, false, nil, 0
	return u
}

// Close ends the Watch; the last one drops the Hub's tokens and its store
// subscription.
func (w *Watch) Close() {
	h := w.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if w.closed {
		return
	}
	w.closed = true
	close(w.c)
	delete(h.watchers, w)
	if len(h.watchers) == 0 && h.feed != nil {
		h.feed.sub.Close()
		h.feed, h.set = nil, nil
		if h.Release != nil {
			go h.Release()
		}
	}
}

func (w *Watch) signal() {
	select {
	case w.c <- struct{}{}:
	default:
	}
}

// publish hands the result of one sync to the watchers, unless f was
// replaced meanwhile (every watcher left).
func (h *Hub) publish(f *feeder, set *Set, err error, retryIn time.Duration, changes []store.Change, reload bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.feed != f {
		return
	}
	if set != nil {
		h.set = set
	}
	for w := range h.watchers {
		if err != nil {
			w.err, w.retryIn = err, retryIn
		}
		if !w.reload {
			w.changes = append(w.changes, changes...)
			if len(w.changes) > maxQueued {
				w.changes, w.reload = nil, true
			}
		}
		w.reload = w.reload || reload
		w.signal()
	}
}

// closed tells the watchers that the store closed.
func (h *Hub) closed(f *feeder) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.feed != f {
		return
	}
	for w := range h.watchers {
		w.closed = true
		close(w.c)
		delete(h.watchers, w)
	}
	h.feed, h.set = nil, nil
}

// feeder is one store subscription and the Builder it feeds, from the first
// Watch to the last Close.
type feeder struct {
	h   *Hub
	sub *store.Subscription

	mu      sync.Mutex // one sync at a time
	b       Builder
	loaded  bool
	backoff time.Duration // wait before the next retry of a failed sync
}

// Retries of a failed load or patch wait from retryMin, doubling up to retryMax.
const (
	retryMin = time.Second
	retryMax = 30 * time.Second
)

func (f *feeder) run() {
	f.sync()
	for range f.sub.C() {
		f.sync()
	}
	f.h.closed(f)
}

// sync takes the changes waiting and applies them (a full load the first
// time, after a failure and when the store says to reload).
func (f *feeder) sync() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.h.serving(f) {
		return
	}
	changes, reload := f.sub.Take()
	if f.loaded && !reload && len(changes) == 0 {
		return // nothing new: the watchers are not woken
	}
	if !f.loaded {
		reload = true
	}
	set, err := f.apply(changes, reload)
	f.loaded = err == nil
	if err != nil {
		// Nothing may change in the store for a long while: try again by
		// itself, with backoff, so that the sessions do not stay stale.
		f.backoff = min(max(2*f.backoff, retryMin), retryMax)
		time.AfterFunc(f.backoff, f.sync)
	} else {
		f.backoff = 0
	}
	f.h.publish(f, set, err, f.backoff, changes, reload)
}

// serving reports whether f is still the Hub's feeder (someone watches).
func (h *Hub) serving(f *feeder) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.feed == f
}

// apply brings the Builder up to date with changes; it returns the new Set
// (nil when it failed). A change carries its token (store.Change.Token), so
// nothing is read for it; a token change without one (an engine that does not
// carry it) is read once here, for every session.
func (f *feeder) apply(changes []store.Change, reload bool) (*Set, error) {
	src := f.h.src
	missing := 0
	for _, c := range changes {
		switch {
		case c.Kind == store.ChangeReload:
			reload = true
		case c.Kind == store.ChangeToken && c.Token == nil:
			missing++
		}
	}
	if reload || missing > patchLimit {
		f.b.Reset(src.InactiveAfter())
		f.b.SetDeleteAfter(src.DeleteAfter())
		if err := src.EachToken(func(t store.Token) error { f.b.Add(t); return nil }); err != nil {
			return nil, err
		}
		// The changes taken with this reload are older than the read, but
		// for uses published while it ran, which may be older or newer than
		// what it read: Touch keeps the later one.
		f.touch(changes)
		set := f.b.Publish()
		set.Order(SortName) // the first screen's order, computed before the memory is given back
		if f.h.Release != nil {
			f.h.Release()
		}
		return set, nil
	}
	for _, c := range changes {
		switch c.Kind {
		case store.ChangeToken:
			if c.Token != nil {
				f.b.Add(*c.Token)
				continue
			}
			t, err := src.GetByID(c.TokenID)
			switch {
			case errors.Is(err, store.ErrNotFound):
				f.b.Remove(c.TokenID)
			case err != nil:
				return nil, err
			default:
				f.b.Add(t)
			}
		case store.ChangeDeleted:
			f.b.Remove(c.TokenID)
		case store.ChangeUsed:
			f.b.Touch(c.TokenID, c.LastUsedAt)
		case store.ChangePolicy:
			f.b.SetInactiveAfter(c.InactiveAfter)
			f.b.SetDeleteAfter(c.DeleteAfter)
		}
	}
	return f.b.Publish(), nil
}

func (f *feeder) touch(changes []store.Change) {
	for _, c := range changes {
		if c.Kind == store.ChangeUsed {
			f.b.Touch(c.TokenID, c.LastUsedAt)
		}
	}
}

// Watchers is how many watches are open.
func (h *Hub) Watchers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.watchers)
}

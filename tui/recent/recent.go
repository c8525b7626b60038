// Package recent keeps every token's requests per hour of the last 24 hours
// in memory, once per process, for the tokens table's "Last 24 h" sparklines.
package recent

import (
	"errors"
	"sync"
	"time"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/tui/chart"
)

// Source is what Counts reads: every token's hours once, a token's
// series again when its traffic came while that read ran, then the change
// feed, whose ChangeUsed carries each write's hourly increments.
type Source interface {
	EachRecentHour(since time.Time, fn func(tokenID string, h store.HourCount) error) error
	UsageSeriesID(id, ip string, since time.Time) ([]store.HourCount, error)
	Subscribe() *store.Subscription
}

// Hours is how many hours Counts keeps: the tokens table's "Last 24 h".
const Hours = 24

// Counts keeps every token's requests per hour of the last 24 hours in
// memory, for the tokens table's sparklines: one per process, shared by every
// session, so that drawing a row reads no store. It reads the store once (on
// the first Start), then applies the change feed on its own goroutine; the
// goroutine ends when the store closes. Only tokens used in the last 24 hours
// take memory: 24 slots of 8 bytes each.
type Counts struct {
	src Source
	now func() time.Time

	start sync.Once

	mu      sync.RWMutex
	tokens  map[string]*day
	pruned  int32 // the hour of the last prune
	loaded  bool
	changed chan struct{} // closed when the counts change, then replaced
}

// day is a token's last 24 hours: slot i holds the hour whose number
// (Unix hours) is hour[i], i = hour % 24.
type day struct {
	hour  [Hours]int32
	count [Hours]uint32
}

// New returns a Counts over src on the clock now (nil: time.Now). It
// reads nothing until Start.
func New(src Source, now func() time.Time) *Counts {
	if now == nil {
		now = time.Now
	}
	return &Counts{src: src, now: now, tokens: map[string]*day{}, changed: make(chan struct{})}
}

// Start subscribes to the change feed and loads the counts, once; later calls
// do nothing. Each session's root calls it.
func (r *Counts) Start() {
	r.start.Do(func() {
		sub := r.src.Subscribe()
		go r.run(sub)
	})
}

// Changed is closed when the counts change (a load, the gate's traffic): a
// session waits on it to draw again.
func (r *Counts) Changed() <-chan struct{} {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.changed
}

// Sparkline draws the token's last 24 hours (the hour of now last) as 24
// cells; "" until the counts are loaded.
func (r *Counts) Sparkline(id string) string {
	counts, ok := r.Hourly(id)
	if !ok {
		return ""
	}
	return chart.Sparkline(counts)
}

// Hourly is the token's requests in each of the last 24 hours, oldest first,
// the hour of now last; ok is false until the counts are loaded.
func (r *Counts) Hourly(id string) (counts []uint64, ok bool) {
	now := hourOf(r.now())
	r.mu.RLock()
	defer r.mu.RUnlock()
	if !r.loaded {
		return nil, false
	}
	counts = make([]uint64, Hours)
	d := r.tokens[id]
	if d == nil {
		return counts, true
	}
	for i := range Hours {
		h := now - Hours + 1 + int32(i)
		if s := slot(h); d.hour[s] == h {
			counts[i] = uint64(d.count[s])
		}
	}
	return counts, true
}

func hourOf(t time.Time) int32 { return int32(t.Unix() / 3600) }

func slot(h int32) int { return int(h % Hours) }

// add adds n requests to the token's hour h, forgetting what the slot held
// for an older hour; hours older than the last 24 are ignored.
func (r *Counts) add(id string, h int32, n uint64, now int32) {
	if h <= now-Hours || n == 0 {
		return
	}
	d := r.tokens[id]
	if d == nil {
		d = &day{}
		r.tokens[id] = d
	}
	s := slot(h)
	if d.hour[s] != h {
		d.hour[s], d.count[s] = h, 0
	}
	d.count[s] = uint32(min(uint64(d.count[s])+n, 1<<32-1))
}

// run loads the counts, then applies the feed until the store closes.
func (r *Counts) run(sub *store.Subscription) {
	defer sub.Close()
	load := true
	for {
		if load {
			load = r.load(sub) != nil
		}
		if _, ok := <-sub.C(); !ok {
			return
		}
		changes, reload := sub.Take()
		if load || reload {
			// A failed load, or changes dropped: read everything again.
			load = true
			continue
		}
		load = r.apply(changes)
	}
}

// load reads every token's last 24 hours, then the series of the tokens
// whose traffic came while it read (the read may or may not hold it: their
// series replace what it read). A failed load is tried again at the next
// change.
func (r *Counts) load(sub *store.Subscription) error {
	now := hourOf(r.now())
	since := time.Unix(int64(now-Hours+1)*3600, 0).UTC()
	tokens := map[string]*day{}
	fresh := &Counts{tokens: tokens}
	err := r.src.EachRecentHour(since, func(id string, h store.HourCount) error {
		fresh.add(id, hourOf(h.Hour), h.Allowed+h.Denied, now)
		return nil
	})
	if err != nil {
		return err
	}
	changes, _ := sub.Take()
	for _, c := range changes {
		switch c.Kind {
		case store.ChangeUsed:
			hours, err := r.src.UsageSeriesID(c.TokenID, "", since)
			delete(tokens, c.TokenID)
			if errors.Is(err, store.ErrNotFound) {
				continue // deleted since: its ChangeDeleted follows
			}
			if err != nil {
				return err
			}
			for _, h := range hours {
				fresh.add(c.TokenID, hourOf(h.Hour), h.Allowed+h.Denied, now)
			}
		case store.ChangeDeleted:
			delete(tokens, c.TokenID)
		}
	}
	r.mu.Lock()
	r.tokens, r.loaded, r.pruned = tokens, true, now
	r.notify()
	r.mu.Unlock()
	return nil
}

// apply adds the gate's traffic and forgets deleted tokens; it reports
// whether everything must be read again (a restore or seed).
func (r *Counts) apply(changes []store.Change) (reload bool) {
	now := hourOf(r.now())
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range changes {
		switch c.Kind {
		case store.ChangeReload:
			return true
		case store.ChangeDeleted:
			delete(r.tokens, c.TokenID)
		case store.ChangeUsed:
			for _, h := range c.Hours {
				r.add(c.TokenID, hourOf(h.Hour), h.Allowed+h.Denied, now)
			}
		}
	}
	if now != r.pruned {
		r.prune(now)
	}
	r.notify()
	return false
}

// prune forgets the tokens not used in the last 24 hours: once an hour, so a
// token used once does not hold memory for good. r.mu is held.
func (r *Counts) prune(now int32) {
	r.pruned = now
	for id, d := range r.tokens {
		recent := false
		for _, h := range d.hour {
			recent = recent || h > now-Hours
		}
		if !recent {
			delete(r.tokens, id)
		}
	}
}

// notify wakes the sessions waiting on Changed. r.mu is held.
func (r *Counts) notify() {
	close(r.changed)
	r.changed = make(chan struct{})
}

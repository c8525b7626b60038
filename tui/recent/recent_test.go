package recent_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/storetest"
	"github.com/apptokens/apptokens/tui/recent"
)

var testNow = time.Date(2026, 11, 27, 12, 30, 0, 0, time.UTC)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// countingStore is the real store, counting Counts' reads of it.
type countingStore struct {
	*store.Store
	each, series atomic.Int64
}

func (s *countingStore) EachRecentHour(since time.Time, fn func(string, store.HourCount) error) error {
	s.each.Add(1)
	return s.Store.EachRecentHour(since, fn)
}

func (s *countingStore) UsageSeriesID(id, ip string, since time.Time) ([]store.HourCount, error) {
	s.series.Add(1)
	return s.Store.UsageSeriesID(id, ip, since)
}

// wait waits until the counts changed since ch was taken.
func wait(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("the counts did not change")
	}
}

func record(t *testing.T, st *store.Store, c *clock, id string, at time.Time, allowed, denied uint64) {
	t.Helper()
	c.Set(at)
	if _, err := st.RecordUsage([]store.UsageDelta{{TokenID: id, IP: "192.0.2.1", FirstUsedAt: at, LastUsedAt: at, Allowed: allowed, Denied: denied}}); err != nil {
		t.Fatal(err)
	}
}

// The counts are read once, then follow the gate's traffic from the change
// feed without another read; hours older than 24 are left out; a deleted
// token's go.
func TestCountsFollowTheFeed(t *testing.T) {
	c := &clock{t: testNow.Add(-48 * time.Hour)}
	st, err := storetest.OpenWith(storetest.Options{InMemory: true, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cr, err := st.Create(store.Actor{User: "t"}, store.NewToken{Name: "feeds", Access: []store.Access{store.AccessThirdPartyFeeds}})
	if err != nil {
		t.Fatal(err)
	}
	id := cr.Token.ID
	record(t, st, c, id, testNow.Add(-30*time.Hour), 500, 0) // older than 24 h
	record(t, st, c, id, testNow.Add(-23*time.Hour), 8, 0)   // the first hour shown
	record(t, st, c, id, testNow.Add(-5*time.Hour), 4, 4)
	c.Set(testNow)

	cs := &countingStore{Store: st}
	r := recent.New(cs, c.Now)
	ch := r.Changed()
	if _, ok := r.Hourly(id); ok {
		t.Fatal("counts known before Start")
	}
	r.Start()
	wait(t, ch)
	want := make([]uint64, 24)
	want[0], want[18] = 8, 8
	assertHourly(t, r, id, want)
	if got, want := r.Sparkline(id), "█                 █     "; got != want {
		t.Errorf("sparkline %q, want %q", got, want)
	}

	ch = r.Changed()
	record(t, st, c, id, testNow, 2, 0)
	c.Set(testNow)
	wait(t, ch)
	want[23] = 2
	assertHourly(t, r, id, want)
	if e, s := cs.each.Load(), cs.series.Load(); e != 1 || s != 0 {
		t.Errorf("%d EachRecentHour and %d UsageSeries calls, want 1 and 0", e, s)
	}

	// An hour later the oldest hour leaves the line.
	c.Set(testNow.Add(time.Hour))
	want = append(want[1:], 0)
	assertHourly(t, r, id, want)

	ch = r.Changed()
	if _, err := st.Delete(store.Actor{User: "t"}, []string{"feeds"}); err != nil {
		t.Fatal(err)
	}
	wait(t, ch)
	assertHourly(t, r, id, make([]uint64, 24))
}

func assertHourly(t *testing.T, r *recent.Counts, id string, want []uint64) {
	t.Helper()
	got, ok := r.Hourly(id)
	if !ok {
		t.Fatal("counts not loaded")
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("hourly %v, want %v", got, want)
			return
		}
	}
}

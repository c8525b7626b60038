package tokenset

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/storetest"
)

// countingSource is the real (in-memory Badger) store, counting what the Hub
// asks of it.
type countingSource struct {
	*store.Store
	subs, lists, gets atomic.Int64
}

func (c *countingSource) Subscribe() *store.Subscription {
	c.subs.Add(1)
	return c.Store.Subscribe()
}

func (c *countingSource) EachToken(fn func(store.Token) error) error {
	c.lists.Add(1)
	return c.Store.EachToken(fn)
}

func (c *countingSource) GetByID(id string) (store.Token, error) {
	c.gets.Add(1)
	return c.Store.GetByID(id)
}

var tester = store.Actor{User: "tester"}

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := storetest.OpenWith(storetest.Options{InMemory: true, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// take waits for the watch's next update.
func take(t *testing.T, w *Watch) Update {
	t.Helper()
	select {
	case _, ok := <-w.C():
		if !ok {
			t.Fatal("the watch closed")
		}
		return w.Take()
	case <-time.After(10 * time.Second):
		t.Fatal("no update within 10 s")
	}
	return Update{}
}

// One subscription and one read serve every watch; a change is read once and
// reaches every watch as the same Set; when the last watch closes the Hub lets
// go of everything, and a new watch starts over.
func TestHubSharesOneSubscription(t *testing.T) {
	st := openStore(t)
	if _, err := st.Create(tester, store.NewToken{Name: "first", Access: []store.Access{store.AccessSecurityDirector}}); err != nil {
		t.Fatal(err)
	}
	src := &countingSource{Store: st}
	h := NewHub(src)
	var ws []*Watch
	for range 10 {
		ws = append(ws, h.Watch())
	}
	var first *Set
	for _, w := range ws {
		u := take(t, w)
		for u.Tokens == nil {
			u = take(t, w)
		}
		if first == nil {
			first = u.Tokens
		}
		if u.Tokens != first || u.Tokens.Live() != 1 {
			t.Fatalf("a watch got another set, or %d tokens", u.Tokens.Live())
		}
	}
	if s, l := src.subs.Load(), src.lists.Load(); s != 1 || l != 1 {
		t.Fatalf("10 watches: %d subscriptions and %d reads of the list, want 1 and 1", s, l)
	}
	if _, err := st.Create(tester, store.NewToken{Name: "second", Access: []store.Access{store.AccessThirdPartyFeeds}}); err != nil {
		t.Fatal(err)
	}
	h.Sync()
	var second *Set
	for _, w := range ws {
		u := take(t, w)
		if second == nil {
			second = u.Tokens
		}
		if u.Tokens != second || u.Tokens.Live() != 2 || len(u.Changes) != 1 || u.Changes[0].Kind != store.ChangeToken {
			t.Fatalf("after a create: %d tokens, changes %+v", u.Tokens.Live(), u.Changes)
		}
	}
	if g := src.gets.Load(); g != 0 {
		t.Fatalf("one change seen by 10 watches made %d reads, want none: it carries its token", g)
	}
	if first.Live() != 1 {
		t.Fatal("the earlier set changed")
	}
	for _, w := range ws {
		w.Close()
	}
	h.mu.Lock()
	held := h.set != nil || h.feed != nil
	h.mu.Unlock()
	if held {
		t.Fatal("the hub holds its set or subscription with no one watching")
	}
	w := h.Watch()
	defer w.Close()
	if u := take(t, w); u.Tokens == nil || u.Tokens.Live() != 2 {
		t.Fatalf("a new watch after all left: %+v", u)
	}
	if s := src.subs.Load(); s != 2 {
		t.Fatalf("%d subscriptions, want a second one for the new watch", s)
	}
}

// When the store closes, every watch's channel closes: sessions end their wait.
func TestHubClosesWatchesWithTheStore(t *testing.T) {
	st, err := storetest.OpenWith(storetest.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	h := NewHub(st)
	w := h.Watch()
	take(t, w)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case _, ok := <-w.C():
		if ok {
			if _, ok = <-w.C(); ok {
				t.Fatal("the watch is still open after the store closed")
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the watch is still open after the store closed")
	}
}

// failingSource fails its first reads of the list.
type failingSource struct {
	*store.Store
	failures atomic.Int64
}

func (f *failingSource) EachToken(fn func(store.Token) error) error {
	if f.failures.Add(-1) >= 0 {
		return errors.New("disk on fire")
	}
	return f.Store.EachToken(fn)
}

// A failed load is reported to the watches and tried again by itself (with
// backoff), without waiting for a change in the store.
func TestHubRetriesAFailedLoad(t *testing.T) {
	st := openStore(t)
	if _, err := st.Create(tester, store.NewToken{Name: "first", Access: []store.Access{store.AccessSecurityDirector}}); err != nil {
		t.Fatal(err)
	}
	src := &failingSource{Store: st}
	src.failures.Store(1)
	h := NewHub(src)
	w := h.Watch()
	defer w.Close()
	u := take(t, w)
	if u.Err == nil || !strings.Contains(u.Err.Error(), "disk on fire") || u.Tokens != nil {
		t.Fatalf("first update: %+v", u)
	}
	u = take(t, w)
	if u.Err != nil || u.Tokens == nil || u.Tokens.Live() != 1 {
		t.Fatalf("after the retry: %+v", u)
	}
}

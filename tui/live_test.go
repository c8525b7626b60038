package tui

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/tui/tokenset"
)

// countingStore is the real Badger store, counting the reads the screens make
// of it.
type countingStore struct {
	*store.Store
	lists, gets, audits atomic.Int64
}

func (c *countingStore) Audit(limit int) ([]store.Event, error) {
	c.audits.Add(1)
	return c.Store.Audit(limit)
}

func (c *countingStore) EachToken(fn func(store.Token) error) error {
	c.lists.Add(1)
	return c.Store.EachToken(fn)
}

func (c *countingStore) GetByID(id string) (store.Token, error) {
	c.gets.Add(1)
	return c.Store.GetByID(id)
}

// lineWith is the first line of view that contains s.
func lineWith(view, s string) string {
	for _, l := range strings.Split(view, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// The gate's usage of many tokens at once is applied from the changes alone:
// no session reloads the list (or reads a token) for it.
func TestGateUsageOfManyTokensReadsNothing(t *testing.T) {
	st, c := newStore(t)
	seed := seedTokens(1000)
	for i := range seed {
		// Active, created 20 days ago, never used: 10 days to become inactive.
		seed[i].Token.Active = true
		seed[i].Token.CreatedAt = testNow.Add(-20 * 24 * time.Hour)
		seed[i].Token.LastUsedAt = time.Time{}
	}
	if err := st.BulkLoad(tester, seed); err != nil {
		t.Fatal(err)
	}
	cs := &countingStore{Store: st}
	d := drive(t, newModel(cs, c, nil), 130, 20)
	if v := d.view(); !strings.Contains(v, "1000 tokens, 1000 active") || !strings.Contains(lineWith(v, "token-000000"), "10 days") {
		t.Fatalf("seeded tokens not shown:\n%s", v)
	}
	cs.lists.Store(0)
	cs.gets.Store(0)

	toks, err := st.List()
	if err != nil {
		t.Fatal(err)
	}
	used := testNow.Add(-time.Hour)
	deltas := make([]store.UsageDelta, len(toks))
	for i, tok := range toks {
		deltas[i] = store.UsageDelta{TokenID: tok.ID, IP: "192.0.2.1", FirstUsedAt: used, LastUsedAt: used, Allowed: 1}
	}
	if _, err := st.RecordUsage(deltas); err != nil {
		t.Fatal(err)
	}
	d.send(tea.KeyMsg{Type: tea.KeyDown}) // any message lets the driver deliver the changes
	d.send(tea.KeyMsg{Type: tea.KeyUp})

	if n, g := cs.lists.Load(), cs.gets.Load(); n != 0 || g != 0 {
		t.Errorf("1000 used tokens made %d List and %d GetByID calls, want none", n, g)
	}
	row := lineWith(d.view(), "token-000000")
	if !strings.Contains(row, "2026-11-27 11:00") || !strings.Contains(row, " 30 days") {
		t.Errorf("the row does not show its new last use (and 30 days to become inactive):\n%s", d.view())
	}
	// Sorted by last use, the order follows the changes too, still without a read.
	d.keys(runes("s"), runes("s"))
	if v := d.view(); !strings.Contains(v, "sort: last used") || !strings.HasPrefix(strings.TrimSpace(strings.Split(v, "\n")[3]), "> [ ] token-000000") {
		t.Fatalf("sort by last use:\n%s", v)
	}
	later := testNow.Add(-time.Minute)
	if _, err := st.RecordUsage([]store.UsageDelta{{TokenID: toks[999].ID, IP: "192.0.2.1", FirstUsedAt: later, LastUsedAt: later, Allowed: 1}}); err != nil {
		t.Fatal(err)
	}
	d.send(tea.KeyMsg{Type: tea.KeyDown}) // moves the cursor to token-000001, then delivers
	if v := d.view(); !strings.HasPrefix(strings.Split(v, "\n")[4], "> [ ] token-000001") {
		t.Errorf("the cursor's token left its line when the order changed:\n%s", v)
	}
	d.keys(runes("g"))
	if first := strings.Split(d.view(), "\n")[3]; !strings.Contains(first, "token-000999") || !strings.Contains(first, "2026-11-27 11:59") {
		t.Errorf("the most recently used token is not first:\n%s", d.view())
	}
	if n, g := cs.lists.Load(), cs.gets.Load(); n != 0 || g != 0 {
		t.Errorf("%d List and %d GetByID calls after resorting, want none", n, g)
	}
}

// Every session of a process shows one shared token set: the tokens are read
// once however many sessions open, a change is read once (not once per
// session), and every session holds the very same set, not a copy.
func TestSessionsShareOneTokenSet(t *testing.T) {
	st, c := newStore(t)
	seedDemo(t, st, c)
	cs := &countingStore{Store: st}
	hub := tokenset.NewHub(cs)
	var ds []*driver
	for range 10 {
		m := New(Deps{Store: cs, Actor: tester, Renderer: asciiRenderer(), Now: c.Now, Tokens: hub}).(*Model)
		ds = append(ds, drive(t, m, 130, 20))
	}
	for i, d := range ds {
		if v := d.view(); !strings.Contains(v, "3 tokens, 1 active") {
			t.Fatalf("session %d:\n%s", i, v)
		}
	}
	if n := cs.lists.Load(); n != 1 {
		t.Errorf("10 sessions read the token list %d times, want once", n)
	}
	// One session deactivates a token: every session shows it, from one read.
	ds[0].keys(runes("j"), runes("d"), runes("y"))
	for i, d := range ds {
		d.send(tea.KeyMsg{Type: tea.KeyDown}) // any message delivers the change
		if row := lineWith(d.view(), "feeds-sync"); !strings.Contains(row, "Inactive") {
			t.Errorf("session %d does not show the deactivation:\n%s", i, d.view())
		}
	}
	if n, g := cs.lists.Load(), cs.gets.Load(); n != 1 || g != 0 {
		t.Errorf("one change seen by 10 sessions made %d list reads and %d token reads, want 1 and none (the change carries its token)", n, g)
	}
	set := ds[0].m.tokens.SharedSet()
	for i, d := range ds {
		if d.m.tokens.SharedSet() != set {
			t.Errorf("session %d holds a token set of its own", i)
		}
	}
	// Reloads coalesce: however many arrive at once, the list is read once more.
	for range 20 {
		if err := st.SetInactiveAfter(store.DefaultInactiveAfter); err != nil {
			t.Fatal(err)
		}
	}
	ds[0].send(tea.KeyMsg{Type: tea.KeyUp})
	if n := cs.lists.Load(); n != 1 {
		t.Errorf("policy changes re-read the list: %d reads", n)
	}
}

// The usage screen follows the gate's usage and other admins' blocks.
func TestUsageScreenFollowsUseAndBlocks(t *testing.T) {
	st, c := newStore(t)
	seedDemo(t, st, c)
	d := drive(t, newModel(st, c, nil), 100, 20)
	d.keys(keyDown, keyEnter)
	if v := d.view(); !strings.Contains(lineWith(v, "203.0.113.7"), "Allowed") {
		t.Fatalf("usage screen:\n%s", v)
	}
	if _, err := st.SetBlocked(store.Actor{User: "other"}, "feeds-sync", []string{"203.0.113.7"}, true); err != nil {
		t.Fatal(err)
	}
	d.send(tea.KeyMsg{Type: tea.KeyDown})
	if v := d.view(); !strings.Contains(lineWith(v, "203.0.113.7"), "Blocked") || !strings.Contains(v, "2 blocked") {
		t.Errorf("another admin's block not shown:\n%s", v)
	}
	feeds, err := st.Get("feeds-sync")
	if err != nil {
		t.Fatal(err)
	}
	at := testNow.Add(-time.Minute)
	if _, err := st.RecordUsage([]store.UsageDelta{{TokenID: feeds.ID, IP: "203.0.113.7", FirstUsedAt: at, LastUsedAt: at, Denied: 4}}); err != nil {
		t.Fatal(err)
	}
	d.send(tea.KeyMsg{Type: tea.KeyUp})
	if row := lineWith(d.view(), "203.0.113.7"); !strings.Contains(row, "2026-11-27 11:59") || !strings.Contains(row, " 7 ") {
		t.Errorf("the gate's new counts not shown:\n%s", d.view())
	}
}

// The audit screen reads the audit again for changes that are audited, not for
// the gate's usage.
func TestAuditScreenIgnoresGateUsage(t *testing.T) {
	st, c := newStore(t)
	seedDemo(t, st, c)
	cs := &countingStore{Store: st}
	d := drive(t, newModel(cs, c, nil), 100, 20)
	d.keys(runes("L"))
	feeds, err := st.Get("feeds-sync")
	if err != nil {
		t.Fatal(err)
	}
	cs.audits.Store(0)
	if _, err := st.RecordUsage([]store.UsageDelta{{TokenID: feeds.ID, IP: "192.0.2.9", FirstUsedAt: testNow, LastUsedAt: testNow, Allowed: 1}}); err != nil {
		t.Fatal(err)
	}
	d.send(tea.KeyMsg{Type: tea.KeyDown})
	if n := cs.audits.Load(); n != 0 {
		t.Errorf("the gate's usage made %d audit reads", n)
	}
	if _, err := st.SetActive(store.Actor{User: "other"}, []string{"feeds-sync"}, false); err != nil {
		t.Fatal(err)
	}
	d.send(tea.KeyMsg{Type: tea.KeyUp})
	if n := cs.audits.Load(); n != 1 {
		t.Errorf("a deactivation made %d audit reads, want 1", n)
	}
	if v := d.view(); !strings.Contains(v, "other") || !strings.Contains(v, "deactivate") {
		t.Errorf("the deactivation is not in the audit screen:\n%s", v)
	}
}

// An IP address is never cut while the window has room for it and the marks
// before it (6 cells): other columns give way first.
func TestUsageShowsWholeIPv6(t *testing.T) {
	st, c := newStore(t)
	seedDemo(t, st, c)
	seedIPv6(t, st)
	d := drive(t, newModel(st, c, nil), 130, 20)
	d.keys(keyDown, keyEnter)
	for w := 6 + len(longIPv6); w <= 130; w++ {
		d.send(tea.WindowSizeMsg{Width: w, Height: 20})
		v := d.view()
		if !strings.Contains(v, longIPv6) || !strings.Contains(v, "2001:db8::7") {
			t.Fatalf("at width %d an IP address is cut:\n%s", w, v)
		}
		if w >= 60 && !strings.Contains(lineWith(v, longIPv6), "Blocked") {
			t.Fatalf("at width %d the status of the IPv6 address is not shown:\n%s", w, v)
		}
	}
}

// A session closed before its Init ran (an SSH connection dropped at once)
// holds nothing of the shared hub: the hub lets go of its set.
func TestCloseBeforeInitHoldsNothing(t *testing.T) {
	st, c := newStore(t)
	seedDemo(t, st, c)
	hub := tokenset.NewHub(st)
	m := New(Deps{Store: st, Actor: tester, Renderer: asciiRenderer(), Now: c.Now, Tokens: hub}).(*Model)
	_ = m.Close()
	cmd := m.Init()
	if msg, ok := call(cmd); !ok {
		t.Fatal("Init after Close blocked")
	} else if batch, ok := msg.(tea.BatchMsg); ok {
		for _, c := range batch {
			if c == nil {
				continue
			}
			if got, ok := call(c); !ok {
				t.Fatal("Init after Close blocked")
			} else if f, ok := got.(feedMsg); ok && !f.closed {
				t.Fatalf("the watch delivered %+v after Close", f)
			}
		}
	}
	if n := hub.Watchers(); n != 0 {
		t.Fatalf("%d watches open after the only session closed", n)
	}
	other := hub.Watch() // the only watch now: it must start a fresh load
	defer other.Close()
	hub.Sync()
	if u := other.Take(); u.Tokens == nil || u.Tokens.Live() != 3 {
		t.Fatalf("the hub after a closed session: %+v", u)
	}
}

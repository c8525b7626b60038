package tui

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/tui/common"
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

func (c *countingStore) List() ([]store.Token, error) {
	c.lists.Add(1)
	return c.Store.List()
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

// A last use recorded while a fetch is in flight is not undone by the older
// read that fetch returns.
func TestUsageDuringFetchIsKept(t *testing.T) {
	st, c := newStore(t)
	seedDemo(t, st, c)
	d := drive(t, newModel(st, c, nil), 130, 20)
	feeds, err := st.Get("feeds-sync")
	if err != nil {
		t.Fatal(err)
	}
	// A change starts a fetch; before its result is applied, the gate records
	// a use the fetch did not read.
	_, fetch := d.m.Update(common.ChangesMsg{Changes: []store.Change{{Kind: store.ChangeToken, TokenID: feeds.ID}}})
	if fetch == nil {
		t.Fatal("a token change did not fetch it")
	}
	loaded := fetch()
	newer := testNow.Add(-time.Minute)
	d.m.Update(common.ChangesMsg{Changes: []store.Change{{Kind: store.ChangeUsed, TokenID: feeds.ID, LastUsedAt: newer}}})
	d.run(func() tea.Msg { return loaded })
	if row := lineWith(d.view(), "feeds-sync"); !strings.Contains(row, "2026-11-27 11:59") {
		t.Errorf("the fetch's older read undid the last use:\n%s", d.view())
	}
}

// Reloads are coalesced: however many arrive while one is in flight, one more
// follows it.
func TestReloadsAreCoalesced(t *testing.T) {
	st, c := newStore(t)
	seedDemo(t, st, c)
	cs := &countingStore{Store: st}
	d := drive(t, newModel(cs, c, nil), 130, 20)
	cs.lists.Store(0)
	_, first := d.m.Update(common.ChangesMsg{Reload: true})
	if first == nil {
		t.Fatal("a reload did not fetch")
	}
	for range 10 {
		if _, cmd := d.m.Update(common.ChangesMsg{Reload: true}); cmd != nil {
			t.Fatal("a second reload started while one is in flight")
		}
		if _, cmd := d.m.Update(common.ChangesMsg{Changes: []store.Change{{Kind: store.ChangeReload}}}); cmd != nil {
			t.Fatal("a reload change started a fetch while one is in flight")
		}
	}
	d.run(first)
	if n := cs.lists.Load(); n != 2 {
		t.Errorf("%d List calls for 21 reloads during one, want 2", n)
	}
	if v := d.view(); !strings.Contains(v, "3 tokens, 1 active") {
		t.Errorf("after the reloads:\n%s", v)
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

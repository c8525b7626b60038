package tui

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/exp/golden"
	"github.com/charmbracelet/x/exp/teatest"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/tui/common"
)

// Addresses of the known hourly pattern on billing-export.
const (
	patternBusy  = "192.0.2.10" // allowed through the working day
	patternNoisy = "192.0.2.20" // a request an hour, 30 denied at 03, 09, 15 and 21
)

// patternHours are the hours the pattern has requests in: every hour of the
// last 7 days, every sixth hour of the 23 days before.
func patternHours() []time.Time {
	var out []time.Time
	for h := testNow.Add(-30 * 24 * time.Hour); h.Before(testNow); h = h.Add(time.Hour) {
		if testNow.Sub(h) <= 7*24*time.Hour || h.Hour()%6 == 3 {
			out = append(out, h)
		}
	}
	return out
}

// patternAt is the pattern's use of the hour h: one delta per address.
func patternAt(id string, h time.Time) []store.UsageDelta {
	at := h.Add(10 * time.Minute)
	busy := store.UsageDelta{TokenID: id, IP: patternBusy, FirstUsedAt: at, LastUsedAt: at, Allowed: uint64(5 * (h.Hour() / 2))}
	noisy := store.UsageDelta{TokenID: id, IP: patternNoisy, FirstUsedAt: at, LastUsedAt: at, Allowed: 1}
	if h.Hour()%6 == 3 {
		noisy.Denied = 30
	}
	if busy.Allowed == 0 {
		return []store.UsageDelta{noisy}
	}
	return []store.UsageDelta{busy, noisy}
}

// seedPattern records the known hourly pattern for billing-export through
// the real store, an hour at a time on the store's clock.
func seedPattern(t *testing.T, st *store.Store, c *clock) {
	t.Helper()
	tok, err := st.Get("billing-export")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range patternHours() {
		c.Set(h.Add(10 * time.Minute))
		if _, err := st.RecordUsage(patternAt(tok.ID, h)); err != nil {
			t.Fatal(err)
		}
	}
	c.Set(testNow)
}

// patternTotals are the pattern's allowed and denied requests of ip ("" for
// all) in the last hours hours, the hour of now (12:00) among them.
func patternTotals(ip string, hours int) (allowed, denied uint64) {
	for _, h := range patternHours() {
		if testNow.Sub(h) > time.Duration(hours-1)*time.Hour {
			continue
		}
		for _, d := range patternAt("", h) {
			if ip == "" || d.IP == ip {
				allowed += d.Allowed
				denied += d.Denied
			}
		}
	}
	return allowed, denied
}

// TestChartView compares the usage screen with its chart, for billing-export's
// known hourly pattern, with testdata/TestChartView/*.golden.
func TestChartView(t *testing.T) {
	tests := []struct {
		name string
		w, h int
		keys []string
	}{
		{name: "24h_80", w: 80, h: 30},
		{name: "24h_160", w: 160, h: 30},
		{name: "7d_80", w: 80, h: 30, keys: []string{"w"}},
		{name: "7d_160", w: 160, h: 30, keys: []string{"w"}},
		{name: "30d_80", w: 80, h: 30, keys: []string{"w", "w"}},
		{name: "30d_160", w: 160, h: 30, keys: []string{"w", "w"}},
		{name: "address_80", w: 80, h: 30, keys: []string{"down", " "}},
		{name: "address_160", w: 160, h: 30, keys: []string{"down", " "}},
		{name: "short_100x16", w: 100, h: 16},
	}
	st, c := newStore(t)
	seedDemo(t, st, c)
	seedPattern(t, st, c)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := drive(t, newModel(st, c, nil), tt.w, tt.h)
			d.keys(keyEnter)
			for _, k := range tt.keys {
				switch k {
				case "down":
					d.keys(keyDown)
				case " ":
					d.keys(keySpace)
				default:
					d.keys(runes(k))
				}
			}
			view := d.view()
			if got := strings.Count(view, "\n") + 1; got != tt.h {
				t.Errorf("view has %d lines, want %d", got, tt.h)
			}
			for i, l := range strings.Split(view, "\n") {
				if w := len([]rune(l)); w > tt.w {
					t.Errorf("line %d is %d wide, more than %d: %q", i, w, tt.w, l)
				}
			}
			if !strings.Contains(view, "█ allowed ░ denied") {
				t.Errorf("no legend:\n%s", view)
			}
			golden.RequireEqual(t, []byte(view))
		})
	}
}

// w cycles the chart's window 24 h → 7 d → 30 d → 24 h, and the totals
// follow; Deps.ChartWindow sets the first.
func TestChartWindowCycles(t *testing.T) {
	st, c := newStore(t)
	seedDemo(t, st, c)
	seedPattern(t, st, c)
	d := drive(t, newModel(st, c, nil), 160, 30)
	d.keys(keyEnter)
	for _, want := range []struct {
		title string
		hours int
	}{
		{"Requests per hour (UTC), last 24 h", 24},
		{"Requests per 2 hours (UTC), last 7 d", 7 * 24},
		{"Requests per 6 hours (UTC), last 30 d", 30 * 24},
		{"Requests per hour (UTC), last 24 h", 24},
	} {
		a, dn := patternTotals("", want.hours)
		totals := fmt.Sprintf("%d allowed, %d denied", a, dn)
		if line := lineWith(d.view(), "Requests per"); !strings.Contains(line, want.title) || !strings.Contains(line, totals) {
			t.Errorf("chart title %q, want %q and %q", line, want.title, totals)
		}
		d.keys(runes("w"))
	}

	m := New(Deps{Store: st, Actor: tester, Renderer: asciiRenderer(), Now: c.Now, ChartWindow: 30 * 24 * time.Hour}).(*Model)
	d = drive(t, m, 160, 30)
	d.keys(keyEnter)
	if line := lineWith(d.view(), "Requests per"); !strings.Contains(line, "last 30 d") {
		t.Errorf("ChartWindow 30 d opens %q", line)
	}
}

// One selected address is charted alone: its chart differs from the token's;
// selecting a second goes back to the token's.
func TestChartOfSelectedAddress(t *testing.T) {
	st, c := newStore(t)
	seedDemo(t, st, c)
	seedPattern(t, st, c)
	d := drive(t, newModel(st, c, nil), 160, 30)
	d.keys(keyEnter)
	tokenChart := d.view()
	d.keys(keyDown, keySpace) // the second row: 192.0.2.20
	a, dn := patternTotals(patternNoisy, 24)
	want := fmt.Sprintf("Requests per hour (UTC), last 24 h, address %s · %d allowed, %d denied", patternNoisy, a, dn)
	if line := lineWith(d.view(), "Requests per"); !strings.Contains(line, want) {
		t.Fatalf("chart title %q, want %q\n%s", line, want, d.view())
	}
	if chartOf(d.view()) == chartOf(tokenChart) {
		t.Errorf("the address's chart is the token's:\n%s", d.view())
	}
	d.keys(tea.KeyMsg{Type: tea.KeyUp}, keySpace) // two selected: the token again
	if got := chartOf(d.view()); got != chartOf(tokenChart) {
		t.Errorf("with two selected, the chart is not the token's:\n%s\nwant\n%s", got, chartOf(tokenChart))
	}
}

// chartOf is the chart's lines of a usage screen's view.
func chartOf(view string) string {
	lines := strings.Split(view, "\n")
	for i, l := range lines {
		if strings.Contains(l, "Requests per") {
			var out []string
			for _, c := range lines[i:] {
				if strings.Contains(c, "IP address") {
					break
				}
				out = append(out, c)
			}
			return strings.Join(out, "\n")
		}
	}
	return ""
}

// seriesCountingStore counts the chart's reads of the real store.
type seriesCountingStore struct {
	*store.Store
	series atomic.Int64
}

func (s *seriesCountingStore) UsageSeriesID(id, ip string, since time.Time) ([]store.HourCount, error) {
	s.series.Add(1)
	return s.Store.UsageSeriesID(id, ip, since)
}

// Gate traffic recorded through the real store moves the chart without a key
// press, and without the chart reading the store again.
func TestChartMovesWithTraffic(t *testing.T) {
	st, c := newStore(t)
	seedDemo(t, st, c)
	seedPattern(t, st, c)
	cs := &seriesCountingStore{Store: st}
	tm := teatest.NewTestModel(t, newModel(cs, c, nil), teatest.WithInitialTermSize(160, 30))
	waitFor(t, tm, "billing-export")
	send(tm, keyEnter)
	a, dn := patternTotals("", 24)
	waitFor(t, tm, fmt.Sprintf("%d allowed, %d denied", a, dn))
	if n := cs.series.Load(); n != 1 {
		t.Fatalf("%d reads of the series to open the chart, want 1", n)
	}

	tok, err := st.Get("billing-export")
	if err != nil {
		t.Fatal(err)
	}
	at := testNow.Add(-20 * time.Minute) // the hour of 11:00, now 12:00
	c.Set(at)
	if _, err := st.RecordUsage([]store.UsageDelta{{TokenID: tok.ID, IP: "198.51.100.99", FirstUsedAt: at, LastUsedAt: at, Allowed: 400, Denied: 250}}); err != nil {
		t.Fatal(err)
	}
	c.Set(testNow)
	// The largest hour is now 11:00 (its old count and 650 more): the axis
	// label and the totals move.
	old := uint64(5*(11/2)) + 1
	waitFor(t, tm, fmt.Sprintf("%d allowed, %d denied", a+400, dn+250), fmt.Sprintf("%d┤", old+650))
	if n := cs.series.Load(); n != 1 {
		t.Errorf("%d reads of the series after traffic, want 1 (the change carries the hours)", n)
	}
	finish(t, tm)
}

// Changes the feed dropped (a reload) make the chart read its series again.
func TestChartReloads(t *testing.T) {
	st, c := newStore(t)
	seedDemo(t, st, c)
	cs := &seriesCountingStore{Store: st}
	d := drive(t, newModel(cs, c, nil), 100, 30)
	d.keys(keyEnter)
	if n := cs.series.Load(); n != 1 {
		t.Fatalf("%d reads of the series to open the chart, want 1", n)
	}
	d.send(common.ChangesMsg{Reload: true})
	if n := cs.series.Load(); n != 2 {
		t.Errorf("%d reads of the series after a reload, want 2", n)
	}
}

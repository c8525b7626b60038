package tui

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/exp/golden"
	"github.com/charmbracelet/x/exp/teatest"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/tui/recent"
)

// waitCounts waits until the process's counts changed since ch was taken.
func waitCounts(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(blockWait):
		t.Fatal("the last 24 hours' counts did not change")
	}
}

// The tokens table shows each token's last 24 hours when the width allows,
// from counts held once per process: two sessions share them, and the gate's
// traffic moves the sparkline without a store read.
func TestTokensSparkline(t *testing.T) {
	st, c := newStore(t)
	seedDemo(t, st, c)
	seedPattern(t, st, c)
	cs := &seriesCountingStore{Store: st}
	counts := recent.New(cs, c.Now)
	ch := counts.Changed()
	open := func(w int) *driver {
		m := New(Deps{Store: st, Actor: tester, Renderer: asciiRenderer(), Now: c.Now, Recent: counts}).(*Model)
		return drive(t, m, w, 12)
	}
	counts.Start() // as each session's Init does; the wait it returns blocks
	wide := open(200)
	waitCounts(t, ch)
	view := wide.view()
	if !strings.Contains(lineWith(view, "Name"), "Last 24 h") {
		t.Fatalf("no Last 24 h column at 200 columns:\n%s", view)
	}
	// Hints are random: masked.
	golden.RequireEqual(t, []byte(regexp.MustCompile(`aptk_…\S{4}`).ReplaceAllString(view, "aptk_…XXXX")))

	narrow := open(100)
	if v := narrow.view(); strings.Contains(v, "Last 24 h") {
		t.Errorf("Last 24 h column at 100 columns:\n%s", v)
	}

	// siem-connector was never used: a burst now shows in its last cell.
	siem, err := st.Get("siem-connector")
	if err != nil {
		t.Fatal(err)
	}
	before := cs.series.Load()
	ch = counts.Changed()
	if _, err := st.RecordUsage([]store.UsageDelta{{TokenID: siem.ID, IP: "192.0.2.99", FirstUsedAt: testNow, LastUsedAt: testNow, Denied: 9}}); err != nil {
		t.Fatal(err)
	}
	waitCounts(t, ch)
	row := lineWith(wide.view(), "siem-connector")
	if !strings.Contains(row, strings.Repeat(" ", 23)+"█") {
		t.Errorf("the burst is not in siem-connector's last hour:\n%s", row)
	}
	if n := cs.series.Load() - before; n != 0 {
		t.Errorf("%d store reads for the traffic, want none", n)
	}
}

// In a running program the sparkline moves with the gate's traffic without a
// key press.
func TestTokensSparklineLive(t *testing.T) {
	st, c := newStore(t)
	seedDemo(t, st, c)
	counts := recent.New(st, c.Now)
	m := New(Deps{Store: st, Actor: tester, Renderer: asciiRenderer(), Now: c.Now, Recent: counts}).(*Model)
	tm := teatest.NewTestModel(t, m, teatest.WithInitialTermSize(200, 12))
	waitFor(t, tm, "Last 24 h", "siem-connector")
	siem, err := st.Get("siem-connector")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.RecordUsage([]store.UsageDelta{{TokenID: siem.ID, IP: "192.0.2.99", FirstUsedAt: testNow, LastUsedAt: testNow, Allowed: 5}}); err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile(`siem-connector[^\n]*2026-11-27 12:00 +█ `)
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return row.Match(b) },
		teatest.WithDuration(flowTimeout), teatest.WithCheckInterval(10*time.Millisecond))
	finish(t, tm)
}

package chart_test

import (
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/golden"
	"github.com/muesli/termenv"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/tui/chart"
	"github.com/apptokens/apptokens/tui/styles"
)

var now = time.Date(2026, 11, 27, 12, 30, 0, 0, time.UTC)

func asciiStyles() *styles.Styles {
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.Ascii)
	return styles.New(r)
}

// pattern is a known hourly pattern over 30 days: the hour of the day sets
// the allowed count (a working day's curve), every sixth hour has denials, and
// the last day doubles.
func pattern() []store.HourCount {
	var out []store.HourCount
	first := now.Truncate(time.Hour).Add(-30*24*time.Hour + time.Hour)
	for h := first; !h.After(now); h = h.Add(time.Hour) {
		hc := store.HourCount{Hour: h, Allowed: uint64(10 + 5*(h.Hour()%12))}
		if h.Hour()%6 == 0 {
			hc.Denied = 20
		}
		if now.Sub(h) < 24*time.Hour {
			hc.Allowed *= 2
		}
		out = append(out, hc)
	}
	return out
}

func TestView(t *testing.T) {
	var s chart.Series
	s.Set(pattern())
	for _, w := range []int{80, 160} {
		for _, win := range []chart.Window{chart.Day, chart.Week, chart.Month} {
			name := strings.ReplaceAll(win.String(), " ", "") + "_" + itoa(w)
			t.Run(name, func(t *testing.T) {
				v := ansi.Strip(chart.Chart{Series: &s, Window: win, Subject: "all addresses", Now: now}.View(asciiStyles(), w, 8))
				lines := strings.Split(v, "\n")
				if len(lines) != chart.Lines(8) {
					t.Errorf("%d lines, want %d", len(lines), chart.Lines(8))
				}
				for i, l := range lines[1:] {
					if n := ansi.StringWidth(l); n > w {
						t.Errorf("line %d is %d wide, more than %d: %q", i+1, n, w, l)
					}
				}
				golden.RequireEqual(t, []byte(v))
			})
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// A column's cells: as tall as its total (rounded up), a cell at least for
// each kind present, none for a kind absent.
func TestStack(t *testing.T) {
	tests := []struct {
		allowed, denied, top uint64
		a, d                 int
	}{
		{allowed: 8, top: 62, a: 2}, // 1.3 cells: 2, all allowed
		{denied: 8, top: 62, d: 2},  // all denied
		{allowed: 62, top: 62, a: 10},
		{allowed: 61, denied: 1, top: 62, a: 9, d: 1}, // one denied request shows
		{allowed: 1, denied: 61, top: 62, a: 1, d: 9},
		{allowed: 31, denied: 31, top: 62, a: 5, d: 5},
		{top: 62},
		{},
	}
	for _, tt := range tests {
		a, d := chart.Stack(tt.allowed, tt.denied, tt.top, 10)
		if a != tt.a || d != tt.d {
			t.Errorf("stack(%d, %d, top %d) = %d, %d cells; want %d, %d", tt.allowed, tt.denied, tt.top, a, d, tt.a, tt.d)
		}
	}
}

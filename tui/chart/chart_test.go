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

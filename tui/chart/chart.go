// Package chart draws requests over time in the terminal: a column chart of
// allowed and denied requests per hour (or per wider bucket) with axis labels,
// and a one-line sparkline. Allowed and denied are told apart by their glyphs
// (█ and ░), so the chart reads the same without colour.
//
// It is drawn with lipgloss styles and Unicode block characters, not a chart
// library: ntcharts (the Bubble Tea v1 line, v0.3.1) stacks bar segments with
// one glyph told apart by colour only, builds its default styles from the
// process's renderer (the server's terminal over SSH) and has no time axis.
package chart

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/tui/styles"
)

// Window is how far back a chart looks.
type Window int

// The windows, in the order w cycles them.
const (
	Day   Window = iota // the last 24 hours
	Week                // the last 7 days
	Month               // the last 30 days
)

// ErrWindow is returned by ParseWindow for anything but 24h, 7d or 30d.
var ErrWindow = errors.New("chart window must be 24h, 7d or 30d")

// ParseWindow reads a window as config and flags write it: 24h, 7d or 30d.
func ParseWindow(s string) (Window, error) {
	switch strings.ToLower(strings.ReplaceAll(s, " ", "")) {
	case "24h", "1d":
		return Day, nil
	case "7d", "168h":
		return Week, nil
	case "30d", "720h":
		return Month, nil
	}
	return Day, fmt.Errorf("%q: %w", s, ErrWindow)
}

// WindowOf is the window that spans d: the smallest one at least as long, 24 h
// for zero or less, 30 d for anything longer.
func WindowOf(d time.Duration) Window {
	for _, w := range []Window{Day, Week} {
		if d <= w.Duration() {
			return w
		}
	}
	return Month
}

// Duration is the window's span.
func (w Window) Duration() time.Duration { return time.Duration(w.Hours()) * time.Hour }

// Hours is the window's span in hours: 24, 168 or 720.
func (w Window) Hours() int {
	switch w {
	case Week:
		return 7 * 24
	case Month:
		return 30 * 24
	}
	return 24
}

// String is the window as the screen names it: "24 h", "7 d", "30 d".
func (w Window) String() string {
	switch w {
	case Week:
		return "7 d"
	case Month:
		return "30 d"
	}
	return "24 h"
}

// Next is the window after w, back to 24 h after 30 d.
func (w Window) Next() Window { return (w + 1) % 3 }

// Since is the first hour a chart of this window drawn at now may show, at any
// width: what to read from the store for it.
func (w Window) Since(now time.Time) time.Time {
	return now.UTC().Truncate(time.Hour).Add(-w.Duration() - 24*time.Hour)
}

// Series is requests per hour, keyed by the hour's Unix time. The zero value
// is empty and ready to use.
type Series struct {
	hours map[int64]count
}

type count struct{ allowed, denied uint64 }

// Set replaces the series with hours.
func (s *Series) Set(hours []store.HourCount) {
	s.hours = make(map[int64]count, len(hours))
	for _, h := range hours {
		s.Add(h.Hour, h.Allowed, h.Denied)
	}
}

// Add adds requests to the hour that holds t.
func (s *Series) Add(t time.Time, allowed, denied uint64) {
	if s.hours == nil {
		s.hours = map[int64]count{}
	}
	k := t.Unix() - t.Unix()%3600
	c := s.hours[k]
	c.allowed += allowed
	c.denied += denied
	s.hours[k] = c
}

// Prune forgets the hours before t.
func (s *Series) Prune(t time.Time) {
	for k := range s.hours {
		if k < t.Unix() {
			delete(s.hours, k)
		}
	}
}

// Totals are the requests from hour from (included) to hour to (excluded).
func (s *Series) Totals(from, to time.Time) (allowed, denied uint64) {
	for k, c := range s.hours {
		if k >= from.Unix() && k < to.Unix() {
			allowed += c.allowed
			denied += c.denied
		}
	}
	return allowed, denied
}

// Glyphs of the chart: allowed requests stack under denied ones.
const (
	GlyphAllowed = "█"
	GlyphDenied  = "░"
)

// bucketHours are the widths a bucket may take, each dividing a day, so that
// buckets start at the same UTC hours whatever the time.
var bucketHours = []int{1, 2, 3, 4, 6, 8, 12, 24}

// tickHours are the distances between time labels, each a multiple of the
// smaller ones it may follow.
var tickHours = []int{1, 2, 3, 6, 12, 24, 48, 7 * 24, 14 * 24}

// Chart is what one chart shows.
type Chart struct {
	Series *Series
	Window Window
	// Subject names what is counted: "all addresses" or an address.
	Subject string
	Now     time.Time
}

// Lines is the number of lines View draws for a chart of bars rows of bars.
func Lines(bars int) int { return bars + 3 }

// View draws the chart in width cells and Lines(bars) lines: a title with the
// legend, bars rows of columns with the largest count and 0 on the left, the
// time axis and its labels (UTC).
func (c Chart) View(s *styles.Styles, width, bars int) string {
	bars = max(1, bars)
	now := c.Now.UTC()
	// The plot's width depends on the label of the largest count, which
	// depends on the buckets, which depend on the plot's width: widen the
	// label until it holds the largest count (it converges in a step or two).
	var (
		b, n, lw = 0, 0, 1
		start    int64
		buckets  []count
		top      uint64
	)
	for range 4 {
		b, n = layout(c.Window, width-lw-1)
		start, buckets, top = c.aggregate(now, b, n)
		if l := len(strconv.FormatUint(top, 10)); l > lw {
			lw = l
			continue
		}
		break
	}
	step := int64(b) * 3600
	label := fmt.Sprintf("%*d", lw, top)
	var allowed, denied uint64
	for _, h := range buckets {
		allowed += h.allowed
		denied += h.denied
	}

	var out strings.Builder
	per := "hour"
	if b > 1 {
		per = strconv.Itoa(b) + " hours"
	}
	// The legend first, for it is what tells the bars apart without colour;
	// the totals only where they fit.
	head := fmt.Sprintf("  Requests per %s (UTC), last %s, %s", per, c.Window, c.Subject)
	totals := fmt.Sprintf(" · %d allowed, %d denied", allowed, denied)
	out.WriteString(s.ChartAllowed.Render(GlyphAllowed) + s.Subtle.Render(" allowed ") + s.ChartDenied.Render(GlyphDenied) + s.Subtle.Render(" denied"))
	out.WriteString(s.Header.Render(head))
	if utf8.RuneCountInString("█ allowed ░ denied"+head+totals) <= width {
		out.WriteString(s.Subtle.Render(totals))
	}

	cw := max(1, (width-lw-1)/n)
	bw := cw
	if cw >= 2 {
		bw = cw - 1
	}
	heights := make([][2]int, n) // allowed and denied cells of each bucket
	for i, h := range buckets {
		heights[i][0], heights[i][1] = stack(h.allowed, h.denied, top, bars)
	}
	for row := bars - 1; row >= 0; row-- {
		out.WriteByte('\n')
		axis := "│"
		switch row {
		case bars - 1:
			if top == 0 {
				out.WriteString(strings.Repeat(" ", lw))
				break
			}
			out.WriteString(s.Subtle.Render(label))
			axis = "┤"
		case 0:
			out.WriteString(s.Subtle.Render(fmt.Sprintf("%*s", lw, "0")))
			axis = "┤"
		default:
			out.WriteString(strings.Repeat(" ", lw))
		}
		out.WriteString(s.ChartAxis.Render(axis))
		var line strings.Builder
		for i, h := range heights {
			var g string
			switch {
			case row < h[0]:
				g = s.ChartAllowed.Render(strings.Repeat(GlyphAllowed, bw))
			case row < h[0]+h[1]:
				g = s.ChartDenied.Render(strings.Repeat(GlyphDenied, bw))
			default:
				g = strings.Repeat(" ", bw)
			}
			line.WriteString(g)
			if i < n-1 || cw > bw {
				line.WriteString(strings.Repeat(" ", cw-bw))
			}
		}
		text := strings.TrimRight(line.String(), " ")
		if top == 0 && row == bars/2 {
			text = s.Subtle.Render(" no requests in the last " + c.Window.String())
		}
		out.WriteString(text)
	}
	// The time axis: a tick under the start of each labelled bucket.
	tick, format := ticks(b, cw)
	axis := []rune(strings.Repeat("─", n*cw))
	labels := []rune(strings.Repeat(" ", lw+1+n*cw+len("01-02 15:04")))
	next := 0
	for i := range n {
		t := start + int64(i)*step
		if t%(int64(tick)*3600) != 0 {
			continue
		}
		axis[i*cw] = '┬'
		text := time.Unix(t, 0).UTC().Format(format)
		at := lw + 1 + i*cw
		if at < next || at+len(text) > width {
			continue
		}
		copy(labels[at:], []rune(text))
		next = at + len(text) + 1
	}
	out.WriteByte('\n')
	out.WriteString(s.ChartAxis.Render(strings.Repeat(" ", lw) + "└" + string(axis)))
	out.WriteByte('\n')
	out.WriteString(s.Subtle.Render(strings.TrimRight(string(labels), " ")))
	return out.String()
}

// layout is the bucket width (hours) and the number of buckets for a window
// in a plot of width cells: the narrowest buckets that fit. Buckets wider than
// an hour start at multiples of their width, so the window may begin and end
// inside one: one more bucket than the window holds.
func layout(w Window, width int) (hours, n int) {
	if w.Hours() <= width {
		return 1, w.Hours()
	}
	for _, b := range bucketHours[1:] {
		if n = w.Hours()/b + 1; n <= width {
			return b, n
		}
	}
	b := bucketHours[len(bucketHours)-1]
	return b, w.Hours()/b + 1
}

// aggregate sums the window's hours (the hour of now and the ones before it)
// into n buckets of b hours, each starting at a multiple of b hours since the
// Unix epoch (so at the same UTC hours whatever now is); the last holds the
// hour of now. start is the first bucket's Unix time, top the largest
// bucket's total. A bucket only partly in the window counts only that part.
func (c Chart) aggregate(now time.Time, b, n int) (start int64, buckets []count, top uint64) {
	step := int64(b) * 3600
	end := now.Truncate(time.Hour).Add(time.Hour).Unix()
	first := end - int64(c.Window.Hours())*3600
	if r := end % step; r != 0 {
		end += step - r
	}
	start = end - int64(n)*step
	buckets = make([]count, n)
	if c.Series != nil {
		for k, h := range c.Series.hours {
			if k < first || k < start || k >= end {
				continue
			}
			i := (k - start) / step
			buckets[i].allowed += h.allowed
			buckets[i].denied += h.denied
		}
	}
	for _, h := range buckets {
		top = max(top, h.allowed+h.denied)
	}
	return start, buckets, top
}

// ticks is the distance in hours between time labels, and their layout: the
// shortest that leaves room for a label and a space.
func ticks(bucket, cw int) (int, string) {
	for _, t := range tickHours {
		if t%bucket != 0 && bucket%t != 0 {
			continue
		}
		if t < bucket {
			continue
		}
		format := "15:04"
		if t >= 24 {
			format = "01-02"
		}
		if t/bucket*cw >= len(format)+2 {
			return t, format
		}
	}
	return tickHours[len(tickHours)-1], "01-02"
}

// stack is the cells of allowed and denied requests in a column of rows cells
// scaled to top: the column is as tall as its total, rounded up, and each
// non-zero count gets at least one cell (so a single denied request shows).
func stack(allowed, denied, top uint64, rows int) (a, d int) {
	if top == 0 {
		return 0, 0
	}
	r := uint64(rows)
	total := int(((allowed+denied)*r + top - 1) / top)
	switch {
	case denied == 0:
		return total, 0
	case allowed == 0:
		return 0, total
	}
	total = min(max(total, 2), rows)
	a = int((allowed*r + top/2) / top)
	a = max(1, min(a, total-1))
	return a, total - a
}

// sparks are the levels of a sparkline, lowest first; an hour without
// requests is a space.
var sparks = []rune("▁▂▃▄▅▆▇█")

// Sparkline draws counts as one line of len(counts) cells, scaled to the
// largest.
func Sparkline(counts []uint64) string {
	var top uint64
	for _, c := range counts {
		top = max(top, c)
	}
	out := make([]rune, len(counts))
	for i, c := range counts {
		if c == 0 {
			out[i] = ' '
			continue
		}
		l := (c*uint64(len(sparks)) + top - 1) / top // 1..len
		out[i] = sparks[l-1]
	}
	return string(out)
}

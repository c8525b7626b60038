package table

import (
	"reflect"
	"testing"

	"github.com/charmbracelet/x/ansi"
)

func TestFit(t *testing.T) {
	cols := []Column{
		{Title: "Name", Width: 10, MinWidth: 4},
		{Title: "State", Width: 8},
		{Title: "Access", Width: 36, MinWidth: 17},
		{Title: "Days", Width: 4, Priority: 1},
		{Title: "Desc", Width: 5, Flex: true, Priority: 2},
	}
	titles := func(cs []Column) (out []string) {
		for _, c := range cs {
			out = append(out, c.Title)
		}
		return out
	}
	widths := func(cs []Column) (out []int) {
		for _, c := range cs {
			out = append(out, c.Width)
		}
		return out
	}
	tests := []struct {
		width  int
		titles []string
		widths []int
	}{
		// Every column at its minimum (46), then Name and Access widened, then Desc flexes.
		{100, []string{"Name", "State", "Access", "Days", "Desc"}, []int{10, 8, 36, 4, 34}},
		{60, []string{"Name", "State", "Access", "Days", "Desc"}, []int{10, 8, 25, 4, 5}},
		// Desc does not fit at its minimum; Name widens by what is left.
		{40, []string{"Name", "State", "Access", "Days"}, []int{5, 8, 17, 4}},
		// Days (priority 1) fits where State and Access do not.
		{12, []string{"Name", "Days"}, []int{6, 4}},
		{8, []string{"Name"}, []int{8}},
		// The kept column is shrunk below its minimum rather than dropped.
		{3, []string{"Name"}, []int{3}},
	}
	for _, tt := range tests {
		got := Fit(cols, tt.width, 1)
		if !reflect.DeepEqual(titles(got), tt.titles) || !reflect.DeepEqual(widths(got), tt.widths) {
			t.Errorf("Fit(%d) = %v %v, want %v %v", tt.width, titles(got), widths(got), tt.titles, tt.widths)
		}
	}
}

func TestCell(t *testing.T) {
	if got := Cell("abcdef", 4, false); got != "abc…" {
		t.Errorf("truncate: %q", got)
	}
	if got := Cell("7", 3, true); got != "  7" {
		t.Errorf("right: %q", got)
	}
	if got := Cell("ab", 4, false); got != "ab  " {
		t.Errorf("pad: %q", got)
	}
}

func TestScroll(t *testing.T) {
	tests := []struct{ cursor, offset, height, n, want int }{
		{0, 0, 10, 100, 0},
		{10, 0, 10, 100, 1},
		{5, 8, 10, 100, 5},
		{99, 0, 10, 100, 90},
		{3, 50, 10, 5, 0},
	}
	for _, tt := range tests {
		if got := Scroll(tt.cursor, tt.offset, tt.height, tt.n); got != tt.want {
			t.Errorf("Scroll(%d,%d,%d,%d) = %d, want %d", tt.cursor, tt.offset, tt.height, tt.n, got, tt.want)
		}
	}
}

func TestWidth(t *testing.T) {
	for s, want := range map[string]int{"": 0, "abc": 3, "…": 1, "日本": 4, "\x1b[1mab\x1b[0m": 2} {
		if got := Width(s); got != want {
			t.Errorf("Width(%q) = %d, want %d", s, got, want)
		}
	}
}

func TestWidthMatchesAnsi(t *testing.T) {
	for _, s := range []string{"> [x] name  Active  descr…", "╭──╮ │ a · b • c", "é\u0301", "✗ error", "\u00ad", "a\tb"} {
		if got, want := Width(s), ansi.StringWidth(s); got != want {
			t.Errorf("Width(%q) = %d, ansi says %d", s, got, want)
		}
	}
}

func TestHeaderFallsBackToShortTitles(t *testing.T) {
	col := Column{Title: "Days to become inactive", Short: []string{"Days to inactive", "Days"}}
	for width, want := range map[int]string{
		30: "Days to become inactive",
		23: "Days to become inactive",
		22: "Days to inactive",
		16: "Days to inactive",
		15: "Days",
		4:  "Days",
		3:  "Da…",
	} {
		col.Width = width
		if got := Header([]Column{col}); got != Cell(want, width, false) {
			t.Errorf("header at width %d = %q, want %q", width, got, want)
		}
	}
}

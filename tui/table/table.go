// Package table renders fixed-width table rows for the screens. It holds no rows:
// screens keep their own index and render only the window that is on screen,
// which keeps a keystroke as cheap with 100,000 tokens as with 1,000.
package table

import (
	"slices"
	"strings"

	"github.com/charmbracelet/x/ansi"
)

// Column is one column of a table.
type Column struct {
	Title string
	// Short are shorter titles, longest first, for when the column is too
	// narrow for Title; the header shows the first that fits.
	Short    []string
	Width    int  // preferred width
	MinWidth int  // narrowest useful width (0: Width); the column is shrunk to fit down to it
	Right    bool // right-aligned (numbers)
	// Flex columns take the width the others leave: they are not widened with
	// the others, but share what is left over, each up to its Width (what its
	// widest cell needs) in equal shares, and the last takes any rest.
	Flex bool
	// Priority decides which columns stay when the window is narrow: lower stays
	// first; equal priorities go in column order.
	Priority int
}

// Gap is the space between columns.
const Gap = 2

// Fit returns the columns that fit in width, in their given order. Columns are
// taken by priority at their MinWidth (the first keep of them always, shrunk if
// need be; the others only if they fit), then the fixed ones are widened by
// priority up to their Width; the Flex columns share what is left over.
func Fit(cols []Column, width, keep int) []Column {
	order := make([]int, len(cols))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cols[a].Priority - cols[b].Priority })
	widths := make([]int, len(cols)) // 0: dropped
	used := 0
	for n, i := range order {
		gap := 0
		if used > 0 {
			gap = Gap
		}
		left := width - used - gap
		w := cols[i].MinWidth
		if w == 0 {
			w = cols[i].Width
		}
		if w > left {
			if n >= keep || left <= 0 {
				continue
			}
			w = left
		}
		used += gap + w
		widths[i] = w
	}
	for _, i := range order {
		if cols[i].Flex {
			continue
		}
		if grow := min(cols[i].Width-widths[i], width-used); widths[i] > 0 && grow > 0 {
			widths[i] += grow
			used += grow
		}
	}
	used += shareFlex(cols, widths, width-used)
	out := make([]Column, 0, len(cols))
	for i, c := range cols {
		if widths[i] == 0 {
			continue
		}
		c.Width = widths[i]
		out = append(out, c)
	}
	return out
}

// shareFlex gives the shown Flex columns up to left cells: in equal shares,
// each up to its Width, then any rest to the last one. It returns the cells given.
func shareFlex(cols []Column, widths []int, left int) int {
	var flex []int
	for i, c := range cols {
		if c.Flex && widths[i] > 0 {
			flex = append(flex, i)
		}
	}
	if len(flex) == 0 || left <= 0 {
		return 0
	}
	given := 0
	for {
		var want []int
		for _, i := range flex {
			if widths[i] < cols[i].Width {
				want = append(want, i)
			}
		}
		if len(want) == 0 || left-given <= 0 {
			break
		}
		share := max(1, (left-given)/len(want))
		for _, i := range want {
			g := min(share, cols[i].Width-widths[i], left-given)
			widths[i] += g
			given += g
		}
	}
	widths[flex[len(flex)-1]] += left - given
	return left
}

// Width is the number of cells s takes on screen. Text made only of printable
// Latin characters, general punctuation (… • ·) and box drawing, the common case
// of every line, is measured without grapheme segmentation: it is on the path of
// every keystroke. Anything else (escapes, wide or combining characters) is
// measured by ansi.StringWidth.
func Width(s string) int {
	n := 0
	for _, r := range s {
		switch {
		case r >= 0x20 && r < 0x7f, r >= 0xa0 && r < 0x300 && r != 0xad,
			r >= 0x2010 && r <= 0x2027, r >= 0x2500 && r <= 0x257f:
			n++
		default:
			return ansi.StringWidth(s)
		}
	}
	return n
}

// Cell truncates s (with an ellipsis) or pads it to exactly width cells.
func Cell(s string, width int, right bool) string {
	if width <= 0 {
		return ""
	}
	w := Width(s)
	if w > width {
		return ansi.Truncate(s, width, "…")
	}
	pad := strings.Repeat(" ", width-w)
	if right {
		return pad + s
	}
	return s + pad
}

// Header renders the column titles.
func Header(cols []Column) string {
	cells := make([]string, len(cols))
	for i, c := range cols {
		cells[i] = c.headerTitle()
	}
	return Row(cols, cells)
}

// headerTitle is the title the column's width has room for: Title, else the
// first of Short that fits, else the shortest, cut.
func (c Column) headerTitle() string {
	if Width(c.Title) <= c.Width || len(c.Short) == 0 {
		return c.Title
	}
	for _, s := range c.Short {
		if Width(s) <= c.Width {
			return s
		}
	}
	return c.Short[len(c.Short)-1]
}

// Row renders cells under cols; cells beyond the columns are ignored.
func Row(cols []Column, cells []string) string {
	var b strings.Builder
	for i, c := range cols {
		if i > 0 {
			b.WriteString(strings.Repeat(" ", Gap))
		}
		s := ""
		if i < len(cells) {
			s = cells[i]
		}
		b.WriteString(Cell(s, c.Width, c.Right))
	}
	return b.String()
}

// Scroll returns the first visible row so that cursor is within a window of
// height rows starting at offset, moving the window as little as possible.
func Scroll(cursor, offset, height, n int) int {
	if height <= 0 || n <= 0 {
		return 0
	}
	if cursor < offset {
		offset = cursor
	}
	if cursor >= offset+height {
		offset = cursor - height + 1
	}
	offset = min(offset, max(0, n-height))
	return max(0, offset)
}

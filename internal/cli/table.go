package cli

import (
	"io"
	"strings"

	"github.com/charmbracelet/x/ansi"
)

// columnGap is the space between two columns of a text table.
const columnGap = 2

// textTable is the text form of list, usage and audit: columns two spaces
// apart, each cell padded to the widest of its column in terminal cells
// (ansi.StringWidth: a CJK character takes two, a combining mark none), not in
// runes as text/tabwriter counts, so that wide characters do not shift the
// columns after them. The last column is not padded, nor a line's end. Cells must be one line,
// escaped with store.Printable where they come from users.
type textTable struct {
	rows [][]string
}

// row adds a row of cells; the first row is the header.
func (t *textTable) row(cells ...string) { t.rows = append(t.rows, cells) }

// writeTo writes the table to w.
func (t *textTable) writeTo(w io.Writer) error {
	var widths []int
	for _, r := range t.rows {
		for i, c := range r {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], ansi.StringWidth(c))
		}
	}
	var b, line strings.Builder
	for _, r := range t.rows {
		line.Reset()
		for i, c := range r {
			line.WriteString(c)
			if i < len(r)-1 {
				line.WriteString(strings.Repeat(" ", widths[i]-ansi.StringWidth(c)+columnGap))
			}
		}
		b.WriteString(strings.TrimRight(line.String(), " ")) // no padding before empty last cells
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

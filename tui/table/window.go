package table

// HeadLines is the number of lines a table screen shows above its first row:
// its title, a line of counts (or the filter), and the column titles.
const HeadLines = 3

// CheckWidth is the width of Prefix, before the first column: "> [x] ".
const CheckWidth = 6

// Prefix is the cursor mark and the check box of a row.
func Prefix(cursor, selected bool) string {
	mark, box := "  ", "[ ] "
	if cursor {
		mark = "> "
	}
	if selected {
		box = "[x] "
	}
	return mark + box
}

// Window is the cursor of a table and the rows on screen around it. The
// methods taking n keep both within a table of n rows.
type Window struct {
	Cursor int // row under the cursor
	Offset int // first row on screen
	Height int // rows on screen; less than 1 counts as 1
}

// Size is the number of rows on screen.
func (w *Window) Size() int { return max(1, w.Height) }

// Clamp puts the cursor on a row and scrolls as little as needed to show it.
func (w *Window) Clamp(n int) {
	w.Cursor = max(0, min(w.Cursor, n-1))
	w.Offset = Scroll(w.Cursor, w.Offset, w.Size(), n)
}

// To moves the cursor to row.
func (w *Window) To(row, n int) {
	w.Cursor = row
	w.Clamp(n)
}

// Move moves the cursor by delta rows.
func (w *Window) Move(delta, n int) { w.To(w.Cursor+delta, n) }

// Rows are the rows on screen, from included to to excluded.
func (w *Window) Rows(n int) (from, to int) {
	return w.Offset, min(n, w.Offset+w.Size())
}

// At is the row of a table of n rows drawn on screen line y (the first row is
// on line HeadLines), or -1 when no row is drawn there: above the rows, below
// the last one on screen (the lines under the table), or past the end.
func (w *Window) At(y, n int) int {
	from, to := w.Rows(n)
	row := w.Offset + y - HeadLines
	if y < HeadLines || row < from || row >= to {
		return -1
	}
	return row
}

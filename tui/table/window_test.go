package table

import "testing"

func TestWindow(t *testing.T) {
	const n = 10
	tests := []struct {
		name             string
		w                Window
		rows             int
		do               func(w *Window, n int)
		cursor, from, to int
	}{
		{"down within the window", Window{Height: 3}, n, func(w *Window, n int) { w.Move(2, n) }, 2, 0, 3},
		{"down past the window scrolls one", Window{Cursor: 2, Height: 3}, n, func(w *Window, n int) { w.Move(1, n) }, 3, 1, 4},
		{"up from the top stays", Window{Height: 3}, n, func(w *Window, n int) { w.Move(-1, n) }, 0, 0, 3},
		{"page down past the end stops at the last", Window{Cursor: 8, Offset: 7, Height: 3}, n, func(w *Window, n int) { w.Move(3, n) }, 9, 7, 10},
		{"to a row above scrolls to it", Window{Cursor: 9, Offset: 7, Height: 3}, n, func(w *Window, n int) { w.To(2, n) }, 2, 2, 5},
		{"clamp after rows went away", Window{Cursor: 9, Offset: 7, Height: 3}, 4, func(w *Window, n int) { w.Clamp(n) }, 3, 1, 4},
		{"clamp of an empty table", Window{Cursor: 5, Offset: 3, Height: 3}, 0, func(w *Window, n int) { w.Clamp(n) }, 0, 0, 0},
		{"height below 1 counts as 1", Window{Height: -2}, n, func(w *Window, n int) { w.Move(4, n) }, 4, 4, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := tt.w
			tt.do(&w, tt.rows)
			from, to := w.Rows(tt.rows)
			if w.Cursor != tt.cursor || from != tt.from || to != tt.to {
				t.Errorf("cursor %d, rows [%d,%d); want %d, [%d,%d)", w.Cursor, from, to, tt.cursor, tt.from, tt.to)
			}
		})
	}
}

func TestWindowAt(t *testing.T) {
	w := Window{Offset: 5, Height: 4}
	// Rows 5..8 are drawn on lines 3..6; line 7 and below show no row.
	for y, want := range []int{-1, -1, -1, 5, 6, 7, 8, -1, -1} {
		if got := w.At(y, 20); got != want {
			t.Errorf("At(%d, 20) = %d, want %d", y, got, want)
		}
	}
	// A table of 7 rows draws rows 5 and 6 only.
	for y, want := range []int{-1, -1, -1, 5, 6, -1, -1} {
		if got := w.At(y, 7); got != want {
			t.Errorf("At(%d, 7) = %d, want %d", y, got, want)
		}
	}
}

func TestPrefix(t *testing.T) {
	for _, tt := range []struct {
		cursor, selected bool
		want             string
	}{
		{false, false, "  [ ] "},
		{true, false, "> [ ] "},
		{false, true, "  [x] "},
		{true, true, "> [x] "},
	} {
		if got := Prefix(tt.cursor, tt.selected); got != tt.want || Width(got) != CheckWidth {
			t.Errorf("Prefix(%v, %v) = %q, want %q of width %d", tt.cursor, tt.selected, got, tt.want, CheckWidth)
		}
	}
}

package tokens

import (
	"slices"
	"strings"
	"time"

	"github.com/apptokens/apptokens/store"
)

// SortKey is the order of the table.
type SortKey int

// Orders the sort key cycles through.
const (
	SortName     SortKey = iota // name, A to Z
	SortCreated                 // newest first
	SortLastUsed                // most recently used first, never used last
	numSortKeys
)

func (k SortKey) String() string {
	switch k {
	case SortCreated:
		return "created (newest first)"
	case SortLastUsed:
		return "last used (most recent first)"
	}
	return "name"
}

// index holds every token once, an order for the current sort and the window
// of it that passes the filter. Only positions move: tokens are never copied
// on a keystroke.
type index struct {
	all   []store.Token
	lower []string       // lower-cased name, for sorting
	text  []string       // lower-cased name and description, for filtering
	byID  map[string]int // token ID → position in all
	order []int          // positions in sort order
	view  []int          // positions in sort order that pass the filter
	sort  SortKey
	query string // lower-cased filter
}

// reset replaces every token.
func (x *index) reset(toks []store.Token) {
	x.all = toks
	x.lower = make([]string, len(toks))
	x.text = make([]string, len(toks))
	x.byID = make(map[string]int, len(toks))
	for i := range toks {
		x.describe(i)
		x.byID[toks[i].ID] = i
	}
	x.resort()
}

func (x *index) describe(i int) {
	t := &x.all[i]
	x.lower[i] = strings.ToLower(t.Name)
	x.text[i] = x.lower[i] + "\x00" + strings.ToLower(t.Description)
}

// patch applies changed tokens and deletions, then sorts and filters again.
func (x *index) patch(upserts []store.Token, deleted []string) {
	reorder := x.sort != SortName
	for _, t := range upserts {
		if i, ok := x.byID[t.ID]; ok {
			x.all[i] = t
			x.describe(i)
			continue
		}
		x.all = append(x.all, t)
		x.lower = append(x.lower, "")
		x.text = append(x.text, "")
		x.describe(len(x.all) - 1)
		x.byID[t.ID] = len(x.all) - 1
		reorder = true
	}
	if len(deleted) > 0 {
		gone := make(map[string]bool, len(deleted))
		for _, id := range deleted {
			if _, ok := x.byID[id]; ok {
				gone[id] = true
			}
		}
		if len(gone) > 0 {
			keep := x.all[:0]
			for _, t := range x.all {
				if !gone[t.ID] {
					keep = append(keep, t)
				}
			}
			x.reset(keep)
			return
		}
	}
	if reorder {
		x.resort()
	} else {
		x.refilter()
	}
}

// touch moves the last-used time of the token at position i forward (the
// gate's usage; it never moves back) and reports whether it moved. The caller
// puts it back in order (reposition) when the order is by last use.
func (x *index) touch(i int, at time.Time) bool {
	if !at.After(x.all[i].LastUsedAt) {
		return false
	}
	x.all[i].LastUsedAt = at
	return true
}

// reposition puts the tokens at positions ps, whose sort keys changed, back in
// order: they are taken out, sorted, and merged with the rest, which is still
// in order. That is linear in the tokens, where sorting them all is not.
func (x *index) reposition(ps []int) {
	moved := make(map[int]bool, len(ps))
	var sorted []int
	for _, p := range ps {
		if !moved[p] {
			moved[p] = true
			sorted = append(sorted, p)
		}
	}
	slices.SortFunc(sorted, x.compare)
	merged := make([]int, 0, len(x.order))
	j := 0
	for _, p := range x.order {
		if moved[p] {
			continue
		}
		for j < len(sorted) && x.compare(sorted[j], p) < 0 {
			merged = append(merged, sorted[j])
			j++
		}
		merged = append(merged, p)
	}
	x.order = append(merged, sorted[j:]...)
	x.refilter()
}

// setSort changes the order.
func (x *index) setSort(k SortKey) {
	x.sort = k
	x.resort()
}

// setQuery changes the filter.
func (x *index) setQuery(q string) {
	x.query = strings.ToLower(q)
	x.refilter()
}

func (x *index) resort() {
	x.order = x.order[:0]
	for i := range x.all {
		x.order = append(x.order, i)
	}
	slices.SortFunc(x.order, x.compare)
	x.refilter()
}

// compare orders the tokens at positions a and b by the sort key, then by name.
func (x *index) compare(a, b int) int {
	switch x.sort {
	case SortCreated:
		if c := x.all[b].CreatedAt.Compare(x.all[a].CreatedAt); c != 0 {
			return c
		}
	case SortLastUsed:
		if c := x.all[b].LastUsedAt.Compare(x.all[a].LastUsedAt); c != 0 {
			return c
		}
	}
	return strings.Compare(x.lower[a], x.lower[b])
}

func (x *index) refilter() {
	if x.query == "" {
		x.view = append(x.view[:0], x.order...)
		return
	}
	x.view = x.view[:0]
	for _, i := range x.order {
		if strings.Contains(x.text[i], x.query) {
			x.view = append(x.view, i)
		}
	}
}

// row is the token at row r of the view.
func (x *index) row(r int) *store.Token { return &x.all[x.view[r]] }

// find returns the row of the token with this ID in the view, or -1.
func (x *index) find(id string) int {
	i, ok := x.byID[id]
	if !ok {
		return -1
	}
	for r, p := range x.view {
		if p == i {
			return r
		}
	}
	return -1
}

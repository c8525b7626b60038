package tokens

import (
	"strings"
	"time"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/tui/tokenset"
)

// SortKey is the order of the table.
type SortKey = tokenset.SortKey

// Orders the sort key cycles through.
const (
	SortName     = tokenset.SortName
	SortCreated  = tokenset.SortCreated
	SortLastUsed = tokenset.SortLastUsed
	numSortKeys  = tokenset.NumSortKeys
)

// index is this session's view of the shared token set: the set itself is
// shared by every session of the process (sorted orders included); what is
// the session's own is the sort key, the filter and, while filtering, the
// positions that pass it. Tokens are never copied.
type index struct {
	set   *tokenset.Set // nil until loaded
	sort  SortKey
	query string  // lower-cased filter
	view  []int32 // positions shown: the set's shared order, or own (filtered)
	own   []int32 // the filter's result; its backing array is reused
}

// setSet moves to a newer set. A filter result stays when nothing it
// depends on changed (the gate's usage, sorted by name: every second).
func (x *index) setSet(s *tokenset.Set) {
	old := x.set
	x.set = s
	if x.query != "" && s.SameFilterInput(old, x.sort) {
		return
	}
	x.refilter()
}

// setSort changes the order.
func (x *index) setSort(k SortKey) {
	x.sort = k
	x.refilter()
}

// setQuery changes the filter.
func (x *index) setQuery(q string) {
	x.query = strings.ToLower(q)
	x.refilter()
}

// order is every token in the current sort order (shared: read only).
func (x *index) order() []int32 {
	if x.set == nil {
		return nil
	}
	return x.set.Order(x.sort)
}

func (x *index) refilter() {
	order := x.order()
	if x.query == "" {
		x.view, x.own = order, nil
		return
	}
	own := x.own[:0]
	for _, p := range order {
		if x.set.Matches(int(p), x.query) {
			own = append(own, p)
		}
	}
	x.own, x.view = own, own
}

// row is the token at row r of the view.
func (x *index) row(r int) *store.Token { return x.set.At(int(x.view[r])) }

// rowID is the ID of the token at row r of the view, without copying it out.
func (x *index) rowID(r int) string { return x.set.ID(int(x.view[r])) }

// find returns the row of the token with this ID in the view, or -1. A token
// keeps its position within an epoch, so the position p it had is tried first.
func (x *index) find(id string, p int32, epoch uint64) int {
	if x.set == nil {
		return -1
	}
	if epoch != x.set.Epoch() {
		p = -1
		for q := 0; q < x.set.Len(); q++ {
			if x.set.ID(q) == id {
				p = int32(q)
				break
			}
		}
	}
	if p < 0 || int(p) >= x.set.Len() {
		return -1
	}
	if x.set.ID(int(p)) != id {
		return -1
	}
	for r, q := range x.view {
		if q == p {
			return r
		}
	}
	return -1
}

// position is the position of the token with this ID in the set, or -1.
func (x *index) position(id string) int32 {
	for p := range x.set.Len() {
		if x.set.ID(p) == id {
			return int32(p)
		}
	}
	return -1
}

// at is the position and epoch of row r, to find its token again with find.
func (x *index) at(r int) (int32, uint64) { return x.view[r], x.set.Epoch() }

// rotating reports whether the token of row r has an old secret that still
// works at now.
func (x *index) rotating(r int, now time.Time) bool {
	until := x.set.OldUntil(int(x.view[r]))
	return !until.IsZero() && now.Before(until)
}

package tokens

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/tui/common"
	"github.com/apptokens/apptokens/tui/recent"
	"github.com/apptokens/apptokens/tui/table"
)

// Column titles.
const (
	colName     = "Name"
	colState    = "State"
	colAccess   = "Access Type"
	colDays     = "Days to become inactive" // the contract's words (DESIGN)
	colCreated  = "Created"
	colLastUsed = "Last used"
	colDesc     = "Description"
	colHint     = "Hint"
	colRecent   = "Last 24 h"
	colExpires  = "Expires"
)

// soon is how early a token that will stop working is marked (DESIGN: within
// 7 days), with warnMark and words, so that it shows without colour.
const (
	soon     = 7 * 24 * time.Hour
	warnMark = "⚠ "
)

// expiresWidth fits "in 365 days", "⚠ in 7 days" and a date.
const expiresWidth = len("in 365 days") + 1

// noteWidth is the narrowest window whose state column says until when a
// rotated token's old secret works; narrower ones say rotatingShort (the
// status line and the reveal said the time when it was rotated).
const (
	noteWidth     = 140
	rotatingShort = "rotating"
)

// daysMin fits the days column's narrowest cells: "⚠ 30 days", "del. 365 d".
const daysMin = len("del. 365 d")

// descWant is the width the description column should have before the days
// column takes its whole title: the description is what tells tokens apart.
const descWant = 30

// Titles of the days column when it is too narrow for colDays.
const (
	colDaysShort    = "Days to inactive"
	colDaysShortest = "Days"
)

// Useful widths of the access column: both labels, or the longer one (a token
// with both then shows bothAccess).
const (
	accessFull = len("Security Director, Third Party Feeds")
	accessMin  = len("Security Director")
)

// columns fits the columns to the window. The description (flexible) takes
// what the fixed columns leave; the access column shows both labels, and the
// days column its whole title, only when the description keeps descWant
// cells; the hint column shows when there is room for it too.
func (m *Model) columns() []table.Column {
	for _, accessW := range []int{accessFull, accessMin} {
		for _, hint := range []bool{true, false} {
			// The sparkline goes first when room is short.
			for _, spark := range []bool{m.ctx.Sparklines != nil, false} {
				// The days column's whole title goes before any content.
				for _, daysW := range []int{len(colDays), len(colDaysShort)} {
					cols := m.fit(accessW, daysW, hint, spark)
					if descWidth(cols) >= descWant || !m.shows(colDesc) {
						return cols
					}
				}
			}
		}
	}
	// Narrow: the days column's shorter title, the access column's narrowest.
	return m.fit(accessMin, len(colDaysShort), false, false)
}

// descWidth is the width of the description column, 0 when it is not shown.
func descWidth(cols []table.Column) int {
	for _, c := range cols {
		if c.Title == colDesc {
			return c.Width
		}
	}
	return 0
}

// hintWidth is the width of a token's hint: prefix, "…", last 4 characters.
const hintWidth = len("aptk_") + 1 + 4

func (m *Model) fit(accessWidth, daysWidth int, hint, spark bool) []table.Column {
	const day = 24 * time.Hour
	maxDays := common.Plural(int((m.inactiveAfter+day-1)/day), "day", "days")
	cols := []table.Column{
		{Title: colName, Width: min(m.nameWidth, store.MaxNameLen)},
		// A rotation note is never cut: lower columns go first.
		{Title: colState, Width: m.stateWidth()},
		{Title: colAccess, Width: accessWidth, MinWidth: accessMin, Priority: 1},
		{Title: colDays, Short: []string{colDaysShort, colDaysShortest}, Width: daysWidth, MinWidth: max(daysMin, len(maxDays)), Right: true},
		{Title: colExpires, Width: expiresWidth},
		{Title: colCreated, Width: len("2006-01-02"), Priority: 1},
		{Title: colLastUsed, Width: len("2006-01-02 15:04"), Priority: 1},
	}
	if spark {
		cols = append(cols, table.Column{Title: colRecent, Width: recent.Hours, MinWidth: recent.Hours, Priority: 2})
	}
	if hint {
		cols = append(cols, table.Column{Title: colHint, Width: max(hintWidth, m.hintWidth), Priority: 2})
	}
	cols = append(cols, table.Column{Title: colDesc, Width: len(colDesc), MinWidth: len(colDesc), Flex: true, Priority: 1})
	return table.Fit(m.pick(cols), m.width-table.CheckWidth, 2)
}

// columnKeys are the names config.toml's columns setting gives the columns.
var columnKeys = map[string]string{
	"name": colName, "state": colState, "access": colAccess, "days": colDays,
	"created": colCreated, "expires": colExpires, "last_used": colLastUsed, "last_24h": colRecent, "hint": colHint, "description": colDesc,
}

// SetColumns chooses the columns shown and their order, by the names of
// config.toml's columns setting; unknown names are ignored, and none (nil)
// shows every column in the usual order. A column the width leaves out (the
// hint) stays out.
func (m *Model) SetColumns(names []string) {
	m.shown = nil
	for _, n := range names {
		if t, ok := columnKeys[n]; ok {
			m.shown = append(m.shown, t)
		}
	}
}

func (m *Model) shows(title string) bool {
	return m.shown == nil || slices.Contains(m.shown, title)
}

// pick keeps the chosen columns of cols, in the chosen order.
func (m *Model) pick(cols []table.Column) []table.Column {
	if m.shown == nil {
		return cols
	}
	out := make([]table.Column, 0, len(m.shown))
	for _, t := range m.shown {
		if i := slices.IndexFunc(cols, func(c table.Column) bool { return c.Title == t }); i >= 0 {
			out = append(out, cols[i])
		}
	}
	return out
}

// nameColumn is where the name column is, in cells after the check box
// (end 0: not shown).
func (m *Model) nameColumn() (start, end int) {
	for _, c := range m.columns() {
		if c.Title == colName {
			return start, start + c.Width
		}
		start += c.Width + table.Gap
	}
	return 0, 0
}

// View renders the heading, the filter line, the column titles and the rows on screen.
func (m *Model) View() string {
	s := m.ctx.Styles
	var b strings.Builder
	b.WriteString(s.Title.Render("Application Tokens"))
	if m.loaded {
		total, active := m.counts(m.ctx.Now())
		counts := "  " + common.Plural(total, "token", "tokens") + ", " + strconv.Itoa(active) + " active"
		if n := len(m.selected); n > 0 {
			counts += ", " + strconv.Itoa(n) + " selected"
		}
		b.WriteString(s.Subtle.Render(counts))
		if m.err != nil {
			b.WriteString(s.Error.Render("  ✗ not up to date: retrying"))
		}
	}
	b.WriteByte('\n')
	b.WriteString(m.filterLine())
	b.WriteByte('\n')
	switch {
	case !m.loaded && m.err != nil:
		b.WriteString(s.Error.Render("Could not load the tokens: " + m.err.Error()))
		return b.String()
	case !m.loaded:
		b.WriteString(s.Subtle.Render("Loading…"))
		return b.String()
	case m.total == 0:
		b.WriteString("\nNo tokens yet. Press n to create one.")
		return b.String()
	case len(m.idx.view) == 0:
		b.WriteString("\nNo token matches " + strconv.Quote(m.idx.query) + ". Press esc to clear the filter.")
		return b.String()
	}
	cols := m.columns()
	b.WriteString(s.Header.Render(strings.Repeat(" ", table.CheckWidth) + table.Header(cols)))
	now := m.ctx.Now()
	from, to := m.win.Rows(len(m.idx.view))
	cells := make([]string, len(cols))
	for r := from; r < to; r++ {
		t := m.idx.row(r)
		_, sel := m.selected[t.ID]
		state := t.StateAt(now, m.inactiveAfter)
		for i, c := range cols {
			cells[i] = m.cell(c, t, state, now)
		}
		line := table.Prefix(r == m.win.Cursor, sel) + table.Row(cols, cells)
		b.WriteByte('\n')
		switch {
		case r == m.win.Cursor:
			b.WriteString(s.Cursor.Render(line))
		case sel:
			b.WriteString(s.Selected.Render(line))
		case state != store.StateActive:
			b.WriteString(s.Inactive.Render(line))
		case stopsSoon(t, now, m.inactiveAfter):
			b.WriteString(s.Warning.Render(line))
		default:
			b.WriteString(line)
		}
	}
	return b.String()
}

// bothAccess is the Access cell of a token with both access types when the
// column is too narrow for both labels.
const bothAccess = "Both"

func (m *Model) cell(col table.Column, t *store.Token, state store.State, now time.Time) string {
	switch col.Title {
	case colName:
		return t.Name
	case colState:
		// Only an active token's old secret works: the note is for it alone.
		if r := RotatingNote(t, now); r != "" && state == store.StateActive {
			if m.width < noteWidth {
				return state.Label() + ", " + rotatingShort
			}
			return state.Label() + ", " + r
		}
		return state.Label()
	case colExpires:
		return m.expiresCell(t, state, now)
	case colAccess:
		if l := t.AccessLabels(); len(l) <= col.Width || len(t.Access) < 2 {
			return l
		}
		return bothAccess
	case colDays:
		if d, ok := t.DaysToInactive(now, m.inactiveAfter); ok {
			days := common.Plural(d, "day", "days")
			if by := t.StopsAt(m.inactiveAfter); t.ExpiresAt.IsZero() || by.Before(t.ExpiresAt) {
				// Inactivity is what stops it first: marked here.
				if by.Sub(now) <= soon {
					days = warnMark + days
				}
			}
			return days
		}
		if d, ok := daysToDelete(t, now, m.deleteAfter); ok {
			if d == 0 {
				return "deleted soon" // by the next sweep
			}
			for _, w := range []string{"deleted in " + common.Plural(d, "day", "days"), "deleted in " + strconv.Itoa(d) + " d"} {
				if len(w) <= col.Width {
					return w
				}
			}
			return "del. " + strconv.Itoa(d) + " d"
		}
		return "-"
	case colCreated:
		return common.Date(t.CreatedAt)
	case colLastUsed:
		return common.Time(t.LastUsedAt)
	case colHint:
		return store.Printable(t.Hint)
	case colRecent:
		return m.ctx.Sparklines.Sparkline(t.ID)
	case colDesc:
		line, rest, more := strings.Cut(t.Description, "\n")
		line = store.Printable(line)
		if more && strings.TrimSpace(rest) != "" {
			// A hidden second line is cut text too.
			line += " …"
		}
		return line
	}
	return ""
}

func (m *Model) filterLine() string {
	s := m.ctx.Styles
	sort := s.Subtle.Render("sort: " + m.idx.sort.String())
	shown := common.Plural(len(m.idx.view), "match", "matches")
	switch {
	case m.filtering:
		return m.filter.View() + s.Subtle.Render("  "+shown) + "  " + sort
	case m.idx.query != "":
		return "/" + m.filter.Value() + s.Subtle.Render("  "+shown+" · esc clears") + "  " + sort
	}
	return s.Subtle.Render("/ filter") + "  " + sort
}

// stateWidth is the width the state column wants: its longest word, or the
// longest state with a rotation note among the rows on screen.
func (m *Model) stateWidth() int {
	w := len("Inactive")
	if m.idx.set == nil {
		return w
	}
	now := m.ctx.Now()
	from, to := m.win.Rows(len(m.idx.view))
	for r := from; r < to; r++ {
		if !m.idx.rotating(r, now) {
			continue
		}
		if t := m.idx.row(r); t.StateAt(now, m.inactiveAfter) == store.StateActive {
			note := rotatingShort
			if m.width >= noteWidth {
				note = RotatingNote(t, now)
			}
			w = max(w, table.Width(store.StateActive.Label()+", "+note))
		}
	}
	return w
}

// RotatingNote is what the table says of a token whose old secret still
// works after a rotation, "" when none does: "rotating, old secret until
// 14:05" (UTC; "tomorrow 14:05", or the date when later).
func RotatingNote(t *store.Token, now time.Time) string {
	if t.OldValidUntil.IsZero() || !now.Before(t.OldValidUntil) {
		return "" // the shared set keeps OldValidUntil only with an old secret
	}
	u := t.OldValidUntil.UTC()
	at := u.Format("15:04")
	switch day := func(t time.Time) string { return t.Format("2006-01-02") }; day(u) {
	case day(now.UTC()):
	case day(now.UTC().AddDate(0, 0, 1)):
		at = "tomorrow " + at
	default:
		at = u.Format("2006-01-02 15:04")
	}
	return "rotating, old secret until " + at
}

// stopsSoon reports whether an active token stops working (expires or becomes
// Inactive) within soon.
func stopsSoon(t *store.Token, now time.Time, inactiveAfter time.Duration) bool {
	at := t.StopsAt(inactiveAfter)
	return !at.IsZero() && at.Sub(now) <= soon
}

// expiresCell is the Expires cell: "never", "in 12 days" (marked when within
// soon), or the date an expired token expired.
func (m *Model) expiresCell(t *store.Token, state store.State, now time.Time) string {
	if t.ExpiresAt.IsZero() {
		return "never"
	}
	left := t.ExpiresAt.Sub(now)
	if left <= 0 {
		return common.Date(t.ExpiresAt)
	}
	text := "in " + common.Until(left)
	if state == store.StateActive && left <= soon {
		if by := t.StopsAt(m.inactiveAfter); !by.Before(t.ExpiresAt) {
			text = warnMark + text
		}
	}
	return text
}

// daysToDelete is the number of days, rounded up, before the sweep deletes a
// token that is not active (Inactive or Expired) under the policy
// deleteAfter (0: off; ok false then).
func daysToDelete(t *store.Token, now time.Time, deleteAfter time.Duration) (int, bool) {
	at := t.DeleteAt(deleteAfter)
	if at.IsZero() {
		return 0, false
	}
	left := at.Sub(now)
	const day = 24 * time.Hour
	return max(0, int((left+day-1)/day)), true
}

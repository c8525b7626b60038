// Package audit is the audit screen: every change made to the tokens, newest first.
package audit

import (
	"strings"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/tui/common"
	"github.com/apptokens/apptokens/tui/keys"
	"github.com/apptokens/apptokens/tui/table"
)

// Store is what the audit screen needs from the store.
type Store interface {
	Audit(limit int) ([]store.Event, error)
}

// Limit is how many of the newest events the screen shows.
const Limit = 1000

// Model is the audit screen.
type Model struct {
	ctx    *common.Context
	store  Store
	keys   keys.Audit
	fkeys  keys.FilterInput
	events []store.Event
	// view are the positions in events that pass the filter; win moves over it.
	view []int
	win  table.Window

	filter    textinput.Model
	filtering bool
	query     string // lower-cased filter
	// widest cells of the events, for the flexible columns
	tokenW, actorW, detailsW int

	loaded bool
	loader common.Loader
	err    error // the last load's failure, shown until a load succeeds
	width  int
}

type loadedMsg struct {
	events []store.Event
	err    error
}

// retryMsg retries a failed load.
type retryMsg struct{}

// New returns the audit screen; Init loads it.
func New(ctx *common.Context, st Store) *Model {
	f := textinput.New()
	f.Prompt = "/"
	f.Placeholder = "action, token, actor or details"
	f.CharLimit = 0 // never cut what is typed
	f.Cursor.SetMode(cursor.CursorStatic)
	ctx.Styles.TextInput(&f)
	return &Model{ctx: ctx, store: st, keys: keys.DefaultAudit(), fkeys: keys.DefaultFilterInput(), filter: f}
}

// detailLines is how many lines the selected event's detail takes under the rows.
const detailLines = 3

// Init loads the events.
func (m *Model) Init() tea.Cmd { return m.load() }

func (m *Model) load() tea.Cmd {
	m.loader.Start()
	st := m.store
	return func() tea.Msg {
		ev, err := st.Audit(Limit)
		return loadedMsg{events: ev, err: err}
	}
}

// SetSize sets the screen's size.
func (m *Model) SetSize(width, height int) {
	m.width = width
	m.filter.Width = max(10, min(40, width-30))
	m.win.Height = height - table.HeadLines - detailLines
	m.win.Clamp(len(m.view))
}

// Typing reports whether the filter field has focus.
func (m *Model) Typing() bool { return m.filtering }

// Update handles keys, store changes and load results.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case loadedMsg:
		m.err = msg.err
		cmd, again := m.loader.Done("the audit log", msg.err, retryMsg{})
		if msg.err != nil {
			return m, cmd
		}
		m.apply(msg.events)
		if again {
			return m, m.load()
		}
	case retryMsg:
		if m.loader.Retry() {
			return m, m.load()
		}
		return m, nil
	case common.ChangesMsg:
		if audited(msg) && m.loader.Changed() {
			return m, m.load()
		}
		return m, nil
	case tea.MouseMsg:
		if msg.Action == tea.MouseActionPress {
			switch msg.Button {
			case tea.MouseButtonWheelUp:
				m.win.Move(-1, len(m.view))
			case tea.MouseButtonWheelDown:
				m.win.Move(1, len(m.view))
			case tea.MouseButtonLeft:
				if row := m.win.At(msg.Y, len(m.view)); row >= 0 {
					m.win.To(row, len(m.view))
				}
			}
		}
	case tea.KeyMsg:
		if m.filtering {
			return m, m.filterKey(msg)
		}
		k := m.keys
		n := len(m.view)
		switch {
		case key.Matches(msg, k.Back):
			if m.query != "" {
				m.setQuery("")
				return m, nil
			}
			return m, func() tea.Msg { return common.BackMsg{} }
		case key.Matches(msg, k.Filter):
			m.filtering = true
			return m, m.filter.Focus()
		case key.Matches(msg, k.Up):
			m.win.Move(-1, n)
		case key.Matches(msg, k.Down):
			m.win.Move(1, n)
		case key.Matches(msg, k.PageUp):
			m.win.Move(-m.win.Size(), n)
		case key.Matches(msg, k.PageDown):
			m.win.Move(m.win.Size(), n)
		}
	}
	return m, nil
}

// apply shows a fresh load, keeping the cursor on the same event: found by
// what it is, since new events come first and old ones fall off the limit.
func (m *Model) apply(events []store.Event) {
	cur := m.current()
	m.events, m.loaded = events, true
	m.tokenW, m.actorW, m.detailsW = 0, 0, 0
	for i := range events {
		e := &events[i]
		m.tokenW = max(m.tokenW, table.Width(store.Printable(e.Token)))
		m.actorW = max(m.actorW, table.Width(store.Printable(e.Actor)))
		m.detailsW = max(m.detailsW, table.Width(store.Printable(e.Details)))
	}
	m.refilter()
	if cur != nil && m.win.Cursor > 0 {
		for r, i := range m.view {
			if sameEvent(&events[i], cur) {
				m.win.Cursor = r
				break
			}
		}
	}
	m.win.Clamp(len(m.view))
}

// current is a copy of the event under the cursor, or nil.
func (m *Model) current() *store.Event {
	if m.win.Cursor >= len(m.view) {
		return nil
	}
	e := m.events[m.view[m.win.Cursor]]
	return &e
}

// matches reports whether an event passes the filter.
func (m *Model) matches(e *store.Event) bool {
	if m.query == "" {
		return true
	}
	for _, f := range []string{e.Action, e.Token, e.Actor, e.Details} {
		if strings.Contains(strings.ToLower(store.Printable(f)), m.query) {
			return true
		}
	}
	return false
}

// refilter rebuilds the view from the events and the filter.
func (m *Model) refilter() {
	m.view = m.view[:0]
	for i := range m.events {
		if m.matches(&m.events[i]) {
			m.view = append(m.view, i)
		}
	}
}

func (m *Model) filterKey(msg tea.KeyMsg) tea.Cmd {
	return common.FilterKey(msg, m.fkeys, &m.filter, &m.filtering, m.setQuery)
}

// setQuery filters, keeping the cursor on its event when it still shows.
func (m *Model) setQuery(q string) {
	cur := m.current()
	m.filter.SetValue(q)
	m.query = strings.ToLower(q)
	m.refilter()
	m.win.Cursor = 0
	if cur != nil {
		for r, i := range m.view {
			if sameEvent(&m.events[i], cur) {
				m.win.Cursor = r
				break
			}
		}
	}
	m.win.Clamp(len(m.view))
}

// sameEvent reports whether a and b are the same recorded event.
func sameEvent(a, b *store.Event) bool {
	return a.Time.Equal(b.Time) && a.Actor == b.Actor && a.Action == b.Action && a.Token == b.Token && a.Details == b.Details
}

// View renders the heading and the events on screen.
func (m *Model) View() string {
	s := m.ctx.Styles
	var b strings.Builder
	b.WriteString(s.Title.Render("Audit log"))
	b.WriteByte('\n')
	switch {
	case !m.loaded && m.err != nil:
		b.WriteString(s.Error.Render("Could not load the audit log: " + m.err.Error()))
		return b.String()
	case !m.loaded:
		b.WriteString(s.Subtle.Render("Loading…"))
		return b.String()
	}
	info := s.Subtle.Render(common.Plural(len(m.events), "event", "events") + " · newest first")
	switch {
	case m.filtering:
		info = m.filter.View() + s.Subtle.Render("  "+common.Plural(len(m.view), "match", "matches"))
	case m.query != "":
		info = "/" + store.Printable(m.filter.Value()) + s.Subtle.Render("  "+common.Plural(len(m.view), "match", "matches")+" of "+common.Plural(len(m.events), "event", "events")+" · esc clears")
	}
	b.WriteString(info)
	b.WriteByte('\n')
	if len(m.events) == 0 {
		b.WriteString("\nNothing has happened yet.")
		return b.String()
	}
	if len(m.view) == 0 {
		b.WriteString("\nNo event matches " + store.Printable(m.filter.Value()) + ". Press esc to clear the filter.")
		return b.String()
	}
	cols := table.Fit([]table.Column{
		{Title: "Time", Width: len("2006-01-02 15:04")},
		{Title: "Action", Width: len("deactivate")},
		{Title: "Token", Width: max(len("Token"), min(m.tokenW, store.MaxNameLen)), MinWidth: 8},
		// Actor and Details share what the others leave, each up to its
		// widest cell: at 200 columns a key fingerprint is whole.
		{Title: "Actor", Width: max(len("Actor"), m.actorW), MinWidth: 8, Flex: true, Priority: 1},
		{Title: "Details", Width: max(len("Details"), m.detailsW), MinWidth: 7, Flex: true, Priority: 2},
	}, m.width-2, 3)
	b.WriteString(s.Header.Render("  " + table.Header(cols)))
	cells := make([]string, len(cols))
	from, to := m.win.Rows(len(m.view))
	for r := from; r < to; r++ {
		e := m.events[m.view[r]]
		for i, c := range cols {
			switch c.Title {
			case "Time":
				cells[i] = common.Time(e.Time)
			case "Action":
				cells[i] = e.Action
			case "Token":
				cells[i] = store.Printable(e.Token)
			case "Actor":
				cells[i] = store.Printable(e.Actor)
			case "Details":
				cells[i] = store.Printable(e.Details)
			}
		}
		line := "  " + table.Row(cols, cells)
		b.WriteByte('\n')
		if r == m.win.Cursor {
			b.WriteString(s.Cursor.Render("> " + line[2:]))
		} else {
			b.WriteString(line)
		}
	}
	// The selected event in full under the rows: the actor with its whole
	// key fingerprint, the details however long.
	for n := to - from; n < m.win.Size(); n++ {
		b.WriteByte('\n')
	}
	if e := m.current(); e != nil {
		details := store.Printable(e.Details)
		if details == "" {
			details = "none"
		}
		fit := func(label, text string) string {
			return "\n" + s.Subtle.Render(label) + table.Cell(text, max(1, m.width-len(label)), false)
		}
		b.WriteString(fit("", e.Time.UTC().Format("2006-01-02 15:04:05 UTC")+" · "+e.Action+" "+store.Printable(e.Token)))
		b.WriteString(fit("by ", store.Printable(e.Actor)))
		b.WriteString(fit("details: ", details))
	}
	return b.String()
}

// ShortHelp is the help line.
func (m *Model) ShortHelp() []key.Binding {
	if m.filtering {
		return []key.Binding{m.fkeys.Apply, m.fkeys.Cancel}
	}
	return []key.Binding{m.keys.Up, m.keys.Down, m.keys.Filter, m.keys.Back}
}

// FullHelp is the full help.
func (m *Model) FullHelp() [][]key.Binding {
	k := m.keys
	return [][]key.Binding{{k.Up, k.Down, k.PageUp, k.PageDown}, {k.Filter, k.Back}}
}

// audited reports whether msg may bring new events: the gate's usage
// (store.ChangeUsed, every second while tokens are used) is not audited.
func audited(msg common.ChangesMsg) bool {
	if msg.Reload {
		return true
	}
	for _, c := range msg.Changes {
		if c.Kind != store.ChangeUsed {
			return true
		}
	}
	return false
}

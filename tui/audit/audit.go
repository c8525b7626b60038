// Package audit is the audit screen: every change made to the tokens, newest first.
package audit

import (
	"strings"

	"github.com/charmbracelet/bubbles/key"
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
	events []store.Event
	win    table.Window
	// widest cells of the events, for the flexible columns
	tokenW, actorW, detailsW int

	loaded   bool
	loading  bool
	dirty    bool
	retrying bool // a load failed: a retry is due after backoff
	backoff  common.Backoff
	err      error // the last load's failure, shown until a load succeeds
	width    int
}

type loadedMsg struct {
	events []store.Event
	err    error
}

// retryMsg retries a failed load.
type retryMsg struct{}

// New returns the audit screen; Init loads it.
func New(ctx *common.Context, st Store) *Model {
	return &Model{ctx: ctx, store: st, keys: keys.DefaultAudit()}
}

// Init loads the events.
func (m *Model) Init() tea.Cmd { return m.load() }

func (m *Model) load() tea.Cmd {
	m.loading = true
	st := m.store
	return func() tea.Msg {
		ev, err := st.Audit(Limit)
		return loadedMsg{events: ev, err: err}
	}
}

// SetSize sets the screen's size.
func (m *Model) SetSize(width, height int) {
	m.width = width
	m.win.Height = height - table.HeadLines
	m.win.Clamp(len(m.events))
}

// Typing is false: the audit screen has no text field.
func (m *Model) Typing() bool { return false }

// Update handles keys, store changes and load results.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case loadedMsg:
		m.loading = false
		m.err = msg.err
		if msg.err != nil {
			m.dirty, m.retrying = false, true
			return m, common.RetryLater(&m.backoff, "the audit log", msg.err, retryMsg{})
		}
		m.backoff.Reset()
		m.apply(msg.events)
		if m.dirty {
			m.dirty = false
			return m, m.load()
		}
	case retryMsg:
		if !m.retrying {
			return m, nil
		}
		m.retrying = false
		if m.loading {
			return m, nil
		}
		return m, m.load()
	case common.ChangesMsg:
		if !audited(msg) || m.retrying {
			return m, nil
		}
		if m.loading {
			m.dirty = true
			return m, nil
		}
		return m, m.load()
	case tea.MouseMsg:
		if msg.Action == tea.MouseActionPress {
			switch msg.Button {
			case tea.MouseButtonWheelUp:
				m.win.Move(-1, len(m.events))
			case tea.MouseButtonWheelDown:
				m.win.Move(1, len(m.events))
			case tea.MouseButtonLeft:
				if row := m.win.At(msg.Y, len(m.events)); row >= 0 {
					m.win.To(row, len(m.events))
				}
			}
		}
	case tea.KeyMsg:
		k := m.keys
		switch {
		case key.Matches(msg, k.Back):
			return m, func() tea.Msg { return common.BackMsg{} }
		case key.Matches(msg, k.Up):
			m.win.Move(-1, len(m.events))
		case key.Matches(msg, k.Down):
			m.win.Move(1, len(m.events))
		case key.Matches(msg, k.PageUp):
			m.win.Move(-m.win.Size(), len(m.events))
		case key.Matches(msg, k.PageDown):
			m.win.Move(m.win.Size(), len(m.events))
		}
	}
	return m, nil
}

// apply shows a fresh load, keeping the cursor on the same event: found by
// what it is, since new events come first and old ones fall off the limit.
func (m *Model) apply(events []store.Event) {
	var cur *store.Event
	if m.loaded && m.win.Cursor > 0 && m.win.Cursor < len(m.events) {
		e := m.events[m.win.Cursor]
		cur = &e
	}
	m.events, m.loaded = events, true
	m.tokenW, m.actorW, m.detailsW = 0, 0, 0
	for i := range events {
		e := &events[i]
		m.tokenW = max(m.tokenW, table.Width(store.Printable(e.Token)))
		m.actorW = max(m.actorW, table.Width(store.Printable(e.Actor)))
		m.detailsW = max(m.detailsW, table.Width(store.Printable(e.Details)))
	}
	if cur != nil {
		for i := range events {
			if sameEvent(&events[i], cur) {
				m.win.Cursor = i
				break
			}
		}
	}
	m.win.Clamp(len(m.events))
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
	b.WriteString(s.Subtle.Render(common.Plural(len(m.events), "event", "events") + " · newest first"))
	b.WriteByte('\n')
	if len(m.events) == 0 {
		b.WriteString("\nNothing has happened yet.")
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
	from, to := m.win.Rows(len(m.events))
	for r := from; r < to; r++ {
		e := m.events[r]
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
	return b.String()
}

// ShortHelp is the help line.
func (m *Model) ShortHelp() []key.Binding {
	return []key.Binding{m.keys.Up, m.keys.Down, m.keys.Back}
}

// FullHelp is the full help.
func (m *Model) FullHelp() [][]key.Binding {
	k := m.keys
	return [][]key.Binding{{k.Up, k.Down, k.PageUp, k.PageDown}, {k.Back}}
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

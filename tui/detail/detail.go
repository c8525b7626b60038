// Package detail is the detail screen of one token: everything the table cuts
// (the whole description, the hint, access, dates, days to inactive) and the
// token's own audit events.
package detail

import (
	"errors"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/tui/common"
	"github.com/apptokens/apptokens/tui/keys"
	"github.com/apptokens/apptokens/tui/table"
)

// Store is what the detail screen needs from the store.
type Store interface {
	GetByID(id string) (store.Token, error)
	Audit(limit int) ([]store.Event, error)
	InactiveAfter() time.Duration
}

// auditLimit is how many of the newest events are searched for the token's.
const auditLimit = 1000

// Model is the detail screen of one token.
type Model struct {
	ctx   *common.Context
	store Store
	keys  keys.Detail
	id    string

	tok           store.Token
	inactiveAfter time.Duration
	events        []store.Event // the token's, newest first
	scroll        int           // first line of the body on screen

	loaded bool
	loader common.Loader
	err    error
	width  int
	height int
}

type loadedMsg struct {
	id            string
	tok           store.Token
	events        []store.Event
	inactiveAfter time.Duration
	err           error
}

type retryMsg struct{ id string }

// New opens the detail screen of the token with this ID.
func New(ctx *common.Context, st Store, id, name string) *Model {
	return &Model{ctx: ctx, store: st, keys: keys.DefaultDetail(), id: id, tok: store.Token{ID: id, Name: name}}
}

// Init loads the token and its events.
func (m *Model) Init() tea.Cmd { return m.load() }

func (m *Model) load() tea.Cmd {
	m.loader.Start()
	st, id := m.store, m.id
	return func() tea.Msg {
		msg := loadedMsg{id: id, inactiveAfter: st.InactiveAfter()}
		msg.tok, msg.err = st.GetByID(id)
		if msg.err != nil {
			return msg
		}
		evs, err := st.Audit(auditLimit)
		if err != nil {
			msg.err = err
			return msg
		}
		for _, e := range evs {
			if e.Token == msg.tok.Name {
				msg.events = append(msg.events, e)
			}
		}
		return msg
	}
}

// SetSize sets the screen's size.
func (m *Model) SetSize(width, height int) { m.width, m.height = width, height }

// Typing is false: the detail screen has no text field.
func (m *Model) Typing() bool { return false }

func back() tea.Msg { return common.BackMsg{} }

// Update handles keys, store changes and load results.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case loadedMsg:
		if msg.id != m.id {
			return m, nil
		}
		if errors.Is(msg.err, store.ErrNotFound) {
			m.loader.Done("", nil, nil)
			return m, tea.Batch(back, common.Status("Token %s was deleted", m.tok.Name))
		}
		cmd, again := m.loader.Done("the details of "+m.tok.Name, msg.err, retryMsg{id: m.id})
		if msg.err != nil {
			m.err = msg.err
			return m, cmd
		}
		m.tok, m.events, m.inactiveAfter, m.loaded, m.err = msg.tok, msg.events, msg.inactiveAfter, true, nil
		if again {
			return m, m.load()
		}
	case retryMsg:
		if msg.id == m.id && m.loader.Retry() {
			return m, m.load()
		}
	case common.ChangesMsg:
		if m.concerns(msg) && m.loader.Changed() {
			return m, m.load()
		}
	case tea.MouseMsg:
		if msg.Action == tea.MouseActionPress {
			switch msg.Button {
			case tea.MouseButtonWheelUp:
				m.scrollBy(-1)
			case tea.MouseButtonWheelDown:
				m.scrollBy(1)
			}
		}
	case tea.KeyMsg:
		k := m.keys
		switch {
		case key.Matches(msg, k.Back):
			return m, back
		case key.Matches(msg, k.Usage):
			id, name := m.id, m.tok.Name
			return m, func() tea.Msg { return common.OpenUsageMsg{ID: id, Name: name} }
		case key.Matches(msg, k.Up):
			m.scrollBy(-1)
		case key.Matches(msg, k.Down):
			m.scrollBy(1)
		case key.Matches(msg, k.PageUp):
			m.scrollBy(-max(1, m.height-2))
		case key.Matches(msg, k.PageDown):
			m.scrollBy(max(1, m.height-2))
		}
	}
	return m, nil
}

func (m *Model) concerns(msg common.ChangesMsg) bool {
	if msg.Reload {
		return true
	}
	for _, c := range msg.Changes {
		if c.TokenID == m.id || c.Kind == store.ChangeReload || c.Kind == store.ChangePolicy {
			return true
		}
	}
	return false
}

func (m *Model) scrollBy(d int) {
	m.scroll = max(0, min(m.scroll+d, len(m.lines())-max(1, m.height-1)))
}

// labelW is the width of the field labels.
const labelW = len("Days to inactive") + 2

// lines are the body's lines below the heading, before scrolling.
func (m *Model) lines() []string {
	s := m.ctx.Styles
	now := m.ctx.Now()
	var out []string
	field := func(label, value string) {
		out = append(out, s.Label.Render(table.Cell(label, labelW, false))+value)
	}
	state := m.tok.StateAt(now, m.inactiveAfter)
	st := s.Active
	if state != store.StateActive {
		st = s.Inactive
	}
	field("State", st.Render(state.Label()))
	expires := "never"
	if !m.tok.ExpiresAt.IsZero() {
		expires = common.Time(m.tok.ExpiresAt) + " UTC"
	}
	field("Expires", expires)
	if m.tok.OldValidAt(now) && state == store.StateActive {
		field("Rotating", "old secret "+store.Printable(m.tok.OldHint)+" works until "+common.Time(m.tok.OldValidUntil)+" UTC")
	}
	field("Access", m.tok.AccessLabels())
	field("Hint", store.Printable(m.tok.Hint))
	field("Created", common.Time(m.tok.CreatedAt))
	field("Last used", common.Time(m.tok.LastUsedAt))
	days := "-"
	if d, ok := m.tok.DaysToInactive(now, m.inactiveAfter); ok {
		days = common.Plural(d, "day", "days")
	}
	field("Days to inactive", days)
	// The whole description, each of its lines wrapped to the window.
	descW := max(10, m.width-labelW)
	if m.tok.Description == "" {
		field("Description", s.Subtle.Render("none"))
	}
	first := true
	for _, l := range strings.Split(m.tok.Description, "\n") {
		if m.tok.Description == "" {
			break
		}
		for _, w := range wrap(store.Printable(strings.ReplaceAll(l, "\t", "    ")), descW) {
			label := ""
			if first {
				label, first = "Description", false
			}
			field(label, w)
		}
	}
	out = append(out, "", s.Header.Render("Audit events")+s.Subtle.Render("  "+common.Plural(len(m.events), "event", "events")+" · newest first"))
	if len(m.events) == 0 {
		out = append(out, s.Subtle.Render("none in the newest "+common.Plural(auditLimit, "event", "events")))
	}
	for _, e := range m.events {
		line := common.Time(e.Time) + "  " + table.Cell(e.Action, len("deactivate"), false) + "  " + store.Printable(e.Actor)
		if e.Details != "" {
			line += "  " + store.Printable(e.Details)
		}
		for i, l := range wrap(line, max(10, m.width-2)) {
			if i > 0 {
				l = "  " + l // the rest of the event, indented
			}
			out = append(out, l)
		}
	}
	return out
}

// wrap breaks s into lines of at most w cells, between words where it can;
// nothing is dropped.
func wrap(s string, w int) []string {
	return strings.Split(ansi.Wrap(s, w, ""), "\n")
}

// View renders the heading and the lines on screen.
func (m *Model) View() string {
	s := m.ctx.Styles
	var b strings.Builder
	b.WriteString(s.Title.Render("Token " + m.tok.Name))
	switch {
	case !m.loaded && m.err != nil:
		b.WriteString("\n" + s.Error.Render("Could not load the details: "+m.err.Error()))
		return b.String()
	case !m.loaded:
		b.WriteString("\n" + s.Subtle.Render("Loading…"))
		return b.String()
	}
	lines := m.lines()
	from := min(m.scroll, max(0, len(lines)-1))
	for _, l := range lines[from:min(len(lines), from+max(1, m.height-1))] {
		b.WriteString("\n" + l)
	}
	return b.String()
}

// ShortHelp is the help line.
func (m *Model) ShortHelp() []key.Binding {
	k := m.keys
	return []key.Binding{k.Down, k.Usage, k.Back}
}

// FullHelp is the full help.
func (m *Model) FullHelp() [][]key.Binding {
	k := m.keys
	return [][]key.Binding{{k.Up, k.Down, k.PageUp, k.PageDown}, {k.Usage, k.Back}}
}

// Package usage is the usage screen of one token: which IP addresses used it and
// when, and blocking or unblocking them.
package usage

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/tui/chart"
	"github.com/apptokens/apptokens/tui/common"
	"github.com/apptokens/apptokens/tui/keys"
	"github.com/apptokens/apptokens/tui/table"
)

// Store is what the usage screen needs from the store.
type Store interface {
	GetByID(id string) (store.Token, error)
	// The screen reads and acts on its token by ID, never on another one
	// that took its name meanwhile.
	UsageID(id string) ([]store.Usage, error)
	SetBlockedID(actor store.Actor, id string, ips []string, blocked bool) (int, error)
	// SetAllowedID adds ranges to (allow) or removes them from the token's
	// allow-list.
	SetAllowedID(actor store.Actor, id string, cidrs []string, allow bool) (int, error)
	// NetworkRulesID is the token's allow-list and blocked addresses and ranges.
	NetworkRulesID(id string) (store.NetworkRules, error)
	InactiveAfter() time.Duration
	SeriesStore
}

// colIP is the title of the IP address column.
const colIP = "IP address"

// Model is the usage screen of one token.
type Model struct {
	ctx   *common.Context
	store Store
	keys  keys.Usage
	id    string

	tok           store.Token
	inactiveAfter time.Duration
	rows          []store.Usage
	rules         store.NetworkRules
	ipWidth       int // the longest IP address of rows
	win           table.Window
	selected      map[string]struct{} // IPs

	loaded bool
	loader common.Loader
	err    error
	width  int

	chart usageChart
}

type loadedMsg struct {
	id            string
	tok           store.Token
	rows          []store.Usage
	rules         store.NetworkRules
	inactiveAfter time.Duration
	err           error
}

// retryMsg retries a failed load of the token with this ID.
type retryMsg struct{ id string }

type blockedMsg struct {
	text string
	err  error
}

// New opens the usage screen of the token with this ID.
// The chart shows the last window (24 h, 7 d or 30 d) to begin with.
func New(ctx *common.Context, st Store, id, name string, window chart.Window) *Model {
	m := &Model{ctx: ctx, store: st, keys: keys.DefaultUsage(), id: id, tok: store.Token{ID: id, Name: name}, selected: map[string]struct{}{}}
	m.chart.win = window
	return m
}

// Init loads the token, its usage and its chart.
func (m *Model) Init() tea.Cmd { return tea.Batch(m.load(), m.loadSeries()) }

func (m *Model) load() tea.Cmd {
	m.loader.Start()
	st, id := m.store, m.id
	return func() tea.Msg {
		msg := loadedMsg{id: id, inactiveAfter: st.InactiveAfter()}
		msg.tok, msg.err = st.GetByID(id)
		if msg.err == nil {
			msg.rows, msg.err = st.UsageID(id)
		}
		if msg.err == nil {
			msg.rules, msg.err = st.NetworkRulesID(id)
		}
		return msg
	}
}

// SetSize sets the screen's size.
func (m *Model) SetSize(width, height int) {
	m.width = width
	m.win.Height = height - table.HeadLines - m.chartSize(height) - rulesLines
	m.win.Clamp(len(m.rows))
}

// Typing is false: the usage screen has no text field.
func (m *Model) Typing() bool { return false }

func back() tea.Msg { return common.BackMsg{} }

// update handles keys, mouse, store changes and load results (Update, in
// chart.go, gives the chart its part first).
func (m *Model) update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case loadedMsg:
		if msg.id != m.id {
			return m, nil
		}
		if errors.Is(msg.err, store.ErrNotFound) {
			m.loader.Done("", nil, nil)
			return m, tea.Batch(back, common.Status("Token %s was deleted", m.tok.Name))
		}
		cmd, again := m.loader.Done("the usage of "+m.tok.Name, msg.err, retryMsg{id: m.id})
		if msg.err != nil {
			m.err = msg.err
			return m, cmd
		}
		m.apply(msg)
		if again {
			return m, m.load()
		}
		return m, nil
	case retryMsg:
		if msg.id == m.id && m.loader.Retry() {
			return m, m.load()
		}
		return m, nil
	case common.ChangesMsg:
		if m.concerns(msg) && m.loader.Changed() {
			return m, m.load()
		}
		return m, nil
	case blockedMsg:
		if msg.err != nil {
			return m, common.Error(msg.err)
		}
		clear(m.selected)
		return m, common.Status("%s", msg.text)
	case tea.MouseMsg:
		m.mouse(msg)
	case tea.KeyMsg:
		return m, m.key(msg)
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

// apply shows a fresh load, keeping the cursor on the same IP and the selection.
func (m *Model) apply(msg loadedMsg) {
	var ip string
	if m.win.Cursor < len(m.rows) {
		ip = m.rows[m.win.Cursor].IP
	}
	m.tok, m.rows, m.rules, m.inactiveAfter, m.loaded, m.err = msg.tok, msg.rows, msg.rules, msg.inactiveAfter, true, nil
	present := make(map[string]bool, len(m.rows))
	m.ipWidth = 0
	for i, u := range m.rows {
		m.ipWidth = max(m.ipWidth, table.Width(u.IP))
		present[u.IP] = true
		if u.IP == ip {
			m.win.Cursor = i
		}
	}
	for sel := range m.selected {
		if !present[sel] {
			delete(m.selected, sel)
		}
	}
	m.win.Clamp(len(m.rows))
}

func (m *Model) key(msg tea.KeyMsg) tea.Cmd {
	k := m.keys
	switch {
	case key.Matches(msg, k.Back):
		return back
	case key.Matches(msg, k.Up):
		m.win.Move(-1, len(m.rows))
	case key.Matches(msg, k.Down):
		m.win.Move(1, len(m.rows))
	case key.Matches(msg, k.PageUp):
		m.win.Move(-m.win.Size(), len(m.rows))
	case key.Matches(msg, k.PageDown):
		m.win.Move(m.win.Size(), len(m.rows))
	case key.Matches(msg, k.Select):
		m.toggle(m.win.Cursor)
	case key.Matches(msg, k.SelectAll):
		all := len(m.selected) == len(m.rows)
		for _, u := range m.rows {
			if all {
				delete(m.selected, u.IP)
			} else {
				m.selected[u.IP] = struct{}{}
			}
		}
	case key.Matches(msg, k.Block):
		return m.setBlocked(true)
	case key.Matches(msg, k.Unblock):
		return m.setBlocked(false)
	case key.Matches(msg, k.BlockNew):
		return m.askBlockNew()
	case key.Matches(msg, k.UnblockNew):
		return m.askUnblockNew()
	case key.Matches(msg, k.Allow):
		return m.askAllow(true)
	case key.Matches(msg, k.Disallow):
		return m.askAllow(false)
	}
	return nil
}

// askBlockNew asks for an address or a range (CIDR), seen or not yet, to
// block it (DESIGN: B).
func (m *Model) askBlockNew() tea.Cmd {
	name := m.tok.Name
	block := func(ip string) tea.Cmd { return m.block([]string{ip}, true) }
	return func() tea.Msg {
		return common.PromptMsg{
			Title:       "Block an address or range for " + name,
			Lines:       []string{"Requests with " + name + " from this address, or from any address in this range, will be refused (403 ip_blocked), even before it is first seen."},
			Placeholder: "203.0.113.9 or 203.0.113.0/24",
			Check:       checkAddressOrRange,
			Submit:      block,
		}
	}
}

// askUnblockNew asks for an address or range to unblock: a blocked range has
// no row of its own to pick.
func (m *Model) askUnblockNew() tea.Cmd {
	name := m.tok.Name
	unblock := func(ip string) tea.Cmd { return m.block([]string{ip}, false) }
	lines := []string{"Requests with " + name + " from there are no longer refused for being blocked."}
	if r := m.blockedRanges(); len(r) > 0 {
		lines = append(lines, "Blocked ranges: "+strings.Join(r, ", "))
	}
	return func() tea.Msg {
		return common.PromptMsg{
			Title:       "Unblock an address or range for " + name,
			Lines:       lines,
			Placeholder: "203.0.113.9 or 203.0.113.0/24",
			Check:       checkAddressOrRange,
			Submit:      unblock,
		}
	}
}

// askAllow asks for a range to add to the token's allow-list (allow), or to
// remove from it.
func (m *Model) askAllow(allow bool) tea.Cmd {
	name := m.tok.Name
	st, actor, id := m.store, m.ctx.Actor, m.id
	submit := func(text string) tea.Cmd {
		return func() tea.Msg {
			n, err := st.SetAllowedID(actor, id, []string{text}, allow)
			if err != nil {
				return blockedMsg{err: common.Picked(err, []string{id}, []string{name})}
			}
			what := common.Plural(n, "range", "ranges")
			if allow {
				return blockedMsg{text: what + " added to the allow-list of " + name}
			}
			return blockedMsg{text: what + " removed from the allow-list of " + name}
		}
	}
	p := common.PromptMsg{
		Title:       "Allow a range for " + name,
		Lines:       []string{"Once " + name + " has an allow-list, requests from any address outside it are refused (403 ip_not_allowed)."},
		Placeholder: "10.0.0.0/8 or 2001:db8::/32",
		Check:       checkAddressOrRange,
		Submit:      submit,
	}
	if !allow {
		p.Title = "Remove an allowed range of " + name
		p.Lines = []string{"Allowed now: " + allowedText(m.rules.Allowed) + ". With no range left, every address is allowed."}
		if len(m.rules.Allowed) == 1 {
			p.Value = m.rules.Allowed[0]
		}
	}
	return func() tea.Msg { return p }
}

// checkAddressOrRange says live whether text is an IP address or a CIDR
// range; the store checks again and is the authority.
func checkAddressOrRange(text string) (string, error) {
	if strings.Contains(text, "/") {
		p, err := netip.ParsePrefix(text)
		if err != nil {
			return "", fmt.Errorf("%q is not a range: type e.g. 203.0.113.0/24 or 2001:db8::/32", text)
		}
		if p.Masked() != p {
			return "", fmt.Errorf("%q has host bits set: the range is %s", text, p.Masked())
		}
		return "", nil
	}
	if _, err := netip.ParseAddr(text); err != nil {
		return "", fmt.Errorf("%q is not an IP address or a range (CIDR)", text)
	}
	return "", nil
}

func (m *Model) toggle(row int) {
	if row < 0 || row >= len(m.rows) {
		return
	}
	ip := m.rows[row].IP
	if _, ok := m.selected[ip]; ok {
		delete(m.selected, ip)
	} else {
		m.selected[ip] = struct{}{}
	}
}

// setBlocked blocks or unblocks the selected IPs, or the one under the cursor.
func (m *Model) setBlocked(blocked bool) tea.Cmd {
	var ips []string
	for _, u := range m.rows {
		if _, ok := m.selected[u.IP]; ok {
			ips = append(ips, u.IP)
		}
	}
	if len(ips) == 0 && m.win.Cursor < len(m.rows) {
		ips = []string{m.rows[m.win.Cursor].IP}
	}
	if len(ips) == 0 {
		if blocked {
			return common.Error(errors.New("no address to block: no client has used this token yet (B blocks an address not seen yet)"))
		}
		return common.Error(errors.New("no address to unblock: no client has used this token yet"))
	}
	return m.block(ips, blocked)
}

// block blocks or unblocks ips for the token.
func (m *Model) block(ips []string, blocked bool) tea.Cmd {
	st, actor, id, name := m.store, m.ctx.Actor, m.id, m.tok.Name
	return func() tea.Msg {
		n, err := st.SetBlockedID(actor, id, ips, blocked)
		if err != nil {
			return blockedMsg{err: common.Picked(err, []string{id}, []string{name})}
		}
		verb := "unblocked"
		if blocked {
			verb = "blocked"
		}
		return blockedMsg{text: common.Plural(n, "IP address", "IP addresses") + " " + verb + " for " + name}
	}
}

func (m *Model) mouse(msg tea.MouseMsg) {
	if msg.Action != tea.MouseActionPress {
		return
	}
	switch msg.Button {
	case tea.MouseButtonWheelUp:
		m.win.Move(-1, len(m.rows))
	case tea.MouseButtonWheelDown:
		m.win.Move(1, len(m.rows))
	case tea.MouseButtonLeft:
		if row := m.win.At(msg.Y-m.chartLines()-rulesLines, len(m.rows)); row >= 0 {
			m.win.To(row, len(m.rows))
			if msg.X < table.CheckWidth {
				m.toggle(row)
			}
		}
	}
}

// View renders the heading and the rows on screen.
func (m *Model) View() string {
	s := m.ctx.Styles
	var b strings.Builder
	b.WriteString(s.Title.Render("Token " + m.tok.Name))
	if m.loaded {
		state := m.tok.StateAt(m.ctx.Now(), m.inactiveAfter)
		st := s.Active
		if state == store.StateInactive {
			st = s.Inactive
		}
		b.WriteString("  " + st.Render(state.Label()) + s.Subtle.Render(" · "+m.tok.AccessLabels()))
	}
	b.WriteByte('\n')
	if m.chart.bars > 0 {
		b.WriteString(m.chartView())
		b.WriteByte('\n')
	}
	switch {
	case !m.loaded && m.err != nil:
		b.WriteString(s.Error.Render("Could not load the usage: " + m.err.Error()))
		return b.String()
	case !m.loaded:
		b.WriteString(s.Subtle.Render("Loading…"))
		return b.String()
	}
	blocked := 0
	for _, u := range m.rows {
		if u.Blocked {
			blocked++
		}
	}
	b.WriteString(m.rulesView())
	info := common.Plural(len(m.rows), "IP address", "IP addresses") + ", " + strconv.Itoa(blocked) + " blocked"
	if n := len(m.selected); n > 0 {
		info += ", " + strconv.Itoa(n) + " selected"
	}
	b.WriteString(s.Subtle.Render(info + " · newest first"))
	b.WriteByte('\n')
	if len(m.rows) == 0 {
		b.WriteString("\nNo client has used this token yet.")
		return b.String()
	}
	// The IP column is as wide as the longest address (an IPv6 address takes up
	// to 39): it is kept first, and cut only when the window is narrower than
	// it, for an admin must see what they block.
	ipWidth := max(len(colIP), m.ipWidth)
	cols := table.Fit([]table.Column{
		{Title: colIP, Width: ipWidth, MinWidth: ipWidth},
		{Title: "First used", Width: len("2006-01-02 15:04"), Priority: 5},
		{Title: "Last used", Width: len("2006-01-02 15:04"), Priority: 2},
		{Title: "Allowed", Width: 9, Right: true, Priority: 3},
		{Title: "Denied", Width: 9, Right: true, Priority: 4},
		{Title: "Status", Width: len("Allowed"), Priority: 1},
	}, m.width-table.CheckWidth, 2)
	b.WriteString(s.Header.Render(strings.Repeat(" ", table.CheckWidth) + table.Header(cols)))
	cells := make([]string, len(cols))
	from, to := m.win.Rows(len(m.rows))
	for r := from; r < to; r++ {
		u := m.rows[r]
		for i, c := range cols {
			switch c.Title {
			case colIP:
				cells[i] = u.IP
			case "Status":
				cells[i] = statusWord(u.Blocked)
			case "Last used":
				cells[i] = common.Time(u.LastUsedAt)
			case "Allowed":
				cells[i] = strconv.FormatUint(u.Allowed, 10)
			case "Denied":
				cells[i] = strconv.FormatUint(u.Denied, 10)
			case "First used":
				cells[i] = common.Time(u.FirstUsedAt)
			}
		}
		_, sel := m.selected[u.IP]
		line := table.Prefix(r == m.win.Cursor, sel) + table.Row(cols, cells)
		b.WriteByte('\n')
		switch {
		case r == m.win.Cursor:
			b.WriteString(s.Cursor.Render(line))
		case u.Blocked:
			b.WriteString(s.Blocked.Render(line))
		case sel:
			b.WriteString(s.Selected.Render(line))
		default:
			b.WriteString(line)
		}
	}
	return b.String()
}

// ShortHelp is the help line.
func (m *Model) ShortHelp() []key.Binding {
	k := m.keys
	return []key.Binding{k.Select, k.Block, k.Unblock, k.Back, k.BlockNew, k.Allow, k.ChartWindow}
}

// FullHelp is the full help.
func (m *Model) FullHelp() [][]key.Binding {
	k := m.keys
	return [][]key.Binding{{k.Up, k.Down, k.PageUp, k.PageDown}, {k.Select, k.SelectAll}, {k.Block, k.Unblock, k.BlockNew, k.UnblockNew, k.Back}, {k.Allow, k.Disallow, k.ChartWindow}}
}

// statusWord is an address's status as the contract words it.
func statusWord(blocked bool) string {
	if blocked {
		return "Blocked"
	}
	return "Allowed"
}

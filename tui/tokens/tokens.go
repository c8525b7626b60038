// Package tokens is the tokens table: the heart of the TUI. It shows the
// process's shared token set (package tokenset) through its own view (sort,
// filter, selection, window) and renders only the rows on screen.
package tokens

import (
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/tui/common"
	"github.com/apptokens/apptokens/tui/keys"
	"github.com/apptokens/apptokens/tui/table"
	"github.com/apptokens/apptokens/tui/tokenset"
)

// Store is what the tokens table needs from the store: its actions, on the
// tokens it picked, by ID (a token deleted and re-created under the same name
// between a question and its answer is another token, never touched). The
// tokens themselves come from the process's shared token set (common.ChangesMsg).
type Store interface {
	SetActiveIDs(actor store.Actor, ids []string, active bool) (int, error)
	DeleteIDs(actor store.Actor, ids []string) (int, error)
	// MaxBatch is the most tokens one action takes on this store's engine.
	MaxBatch() int
	// RotateID gives the token a new secret; the old one works for grace.
	RotateID(actor store.Actor, id string, grace time.Duration) (store.Created, error)
}

// Model is the tokens screen.
type Model struct {
	ctx   *common.Context
	store Store
	keys  keys.Tokens
	fkeys keys.FilterInput
	width int

	idx      index
	win      table.Window // rows of idx.view
	selected map[string]struct{}

	filter    textinput.Model
	filtering bool

	inactiveAfter time.Duration
	deleteAfter   time.Duration
	total, active int
	nameWidth     int
	hintWidth     int
	// shown are the titles of the columns chosen in config.toml, in order
	// (nil: all).
	shown []string
	// focusID is a token to put the cursor on when it arrives (one just
	// created here), or "".
	focusID string
	// staleAt is the first moment an active token passes the inactivity
	// limit: the heading's counts are recounted then (zero: never).
	staleAt time.Time

	loaded bool
	err    error
}

// New returns the tokens screen. It shows the tokens when the root hands it
// the shared token set (common.ChangesMsg.Tokens).
func New(ctx *common.Context, st Store) *Model {
	f := textinput.New()
	f.Prompt = "/"
	f.Placeholder = "name or description"
	// No CharLimit: the text input would cut what is typed silently.
	f.CharLimit = 0
	f.Cursor.SetMode(cursor.CursorStatic)
	ctx.Styles.TextInput(&f)
	return &Model{
		ctx:      ctx,
		store:    st,
		keys:     keys.DefaultTokens(),
		fkeys:    keys.DefaultFilterInput(),
		selected: map[string]struct{}{},
		filter:   f,
	}
}

// actedMsg is the result of an action on tokens (activate, deactivate, delete).
type actedMsg struct {
	text string
	err  error
	ids  []string // tokens acted on, to unselect
}

// Init does nothing: the root's watch of the shared token set delivers it.
func (m *Model) Init() tea.Cmd { return nil }

// SetSize sets the screen's size.
func (m *Model) SetSize(width, height int) {
	m.width = width
	m.filter.Width = max(10, min(40, width-40))
	m.win.Height = height - table.HeadLines
	m.win.Clamp(len(m.idx.view))
}

// Typing reports whether the filter field has focus.
func (m *Model) Typing() bool { return m.filtering }

// Update handles keys, mouse and new token sets.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case common.ChangesMsg:
		return m, m.apply(msg)
	case actedMsg:
		if msg.err != nil {
			return m, common.Error(msg.err)
		}
		for _, id := range msg.ids {
			delete(m.selected, id)
		}
		return m, common.Status("%s", msg.text)
	case tea.MouseMsg:
		return m, m.mouse(msg)
	case tea.KeyMsg:
		if m.filtering {
			return m, m.filterKey(msg)
		}
		return m, m.key(msg)
	}
	return m, nil
}

// apply shows a newer token set, and says when the shared load failed (the
// hub retries it by itself, with backoff).
func (m *Model) apply(msg common.ChangesMsg) tea.Cmd {
	var cmd tea.Cmd
	if msg.TokensErr != nil {
		if !m.loaded {
			m.err = msg.TokensErr
		}
		cmd = common.Error(fmt.Errorf("could not load the tokens: %w; retrying in %s", msg.TokensErr, msg.TokensRetryIn))
	}
	if msg.Tokens == nil || msg.Tokens == m.idx.set {
		return cmd
	}
	m.err = nil
	m.inactiveAfter = msg.Tokens.InactiveAfter()
	m.deleteAfter = msg.Tokens.DeleteAfter()
	m.keepRow(func() { m.idx.setSet(msg.Tokens) })
	m.loaded = true
	m.recount()
	m.focusPending()
	return cmd
}

// keepRow runs a change of the rows, keeping the cursor on its token and that
// token on the same line of the screen.
func (m *Model) keepRow(change func()) {
	var keepID string
	var keepPos int32
	var keepEpoch uint64
	if m.win.Cursor < len(m.idx.view) {
		keepID = m.idx.rowID(m.win.Cursor)
		keepPos, keepEpoch = m.idx.at(m.win.Cursor)
	}
	screenRow := m.win.Cursor - m.win.Offset
	change()
	if keepID != "" {
		if r := m.idx.find(keepID, keepPos, keepEpoch); r >= 0 {
			m.win.Cursor = r
			m.win.Offset = max(0, r-screenRow)
		}
	}
	m.win.Clamp(len(m.idx.view))
}

// recount refreshes the heading's counts, drops selections of tokens that are
// gone and measures the name and hint columns. The counts and widths are the
// shared set's, computed once for every session.
func (m *Model) recount() {
	now := m.ctx.Now()
	set := m.idx.set
	m.total = set.Live()
	m.active, m.staleAt = set.ActiveAt(now, m.inactiveAfter)
	m.nameWidth = max(len("Name"), set.NameWidth())
	m.hintWidth = set.HintWidth()
	if len(m.selected) == 0 {
		return
	}
	kept := 0
	for p := range set.Len() {
		if _, ok := m.selected[set.ID(p)]; ok {
			kept++
		}
	}
	if kept < len(m.selected) {
		still := make(map[string]struct{}, kept)
		for p := range set.Len() {
			if id := set.ID(p); id != "" {
				if _, ok := m.selected[id]; ok {
					still[id] = struct{}{}
				}
			}
		}
		m.selected = still
	}
}

// Focus puts the cursor on the token with this ID, now or when it arrives
// (a token just created reaches the table through the change feed).
func (m *Model) Focus(id string) {
	m.focusID = id
	m.focusPending()
}

func (m *Model) focusPending() {
	if m.focusID == "" || m.idx.set == nil {
		return
	}
	p := m.idx.position(m.focusID)
	if p < 0 {
		return
	}
	epoch := m.idx.set.Epoch()
	if r := m.idx.find(m.focusID, p, epoch); r >= 0 {
		m.win.To(r, len(m.idx.view))
	} else if m.idx.query != "" {
		// Filtered out: clear the filter rather than hide the new token.
		m.setQuery("")
		m.win.To(max(0, m.idx.find(m.focusID, p, epoch)), len(m.idx.view))
	}
	m.focusID = ""
}

// counts are the heading's numbers at now: a token that passed the
// inactivity limit since the last count is counted inactive.
func (m *Model) counts(now time.Time) (total, active int) {
	if !m.staleAt.IsZero() && !now.Before(m.staleAt) {
		m.recount()
	}
	return m.total, m.active
}

func (m *Model) key(msg tea.KeyMsg) tea.Cmd {
	k := m.keys
	switch {
	case key.Matches(msg, k.Up):
		m.win.Move(-1, len(m.idx.view))
	case key.Matches(msg, k.Down):
		m.win.Move(1, len(m.idx.view))
	case key.Matches(msg, k.PageUp):
		m.win.Move(-m.win.Size(), len(m.idx.view))
	case key.Matches(msg, k.PageDown):
		m.win.Move(m.win.Size(), len(m.idx.view))
	case key.Matches(msg, k.Home):
		m.win.To(0, len(m.idx.view))
	case key.Matches(msg, k.End):
		m.win.To(len(m.idx.view)-1, len(m.idx.view))
	case key.Matches(msg, k.Select):
		m.toggle(m.win.Cursor)
	case key.Matches(msg, k.SelectAll):
		m.toggleAll()
	case key.Matches(msg, k.Create):
		return func() tea.Msg { return common.OpenFormMsg{} }
	case key.Matches(msg, k.Edit):
		if t := m.current(); t != nil {
			tok := *t
			return func() tea.Msg { return common.OpenFormMsg{Edit: &tok} }
		}
	case key.Matches(msg, k.Open):
		return m.open(m.win.Cursor)
	case key.Matches(msg, k.Details):
		if t := m.current(); t != nil {
			id, name := t.ID, t.Name
			return func() tea.Msg { return common.OpenDetailMsg{ID: id, Name: name} }
		}
	case key.Matches(msg, k.Activate):
		return m.activate()
	case key.Matches(msg, k.Deactivate):
		return m.askDeactivate()
	case key.Matches(msg, k.Delete):
		return m.askDelete()
	case key.Matches(msg, k.Rotate):
		return m.askRotate()
	case key.Matches(msg, k.Filter):
		m.filtering = true
		return m.filter.Focus()
	case key.Matches(msg, k.ClearFilter):
		if m.idx.query != "" {
			m.setQuery("")
		}
	case key.Matches(msg, k.Sort):
		m.setSort((m.idx.sort + 1) % numSortKeys)
		return common.Status("Sorted by %s", m.idx.sort)
	}
	return nil
}

func (m *Model) filterKey(msg tea.KeyMsg) tea.Cmd {
	return common.FilterKey(msg, m.fkeys, &m.filter, &m.filtering, m.setQuery)
}

// setQuery filters, keeping the cursor on its token when it still shows.
func (m *Model) setQuery(q string) {
	m.filter.SetValue(q)
	m.keepCursor(func() { m.idx.setQuery(q) })
}

func (m *Model) setSort(k SortKey) { m.keepCursor(func() { m.idx.setSort(k) }) }

func (m *Model) keepCursor(change func()) {
	var id string
	var pos int32
	var epoch uint64
	if m.win.Cursor < len(m.idx.view) {
		id = m.idx.rowID(m.win.Cursor)
		pos, epoch = m.idx.at(m.win.Cursor)
	}
	change()
	m.win.Cursor = 0
	if id != "" {
		if r := m.idx.find(id, pos, epoch); r >= 0 {
			m.win.Cursor = r
		}
	}
	m.win.Clamp(len(m.idx.view))
}

// NameTaken reports whether a token the screen holds has name, case ignored
// (DESIGN: Feed-1 and feed-1 clash). The form shows a clash live with it.
func (m *Model) NameTaken(name string) bool {
	set := m.idx.set
	if set == nil {
		return false
	}
	for p := range set.Len() {
		if strings.EqualFold(set.Name(p), name) {
			return true
		}
	}
	return false
}

func (m *Model) current() *store.Token {
	if m.win.Cursor >= len(m.idx.view) {
		return nil
	}
	return m.idx.row(m.win.Cursor)
}

func (m *Model) toggle(row int) {
	if row >= len(m.idx.view) {
		return
	}
	id := m.idx.rowID(row)
	if _, ok := m.selected[id]; ok {
		delete(m.selected, id)
	} else {
		m.selected[id] = struct{}{}
	}
}

// toggleAll selects every shown token, or none when all are selected already.
func (m *Model) toggleAll() {
	all := true
	for r := range m.idx.view {
		if _, ok := m.selected[m.idx.rowID(r)]; !ok {
			all = false
			break
		}
	}
	for r := range m.idx.view {
		id := m.idx.rowID(r)
		if all {
			delete(m.selected, id)
		} else {
			m.selected[id] = struct{}{}
		}
	}
}

// targets is the selection (in table order), or the row under the cursor when nothing is selected.
func (m *Model) targets() (names, ids []string) {
	if len(m.selected) == 0 {
		if t := m.current(); t != nil {
			return []string{t.Name}, []string{t.ID}
		}
		return nil, nil
	}
	for _, p := range m.idx.order() {
		id := m.idx.set.ID(int(p))
		if _, ok := m.selected[id]; ok {
			names = append(names, m.idx.set.Name(int(p)))
			ids = append(ids, id)
		}
	}
	return names, ids
}

func (m *Model) open(row int) tea.Cmd {
	if row >= len(m.idx.view) {
		return nil
	}
	t := m.idx.row(row)
	id, name := t.ID, t.Name
	return func() tea.Msg { return common.OpenUsageMsg{ID: id, Name: name} }
}

func (m *Model) setActive(names, ids []string, active bool) tea.Cmd {
	st, actor := m.store, m.ctx.Actor
	return func() tea.Msg {
		n, err := st.SetActiveIDs(actor, ids, active)
		if err != nil {
			return actedMsg{err: common.Picked(err, ids, names)}
		}
		verb := "deactivated"
		if active {
			verb = "activated"
		}
		text := common.Plural(n, "token", "tokens") + " " + verb
		if n < len(names) {
			text += " (" + common.Plural(len(names)-n, "was", "were") + " already " + string(stateWord(active)) + ")"
		}
		return actedMsg{text: text, ids: ids}
	}
}

func (m *Model) activate() tea.Cmd {
	names, ids := m.targets()
	if len(names) == 0 {
		return nil
	}
	if cmd := m.tooMany(names); cmd != nil {
		return cmd
	}
	return m.setActive(names, ids, true)
}

func (m *Model) askDeactivate() tea.Cmd {
	names, ids := m.targets()
	if len(names) == 0 {
		return nil
	}
	if cmd := m.tooMany(names); cmd != nil {
		return cmd
	}
	what := common.Plural(len(names), "token", "tokens")
	lines := []string{
		"Deactivate " + what + "?" + nameList(names),
		"Clients using " + itOrThem(len(names)) +
			" will be refused (401 invalid_token) until activated again.",
	}
	yes := m.setActive(names, ids, false)
	return func() tea.Msg {
		return common.ConfirmMsg{Title: "Deactivate " + what, Lines: lines, Yes: yes}
	}
}

// stateWord is the state activating (true) or deactivating (false) leads to.
func stateWord(active bool) store.State {
	if active {
		return store.StateActive
	}
	return store.StateInactive
}

// itOrThem refers to n tokens.
func itOrThem(n int) string {
	if n == 1 {
		return "it"
	}
	return "them"
}

// tooMany refuses, before asking anything, a selection larger than the store
// changes in one transaction (fewer on etcd than on Badger).
func (m *Model) tooMany(names []string) tea.Cmd {
	most := m.store.MaxBatch()
	if len(names) <= most {
		return nil
	}
	err := fmt.Errorf("at most %d tokens at once (%d selected): narrow the selection, e.g. with / filter", most, len(names))
	return func() tea.Msg { return actedMsg{err: err} }
}

// deleteWord is what to type to confirm deleting several tokens at once.
const deleteWord = "delete"

func (m *Model) askDelete() tea.Cmd {
	names, ids := m.targets()
	if len(names) == 0 {
		return nil
	}
	if cmd := m.tooMany(names); cmd != nil {
		return cmd
	}
	what := common.Plural(len(names), "token", "tokens")
	require := deleteWord
	if len(names) == 1 {
		require = names[0]
	}
	lines := []string{
		"Delete " + what + "?" + nameList(names),
		"Clients using " + itOrThem(len(names)) +
			" will be refused, and the usage history is deleted too. This cannot be undone.",
	}
	st, actor := m.store, m.ctx.Actor
	yes := func() tea.Msg {
		n, err := st.DeleteIDs(actor, ids)
		if err != nil {
			return actedMsg{err: common.Picked(err, ids, names)}
		}
		return actedMsg{text: common.Plural(n, "token", "tokens") + " deleted", ids: ids}
	}
	return func() tea.Msg {
		return common.ConfirmMsg{Title: "Delete " + what, Lines: lines, Require: require, Yes: yes}
	}
}

// nameList names up to three tokens for a confirmation.
func nameList(names []string) string {
	const show = 3
	s := " ("
	for i, n := range names {
		if i == show {
			return s + ", …)"
		}
		if i > 0 {
			s += ", "
		}
		s += n
	}
	return s + ")"
}

func (m *Model) mouse(msg tea.MouseMsg) tea.Cmd {
	if msg.Action != tea.MouseActionPress {
		return nil
	}
	switch msg.Button {
	case tea.MouseButtonWheelUp:
		m.win.Move(-1, len(m.idx.view))
		return nil
	case tea.MouseButtonWheelDown:
		m.win.Move(1, len(m.idx.view))
		return nil
	case tea.MouseButtonLeft:
	default:
		return nil
	}
	row := m.win.At(msg.Y, len(m.idx.view))
	if row < 0 {
		return nil
	}
	m.win.To(row, len(m.idx.view))
	switch {
	case msg.X < table.CheckWidth:
		m.toggle(row)
	default:
		if start, end := m.nameColumn(); msg.X >= table.CheckWidth+start && msg.X < table.CheckWidth+end {
			return m.open(row)
		}
	}
	return nil
}

// ShortHelp is the help line.
func (m *Model) ShortHelp() []key.Binding {
	if m.filtering {
		return []key.Binding{m.fkeys.Apply, m.fkeys.Cancel}
	}
	k := m.keys
	return []key.Binding{k.Select, k.Create, k.Activate, k.Deactivate, k.Edit, k.Delete, k.Rotate, k.Open, k.Details, k.Filter, k.Sort}
}

// FullHelp is the full help.
func (m *Model) FullHelp() [][]key.Binding {
	k := m.keys
	return [][]key.Binding{
		{k.Up, k.Down, k.PageUp, k.PageDown, k.Home, k.End},
		{k.Select, k.SelectAll, k.Open, k.Details, k.Filter, k.ClearFilter, k.Sort},
		{k.Create, k.Edit, k.Activate, k.Deactivate, k.Delete, k.Rotate},
	}
}

// SharedSet is the token set the screen shows: the process's shared one.
func (m *Model) SharedSet() *tokenset.Set { return m.idx.set }

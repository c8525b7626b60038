// Package tokens is the tokens table: the heart of the TUI. It keeps its own
// sorted and filtered index of every token and renders only the rows on screen.
package tokens

import (
	"errors"
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
)

// Store is what the tokens table needs from the store.
type Store interface {
	List() ([]store.Token, error)
	GetByID(id string) (store.Token, error)
	InactiveAfter() time.Duration
	SetActive(actor store.Actor, names []string, active bool) (int, error)
	Delete(actor store.Actor, names []string) (int, error)
}

// patchLimit is how many changed tokens are fetched one by one; past it the
// whole list is reloaded. The gate's usage (store.ChangeUsed) never counts: it
// carries the new last-used time and is applied without reading the store.
const patchLimit = 256

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
	total, active int
	nameWidth     int
	hintWidth     int
	// focusID is a token to put the cursor on when it arrives (one just
	// created here), or "".
	focusID string

	loaded  bool
	loading bool // a fetch is in flight; changes wait in pending
	pending []store.Change
	reload  bool
	// retrying: a fetch failed and a retry is due after backoff; changes
	// wait for it (it reloads everything).
	retrying bool
	backoff  common.Backoff
	// staleAt is the first moment an active token passes the inactivity
	// limit: the heading's counts are recounted then (zero: never).
	staleAt time.Time
	// usedSince holds the last-used times the gate recorded while a fetch was
	// in flight: that fetch may have read the tokens before them, so they are
	// applied again over its result.
	usedSince map[string]time.Time
	err       error
}

// New returns the tokens screen; Init loads the tokens.
func New(ctx *common.Context, st Store) *Model {
	f := textinput.New()
	f.Prompt = "/"
	f.Placeholder = "name or description"
	// No CharLimit: the text input would cut what is typed silently.
	f.CharLimit = 0
	f.Cursor.SetMode(cursor.CursorStatic)
	ctx.Styles.TextInput(&f)
	return &Model{
		ctx:       ctx,
		store:     st,
		keys:      keys.DefaultTokens(),
		fkeys:     keys.DefaultFilterInput(),
		selected:  map[string]struct{}{},
		filter:    f,
		usedSince: map[string]time.Time{},
	}
}

// loadedMsg is the result of a fetch: a full list or a patch.
type loadedMsg struct {
	full          bool
	toks          []store.Token
	upserts       []store.Token
	deleted       []string
	inactiveAfter time.Duration
	err           error
}

// retryMsg retries a failed fetch.
type retryMsg struct{}

// actedMsg is the result of an action on tokens (activate, deactivate, delete).
type actedMsg struct {
	text string
	err  error
	ids  []string // tokens acted on, to unselect
}

// Init loads every token.
func (m *Model) Init() tea.Cmd { return m.fetch(nil, true) }

// fetch loads what changed (or everything) off the UI goroutine. Only one fetch
// is in flight at a time, so results are applied in the order they were read.
func (m *Model) fetch(changes []store.Change, reload bool) tea.Cmd {
	m.loading = true
	// The fetch reads after every change delivered so far.
	clear(m.usedSince)
	st := m.store
	return func() tea.Msg {
		msg := loadedMsg{inactiveAfter: st.InactiveAfter()}
		ids := map[string]bool{}
		for _, c := range changes {
			if c.Kind == store.ChangeToken || c.Kind == store.ChangeDeleted {
				ids[c.TokenID] = true
			}
		}
		if reload || len(ids) > patchLimit {
			msg.full = true
			msg.toks, msg.err = st.List()
			return msg
		}
		for id := range ids {
			t, err := st.GetByID(id)
			switch {
			case errors.Is(err, store.ErrNotFound):
				msg.deleted = append(msg.deleted, id)
			case err != nil:
				msg.err = err
				return msg
			default:
				msg.upserts = append(msg.upserts, t)
			}
		}
		return msg
	}
}

// SetSize sets the screen's size.
func (m *Model) SetSize(width, height int) {
	m.width = width
	m.filter.Width = max(10, min(40, width-40))
	m.win.Height = height - table.HeadLines
	m.win.Clamp(len(m.idx.view))
}

// Typing reports whether the filter field has focus.
func (m *Model) Typing() bool { return m.filtering }

// Update handles keys, mouse, store changes and fetch results.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case loadedMsg:
		return m, m.applyLoaded(msg)
	case retryMsg:
		m.retrying = false
		if m.loading {
			return m, nil
		}
		return m, m.flush()
	case common.ChangesMsg:
		m.used(msg.Changes)
		for _, c := range msg.Changes {
			switch c.Kind {
			case store.ChangeToken, store.ChangeDeleted, store.ChangePolicy:
				m.pending = append(m.pending, c)
			case store.ChangeReload:
				m.reload = true
			}
			// ChangeUsed is applied above; ChangeUsage (blocks) is not shown here.
		}
		m.reload = m.reload || msg.Reload
		if m.reload {
			// One full reload covers every change: only it waits.
			m.pending = nil
		}
		if m.loading || m.retrying {
			return m, nil
		}
		return m, m.flush()
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

func (m *Model) flush() tea.Cmd {
	if len(m.pending) == 0 && !m.reload {
		return nil
	}
	cmd := m.fetch(m.pending, m.reload)
	m.pending, m.reload = nil, false
	return cmd
}

// used applies the gate's usage: each change carries its token's new last-used
// time, so the store is not read, however many tokens were used.
// Its cost grows with the number of changes, not of tokens (but for a merge
// of the order when the table is sorted by last use).
func (m *Model) used(changes []store.Change) {
	now := m.ctx.Now()
	var moved []int
	for _, c := range changes {
		if c.Kind != store.ChangeUsed {
			continue
		}
		if m.loading {
			m.usedSince[c.TokenID] = c.LastUsedAt
		}
		i, ok := m.idx.byID[c.TokenID]
		if !ok {
			continue // not loaded yet: the fetch that loads it reads it after this use
		}
		t := &m.idx.all[i]
		was := t.StateAt(now, m.inactiveAfter) == store.StateActive
		if !m.idx.touch(i, c.LastUsedAt) {
			continue
		}
		// A use only moves the inactivity clock forward: it can make a token
		// active again, never inactive.
		if !was && t.StateAt(now, m.inactiveAfter) == store.StateActive {
			m.active++
			m.watchExpiry(t)
		}
		moved = append(moved, i)
	}
	if len(moved) > 0 && m.idx.sort == SortLastUsed {
		m.keepRow(func() { m.idx.reposition(moved) })
	}
}

func (m *Model) applyLoaded(msg loadedMsg) tea.Cmd {
	m.loading = false
	if msg.err != nil {
		// The changes this fetch had taken are lost with it: a full reload,
		// after a pause, covers them and any that come meanwhile.
		m.err = msg.err
		m.pending, m.reload, m.retrying = nil, true, true
		return common.RetryLater(&m.backoff, "the tokens", msg.err, retryMsg{})
	}
	m.err = nil
	m.backoff.Reset()
	m.inactiveAfter = msg.inactiveAfter
	m.keepRow(func() {
		if msg.full {
			m.idx.reset(msg.toks)
		} else {
			m.idx.patch(msg.upserts, msg.deleted)
		}
		for id, at := range m.usedSince {
			if i, ok := m.idx.byID[id]; ok {
				m.idx.touch(i, at)
			}
		}
		if len(m.usedSince) > 0 && m.idx.sort == SortLastUsed {
			m.idx.resort()
		}
		clear(m.usedSince)
	})
	m.loaded = true
	m.recount()
	m.focusPending()
	return m.flush()
}

// keepRow runs a change of the rows, keeping the cursor on its token and that
// token on the same line of the screen.
func (m *Model) keepRow(change func()) {
	var keepID string
	if m.win.Cursor < len(m.idx.view) {
		keepID = m.idx.row(m.win.Cursor).ID
	}
	screenRow := m.win.Cursor - m.win.Offset
	change()
	if keepID != "" {
		if r := m.idx.find(keepID); r >= 0 {
			m.win.Cursor = r
			m.win.Offset = max(0, r-screenRow)
		}
	}
	m.win.Clamp(len(m.idx.view))
}

// recount refreshes the heading's counts, drops selections of tokens that are
// gone and measures the name column.
func (m *Model) recount() {
	now := m.ctx.Now()
	m.total, m.active = len(m.idx.all), 0
	m.staleAt = time.Time{}
	m.nameWidth, m.hintWidth = len("Name"), 0
	for i := range m.idx.all {
		t := &m.idx.all[i]
		if t.StateAt(now, m.inactiveAfter) == store.StateActive {
			m.active++
			m.watchExpiry(t)
		}
		m.nameWidth = max(m.nameWidth, len(t.Name))
		m.hintWidth = max(m.hintWidth, table.Width(t.Hint))
	}
	for id := range m.selected {
		if _, ok := m.idx.byID[id]; !ok {
			delete(m.selected, id)
		}
	}
}

// Focus puts the cursor on the token with this ID, now or when it arrives
// (a token just created reaches the table through the change feed).
func (m *Model) Focus(id string) {
	m.focusID = id
	m.focusPending()
}

func (m *Model) focusPending() {
	if m.focusID == "" {
		return
	}
	if _, ok := m.idx.byID[m.focusID]; !ok {
		return
	}
	if r := m.idx.find(m.focusID); r >= 0 {
		m.win.To(r, len(m.idx.view))
	} else if m.idx.query != "" {
		// Filtered out: clear the filter rather than hide the new token.
		m.setQuery("")
		m.win.To(max(0, m.idx.find(m.focusID)), len(m.idx.view))
	}
	m.focusID = ""
}

// watchExpiry keeps staleAt at the earliest moment an active token passes the
// inactivity limit.
func (m *Model) watchExpiry(t *store.Token) {
	if m.inactiveAfter <= 0 {
		return
	}
	if at := t.Since().Add(m.inactiveAfter); m.staleAt.IsZero() || at.Before(m.staleAt) {
		m.staleAt = at
	}
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
	switch {
	case key.Matches(msg, m.fkeys.Cancel):
		m.filtering = false
		m.filter.Blur()
		m.setQuery("")
		return nil
	case key.Matches(msg, m.fkeys.Apply):
		m.filtering = false
		m.filter.Blur()
		return nil
	}
	var cmd tea.Cmd
	m.filter, cmd = m.filter.Update(msg)
	if m.filter.Value() != m.idx.query {
		m.setQuery(m.filter.Value())
	}
	return cmd
}

// setQuery filters, keeping the cursor on its token when it still shows.
func (m *Model) setQuery(q string) {
	m.filter.SetValue(q)
	m.keepCursor(func() { m.idx.setQuery(q) })
}

func (m *Model) setSort(k SortKey) { m.keepCursor(func() { m.idx.setSort(k) }) }

func (m *Model) keepCursor(change func()) {
	var id string
	if m.win.Cursor < len(m.idx.view) {
		id = m.idx.row(m.win.Cursor).ID
	}
	change()
	m.win.Cursor = 0
	if id != "" {
		if r := m.idx.find(id); r >= 0 {
			m.win.Cursor = r
		}
	}
	m.win.Clamp(len(m.idx.view))
}

// NameTaken reports whether a token the screen holds has name, case ignored
// (DESIGN: Feed-1 and feed-1 clash). The form shows a clash live with it.
func (m *Model) NameTaken(name string) bool {
	for i := range m.idx.all {
		if strings.EqualFold(m.idx.all[i].Name, name) {
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
	id := m.idx.row(row).ID
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
		if _, ok := m.selected[m.idx.row(r).ID]; !ok {
			all = false
			break
		}
	}
	for r := range m.idx.view {
		id := m.idx.row(r).ID
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
	for _, p := range m.idx.order {
		t := &m.idx.all[p]
		if _, ok := m.selected[t.ID]; ok {
			names = append(names, t.Name)
			ids = append(ids, t.ID)
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
		n, err := st.SetActive(actor, names, active)
		if err != nil {
			return actedMsg{err: err}
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
	if cmd := tooMany(names); cmd != nil {
		return cmd
	}
	return m.setActive(names, ids, true)
}

func (m *Model) askDeactivate() tea.Cmd {
	names, ids := m.targets()
	if len(names) == 0 {
		return nil
	}
	if cmd := tooMany(names); cmd != nil {
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
// changes in one transaction.
func tooMany(names []string) tea.Cmd {
	if len(names) <= store.MaxBatch {
		return nil
	}
	err := fmt.Errorf("at most %d tokens at once (%d selected): narrow the selection, e.g. with / filter", store.MaxBatch, len(names))
	return func() tea.Msg { return actedMsg{err: err} }
}

// deleteWord is what to type to confirm deleting several tokens at once.
const deleteWord = "delete"

func (m *Model) askDelete() tea.Cmd {
	names, ids := m.targets()
	if len(names) == 0 {
		return nil
	}
	if cmd := tooMany(names); cmd != nil {
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
		n, err := st.Delete(actor, names)
		if err != nil {
			return actedMsg{err: err}
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
	case msg.X < table.CheckWidth+m.nameColumnWidth():
		return m.open(row)
	}
	return nil
}

// ShortHelp is the help line.
func (m *Model) ShortHelp() []key.Binding {
	if m.filtering {
		return []key.Binding{m.fkeys.Apply, m.fkeys.Cancel}
	}
	k := m.keys
	return []key.Binding{k.Select, k.Create, k.Activate, k.Deactivate, k.Edit, k.Delete, k.Open, k.Details, k.Filter, k.Sort}
}

// FullHelp is the full help.
func (m *Model) FullHelp() [][]key.Binding {
	k := m.keys
	return [][]key.Binding{
		{k.Up, k.Down, k.PageUp, k.PageDown, k.Home, k.End},
		{k.Select, k.SelectAll, k.Open, k.Details, k.Filter, k.ClearFilter, k.Sort},
		{k.Create, k.Edit, k.Activate, k.Deactivate, k.Delete},
	}
}

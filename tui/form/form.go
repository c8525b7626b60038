// Package form is the create and edit form of a token. Every rule is checked
// live beside its field; on submit the store checks again and is the authority
// (a taken name comes back as a *store.FieldError and is shown on its field).
package form

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textarea"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/tui/common"
	"github.com/apptokens/apptokens/tui/keys"
)

// Store is what the form needs from the store.
type Store interface {
	Create(actor store.Actor, in store.NewToken) (store.Created, error)
	// EditID edits the token being edited by its ID, never another one that
	// took its name meanwhile.
	EditID(actor store.Actor, id string, e store.Edit) (store.Token, error)
}

// CreatedMsg is sent when a token was created: the root shows its secret once.
type CreatedMsg struct{ Created store.Created }

// tabMark stands for a tab in the description field. The text area turns tabs
// into four spaces, but descriptions may hold tabs (DESIGN): the field shows each
// tab (stored or pasted) as this mark, and the form turns every mark back into
// a tab, so a typed mark is a tab too. A description that already holds the
// mark itself is edited without marks (see Model.markTabs), so that it is kept.
const tabMark = '⇥'

// descFieldCells bounds what the description field holds. The text area counts
// cells (a wide character is two), not characters, so its limit is not the
// rule: the rule (store.MaxDescriptionLen characters) is checked live and on
// submit. This bound only keeps a runaway paste from growing without end, and
// the form enforces it before the text area can: input that would pass it is
// refused whole, with a word, never cut (the text area would cut it silently).
const descFieldCells = 4 * store.MaxDescriptionLen

// Focusable parts of the form, in tab order.
const (
	fieldName = iota
	fieldDesc
	fieldExpires
	fieldSD
	fieldTPF
	buttonOK
	buttonCancel
	numFields
)

// Model is the form.
type Model struct {
	ctx   *common.Context
	store Store
	keys  keys.Form

	editing *store.Token // nil: create
	// taken reports whether a token the session holds has a name (case
	// ignored): a clash shows live; the store stays the authority on submit.
	taken func(name string) bool
	name  textinput.Model
	desc  textarea.Model
	// expires is the Expires field: empty (never), a span (30d) or a date,
	// read with store.ParseExpires.
	expires textinput.Model
	// expiresField is what the Expires field showed when the form opened: an
	// expiry the admin has not touched is not sent.
	expiresField string
	// markTabs: tabs show as tabMark in the description field (see tabMark).
	markTabs bool
	// descField is what the description field showed when the form opened: a
	// description the admin has not touched is not sent.
	descField string
	sd, tpf   bool
	focus     int

	touched   [numFields]bool
	submitted bool
	// storeErrs are the store's refusals by field, shown until that field changes.
	storeErrs map[string]string
	formErr   string
	busy      bool
	// gone: the token being edited was deleted (by another admin): nothing
	// can be saved.
	gone bool

	initial string // snapshot of the values, to know whether esc must ask
	width   int
	height  int
}

type submittedMsg struct {
	created store.Created
	edited  string
	err     error
}

// New returns the form: edit nil creates a token, else edits that one. taken
// reports whether a name is held by a token the session knows (case ignored);
// nil checks nothing live.
func New(ctx *common.Context, st Store, edit *store.Token, taken func(name string) bool) *Model {
	m := &Model{ctx: ctx, store: st, keys: keys.DefaultForm(), editing: edit, taken: taken, storeErrs: map[string]string{}}
	m.name = textinput.New()
	// No CharLimit: the text input would cut what is typed or pasted silently.
	// A name over store.MaxNameLen is shown with a live error and refused.
	m.name.CharLimit = 0
	m.name.Prompt = ""
	// A static cursor: no blink ticks over SSH, and the screen only changes on input.
	m.name.Cursor.SetMode(cursor.CursorStatic)
	m.desc = textarea.New()
	m.desc.CharLimit = descFieldCells
	// Every cell may be a newline: the field must take as many lines, so that
	// only descFieldCells (checked by the form first) bounds it.
	m.desc.MaxHeight = descFieldCells + 1
	m.desc.ShowLineNumbers = false
	m.desc.Prompt = "│ "
	m.desc.Placeholder = "what uses this token (optional)"
	m.desc.Cursor.SetMode(cursor.CursorStatic)
	m.desc.KeyMap.InsertNewline.SetKeys("enter")
	m.expires = textinput.New()
	m.expires.CharLimit = 0 // never cut what is typed
	m.expires.Prompt = ""
	m.expires.Placeholder = "never"
	m.expires.Cursor.SetMode(cursor.CursorStatic)
	ctx.Styles.TextInput(&m.expires)
	ctx.Styles.TextInput(&m.name)
	ctx.Styles.TextArea(&m.desc)
	m.markTabs = edit == nil || !strings.ContainsRune(edit.Description, tabMark)
	if edit != nil {
		m.name.SetValue(edit.Name)
		m.desc.SetValue(m.toField(edit.Description))
		m.sd = edit.HasAccess(store.AccessSecurityDirector)
		m.tpf = edit.HasAccess(store.AccessThirdPartyFeeds)
		if !edit.ExpiresAt.IsZero() {
			m.expires.SetValue(edit.ExpiresAt.UTC().Format(time.RFC3339))
		}
		m.focus = fieldDesc
	}
	m.descField = m.desc.Value()
	m.expiresField = m.expires.Value()
	m.initial = m.snapshot()
	m.setFocus(m.focus)
	return m
}

func (m *Model) snapshot() string {
	return m.name.Value() + "\x00" + m.description() + "\x00" + m.expires.Value() + "\x00" + strconv.FormatBool(m.sd) + strconv.FormatBool(m.tpf)
}

// toField is text as the description field shows it: tabs as tabMark.
func (m *Model) toField(s string) string {
	if !m.markTabs {
		return s
	}
	return strings.ReplaceAll(s, "\t", string(tabMark))
}

// description is the description as typed, with its tabs.
func (m *Model) description() string {
	v := m.desc.Value()
	if !m.markTabs {
		return v
	}
	return strings.ReplaceAll(v, string(tabMark), "\t")
}

// Values are what the name and description fields hold, exactly as typed
// (the description with its tabs).
func (m *Model) Values() (name, description string) {
	return m.name.Value(), m.description()
}

// Init does nothing: the cursor does not blink.
func (m *Model) Init() tea.Cmd { return nil }

// labelWidth is the width of the labels column.
const labelWidth = 14

// SetSize sets the form's size.
func (m *Model) SetSize(width, height int) {
	m.width, m.height = width, height
	fw := max(10, min(70, width-labelWidth-1))
	m.name.Width = fw
	m.expires.Width = fw
	m.desc.SetWidth(fw)
	// Title, blank, name, its note, description rows, remaining, expires and
	// its note, two check boxes, access note, buttons: 11 lines besides the
	// description.
	m.desc.SetHeight(max(1, min(6, height-12)))
	m.rewrapDesc()
}

// rewrapDesc lays the description out again for a new size: the text area
// would keep the scroll position of the old one (showing a blank or a partial
// field though all of it fits). The cursor stays where it was.
func (m *Model) rewrapDesc() {
	row, li := m.desc.Line(), m.desc.LineInfo()
	col := li.StartColumn + li.ColumnOffset
	m.desc.SetValue(m.desc.Value()) // from the top, the cursor at the end
	for m.desc.Line() > row {
		m.desc.CursorUp()
	}
	m.desc.SetCursor(col)
	m.settleDesc()
}

// settleDesc scrolls the description field to its cursor. The text area
// scrolls against the lines it last drew: after a paste of many lines, or a
// new size, the cursor would be out of sight until the next key. Drawing it
// first gives it the lines it holds now.
func (m *Model) settleDesc() {
	if !m.desc.Focused() {
		return
	}
	_ = m.desc.View()
	m.desc, _ = m.desc.Update(nil)
}

// Typing is true while a text field has focus.
func (m *Model) Typing() bool {
	return m.focus == fieldName || m.focus == fieldDesc || m.focus == fieldExpires
}

func (m *Model) setFocus(f int) {
	if m.editing != nil && f == fieldName {
		f = fieldDesc // the name cannot change
	}
	m.focus = f
	m.name.Blur()
	m.desc.Blur()
	m.expires.Blur()
	switch f {
	case fieldName:
		m.name.Focus()
	case fieldDesc:
		m.desc.Focus()
	case fieldExpires:
		m.expires.Focus()
	}
}

func (m *Model) step(d int) {
	f := (m.focus + d + numFields) % numFields
	if m.editing != nil && f == fieldName {
		f = (f + d + numFields) % numFields
	}
	m.setFocus(f)
}

func (m *Model) access() []store.Access {
	var a []store.Access
	if m.sd {
		a = append(a, store.AccessSecurityDirector)
	}
	if m.tpf {
		a = append(a, store.AccessThirdPartyFeeds)
	}
	return a
}

// expiresAt is what the Expires field means now: zero for never, and the
// error shown beside the field (store.ParseExpires's rules).
func (m *Model) expiresAt() (time.Time, string) {
	if e := m.storeErrs["expires"]; e != "" {
		return time.Time{}, e
	}
	if m.editing != nil && m.expires.Value() == m.expiresField {
		// Untouched: kept as it is, even when it passed (a new date is
		// what brings an expired token back).
		return m.editing.ExpiresAt, ""
	}
	t, err := store.ParseExpires(strings.TrimSpace(m.expires.Value()), m.ctx.Now())
	if err != nil {
		return time.Time{}, err.Error()
	}
	return t, ""
}

// expiresNote is the note under the Expires field: its error, or what it means.
func (m *Model) expiresNote() (errText, hint string) {
	t, errText := m.expiresAt()
	switch {
	case errText != "":
		return errText, ""
	case t.IsZero():
		return "", "never expires · or 30d, 2027-03-01, an RFC 3339 time (UTC)"
	case !m.ctx.Now().Before(t):
		return "", "expired " + t.UTC().Format("2006-01-02 15:04") + " UTC · type a new date or 30d, or clear it for never"
	}
	return "", "expires " + t.UTC().Format("2006-01-02 15:04") + " UTC (in " + common.Until(t.Sub(m.ctx.Now())) + ")"
}

// errors is the error shown beside each field: the store's refusal first, then
// the live rules once the field was touched or a submit was tried.
func (m *Model) errors() (name, desc, access string) {
	msg := func(err error) string {
		if err == nil {
			return ""
		}
		return err.Error()
	}
	name, desc, access = m.storeErrs["name"], m.storeErrs["description"], m.storeErrs["access"]
	if name == "" && m.editing == nil && (m.touched[fieldName] || m.submitted) {
		name = msg(store.ValidateName(m.name.Value()))
		if name == "" && m.taken != nil && m.taken(m.name.Value()) {
			name = fmt.Sprintf("name %q is already taken", m.name.Value())
		}
	}
	if desc == "" {
		desc = msg(store.ValidateDescription(m.description()))
	}
	if access == "" && (m.touched[fieldSD] || m.touched[fieldTPF] || m.submitted) {
		// The store's words name the CLI's values; the form names its check boxes.
		if errors.Is(store.ValidateAccess(m.access()), store.ErrInvalidAccess) {
			access = "choose Security Director, Third Party Feeds, or both"
		}
	}
	return name, desc, access
}

// Update handles keys and the store's answer.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case submittedMsg:
		return m, m.answered(msg)
	case common.ChangesMsg:
		return m, m.changed(msg)
	case tea.KeyMsg:
		if m.busy {
			return m, nil
		}
		return m, m.key(msg)
	}
	var c1, c2 tea.Cmd
	var c3 tea.Cmd
	m.name, c1 = m.name.Update(msg)
	m.desc, c2 = m.desc.Update(msg)
	m.expires, c3 = m.expires.Update(msg)
	return m, tea.Batch(c1, c2, c3)
}

func (m *Model) key(msg tea.KeyMsg) tea.Cmd {
	k := m.keys
	switch {
	case key.Matches(msg, k.Submit):
		return m.submit()
	case key.Matches(msg, k.Cancel):
		return m.cancel()
	case key.Matches(msg, k.Next):
		m.step(1)
		return nil
	case key.Matches(msg, k.Prev):
		m.step(-1)
		return nil
	}
	switch m.focus {
	case fieldName:
		if key.Matches(msg, k.Enter) {
			m.step(1)
			return nil
		}
		before := m.name.Value()
		var cmd tea.Cmd
		m.name, cmd = m.name.Update(msg)
		if m.name.Value() != before {
			m.touched[fieldName] = true
			delete(m.storeErrs, "name")
		}
		return cmd
	case fieldDesc:
		if msg.Type == tea.KeyRunes && m.markTabs && slices.Contains(msg.Runes, '\t') {
			// A pasted tab: keep it (the text area would make it spaces).
			msg.Runes = []rune(m.toField(string(msg.Runes)))
		}
		if n := insertedCells(msg); n > 0 && m.desc.Length()+n > descFieldCells {
			return common.Error(fmt.Errorf("not inserted: the description field holds at most %d characters (the rule is %d)",
				descFieldCells, store.MaxDescriptionLen))
		}
		before := m.desc.Value()
		row, wrapped := m.desc.Line(), m.desc.LineInfo().RowOffset
		var cmd tea.Cmd
		m.desc, cmd = m.desc.Update(msg)
		if msg.Paste || m.desc.Line() != row || m.desc.LineInfo().RowOffset != wrapped {
			// The cursor went to another line: the field may have to scroll
			// further than the lines it last drew.
			m.settleDesc()
		}
		if m.desc.Value() != before {
			m.touched[fieldDesc] = true
			delete(m.storeErrs, "description")
		}
		return cmd
	case fieldExpires:
		if key.Matches(msg, k.Enter) {
			m.step(1)
			return nil
		}
		before := m.expires.Value()
		var cmd tea.Cmd
		m.expires, cmd = m.expires.Update(msg)
		if m.expires.Value() != before {
			m.touched[fieldExpires] = true
			delete(m.storeErrs, "expires")
		}
		return cmd
	case fieldSD, fieldTPF:
		if key.Matches(msg, k.Toggle, k.Enter) {
			if m.focus == fieldSD {
				m.sd = !m.sd
			} else {
				m.tpf = !m.tpf
			}
			m.touched[m.focus] = true
			delete(m.storeErrs, "access")
		}
	case buttonOK:
		if key.Matches(msg, k.Enter, k.Toggle) {
			return m.submit()
		}
	case buttonCancel:
		if key.Matches(msg, k.Enter, k.Toggle) {
			return m.cancel()
		}
	}
	return nil
}

// changed tells, as soon as the change arrives, that the token being edited
// was deleted: saving would fail, and typing on would be for nothing.
func (m *Model) changed(msg common.ChangesMsg) tea.Cmd {
	if m.editing == nil || m.gone {
		return nil
	}
	for _, c := range msg.Changes {
		if c.Kind == store.ChangeDeleted && c.TokenID == m.editing.ID {
			m.gone = true
			m.formErr = "token " + m.editing.Name + " was deleted meanwhile: nothing can be saved (esc leaves)"
			return common.Error(errors.New("token " + m.editing.Name + " was deleted by someone else while you edited it"))
		}
	}
	return nil
}

// insertedCells is how many cells of the text area a key would insert.
func insertedCells(msg tea.KeyMsg) int {
	switch msg.Type {
	case tea.KeyRunes:
		return ansi.StringWidth(string(msg.Runes))
	case tea.KeySpace, tea.KeyEnter:
		return 1
	}
	return 0
}

func closeForm() tea.Msg { return common.CloseFormMsg{} }

// cancel leaves the form, asking first when something was changed.
func (m *Model) cancel() tea.Cmd {
	if m.snapshot() == m.initial {
		return closeForm
	}
	return m.askDiscard(closeForm)
}

// askDiscard asks whether to discard what was typed; yes runs then.
func (m *Model) askDiscard(then tea.Cmd) tea.Cmd {
	title := "Discard the new token?"
	if m.editing != nil {
		title = "Discard your changes to " + m.editing.Name + "?"
	}
	return func() tea.Msg {
		return common.ConfirmMsg{Title: title, Lines: []string{"What you typed will be lost."}, Yes: then}
	}
}

// Interrupt asks, on ctrl+c with unsaved changes, the question esc asks; yes
// discards them and quits. Without changes there is nothing to lose.
func (m *Model) Interrupt() (tea.Cmd, bool) {
	if m.snapshot() == m.initial {
		return nil, false
	}
	return m.askDiscard(tea.Sequence(closeForm, common.Quit)), true
}

// submit checks every field and, when they pass, asks the store.
func (m *Model) submit() tea.Cmd {
	if m.gone {
		return nil
	}
	m.submitted = true
	m.formErr = ""
	name, desc, access := m.errors()
	exp, expErr := m.expiresAt()
	switch {
	case name != "":
		m.setFocus(fieldName)
	case desc != "":
		m.setFocus(fieldDesc)
	case expErr != "":
		m.setFocus(fieldExpires)
	case access != "":
		m.setFocus(fieldSD)
	}
	if name != "" || desc != "" || expErr != "" || access != "" {
		return nil
	}
	st, actor := m.store, m.ctx.Actor
	d, acc := m.description(), m.access()
	if m.editing != nil {
		// Send only what the admin changed: the store rewrites (and audits)
		// every field it is given.
		id, n := m.editing.ID, m.editing.Name
		var e store.Edit
		if m.desc.Value() != m.descField && d != m.editing.Description {
			e.Description = &d
		}
		if !sameAccess(acc, m.editing) {
			e.Access = acc
		}
		if m.expires.Value() != m.expiresField && !exp.Equal(m.editing.ExpiresAt) {
			e.ExpiresAt = &exp
		}
		if e.Description == nil && e.Access == nil && e.ExpiresAt == nil {
			return tea.Batch(closeForm, common.Status("Token %s unchanged", n))
		}
		m.busy = true
		return func() tea.Msg {
			_, err := st.EditID(actor, id, e)
			return submittedMsg{edited: n, err: common.Picked(err, []string{id}, []string{n})}
		}
	}
	m.busy = true
	in := store.NewToken{Name: m.name.Value(), Description: d, Access: acc, ExpiresAt: exp}
	return func() tea.Msg {
		c, err := st.Create(actor, in)
		return submittedMsg{created: c, err: err}
	}
}

// sameAccess reports whether acc is exactly the access of t.
func sameAccess(acc []store.Access, t *store.Token) bool {
	if len(acc) != len(t.Access) {
		return false
	}
	for _, a := range acc {
		if !t.HasAccess(a) {
			return false
		}
	}
	return true
}

// answered shows the store's refusal beside its field, keeping what was typed,
// or leaves the form.
func (m *Model) answered(msg submittedMsg) tea.Cmd {
	m.busy = false
	if msg.err != nil {
		var fe *store.FieldError
		if errors.As(msg.err, &fe) {
			m.storeErrs[fe.Field] = fe.Msg
			switch fe.Field {
			case "name":
				m.setFocus(fieldName)
			case "description":
				m.setFocus(fieldDesc)
			case "expires":
				m.setFocus(fieldExpires)
			case "access":
				m.setFocus(fieldSD)
			}
			return nil
		}
		m.formErr = msg.err.Error()
		return nil
	}
	if m.editing != nil {
		return tea.Batch(closeForm, common.Status("Token %s saved", msg.edited))
	}
	created := msg.created
	return tea.Batch(closeForm, func() tea.Msg { return CreatedMsg{Created: created} })
}

// View renders the form.
func (m *Model) View() string {
	s := m.ctx.Styles
	nameErr, descErr, accErr := m.errors()
	pad := strings.Repeat(" ", labelWidth)
	label := func(f int, text string) string {
		st := s.Label
		mark := "  "
		if m.focus == f {
			st = s.Focused
			mark = "> "
		}
		return st.Render(mark + text + strings.Repeat(" ", max(0, labelWidth-2-len(text))))
	}
	note := func(errText, hint string) string {
		// Notes wrap under the field rather than run off a narrow window.
		text, st := hint, s.Subtle
		if errText != "" {
			text, st = "✗ "+errText, s.Error
		}
		lines := strings.Split(st.Width(max(10, m.width-labelWidth)).Render(text), "\n")
		return pad + strings.Join(lines, "\n"+pad)
	}
	var b strings.Builder
	if m.editing != nil {
		b.WriteString(s.Title.Render("Edit token " + m.editing.Name))
	} else {
		b.WriteString(s.Title.Render("Create Application Token"))
	}
	b.WriteString("\n\n")
	if m.editing != nil {
		b.WriteString(label(fieldName, "Name") + m.editing.Name + "\n")
		b.WriteString(note("", "the name cannot change") + "\n")
	} else {
		b.WriteString(label(fieldName, "Name") + m.name.View() + "\n")
		b.WriteString(note(nameErr, "letters, digits and dashes, up to 32") + "\n")
	}
	for i, l := range strings.Split(m.desc.View(), "\n") {
		if i == 0 {
			b.WriteString(label(fieldDesc, "Description") + l + "\n")
		} else {
			b.WriteString(pad + l + "\n")
		}
	}
	remaining := common.Plural(store.DescriptionRemaining(m.description()), "character", "characters") + " remaining"
	if m.markTabs && strings.ContainsRune(m.desc.Value(), tabMark) {
		remaining += " · " + string(tabMark) + " is a tab"
	}
	b.WriteString(note(descErr, remaining) + "\n")
	b.WriteString(label(fieldExpires, "Expires") + m.expires.View() + "\n")
	b.WriteString(note(m.expiresNote()) + "\n")
	box := func(f int, on bool, text string) string {
		c := "[ ] "
		if on {
			c = "[x] "
		}
		st := s.Label
		if m.focus == f {
			st = s.Focused
			c = "> " + c
		} else {
			c = "  " + c
		}
		return st.Render(c + text)
	}
	b.WriteString(s.Label.Render("  Access Type"+strings.Repeat(" ", labelWidth-13)) + box(fieldSD, m.sd, "Security Director") + "\n")
	b.WriteString(pad + box(fieldTPF, m.tpf, "Third Party Feeds") + "\n")
	b.WriteString(note(accErr, "at least one") + "\n")
	button := func(f int, text string) string {
		if m.focus == f {
			return s.ButtonOn.Render("> " + text + " <")
		}
		return s.Button.Render("[ " + text + " ]")
	}
	b.WriteString(pad + button(buttonOK, "OK") + "  " + button(buttonCancel, "Cancel"))
	switch {
	case m.busy:
		b.WriteString("  " + s.Subtle.Render("saving…"))
	case m.formErr != "":
		b.WriteString("  " + s.Error.Render("✗ "+m.formErr))
	}
	return b.String()
}

// ShortHelp is the help line.
func (m *Model) ShortHelp() []key.Binding {
	k := m.keys
	return []key.Binding{k.Next, k.Prev, k.Toggle, k.Submit, k.Cancel}
}

// FullHelp is the full help.
func (m *Model) FullHelp() [][]key.Binding {
	k := m.keys
	return [][]key.Binding{{k.Next, k.Prev}, {k.Toggle, k.Enter}, {k.Submit, k.Cancel}}
}

// Package confirm is the confirmation modal: a y/n question, or a typed
// confirmation (the token's name) for what cannot be undone.
package confirm

import (
	"strings"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/apptokens/apptokens/tui/common"
	"github.com/apptokens/apptokens/tui/keys"
)

// Model is one question.
type Model struct {
	ctx    *common.Context
	keys   keys.Confirm
	q      common.ConfirmMsg
	prompt *common.PromptMsg // asking for free text, or nil
	input  textinput.Model
	wrong  bool
	width  int
}

// NewPrompt builds the modal that asks for one line of text.
func NewPrompt(ctx *common.Context, p common.PromptMsg) *Model {
	m := &Model{ctx: ctx, keys: keys.DefaultConfirm(), q: common.ConfirmMsg{Title: p.Title, Lines: p.Lines}, prompt: &p}
	m.newInput()
	m.input.Placeholder = p.Placeholder
	m.input.SetValue(p.Value)
	return m
}

func (m *Model) newInput() {
	m.input = textinput.New()
	m.input.Prompt = "> "
	// No CharLimit: a cut answer would not be what was typed.
	m.input.CharLimit = 0
	m.input.Cursor.SetMode(cursor.CursorStatic)
	m.ctx.Styles.TextInput(&m.input)
	m.input.Focus()
}

// New builds the modal for q.
func New(ctx *common.Context, q common.ConfirmMsg) *Model {
	m := &Model{ctx: ctx, keys: keys.DefaultConfirm(), q: q}
	if q.Require != "" {
		m.newInput()
	}
	return m
}

// Init does nothing: the cursor does not blink.
func (m *Model) Init() tea.Cmd { return nil }

// SetSize sets the width available to the modal.
func (m *Model) SetSize(width, _ int) {
	m.width = width
	m.input.Width = max(10, min(40, width-10))
}

// Typing reports whether the answer is typed.
func (m *Model) Typing() bool { return m.q.Require != "" || m.prompt != nil }

func closeModal() tea.Msg { return common.CloseModalMsg{} }

// Update answers the question.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	km, ok := msg.(tea.KeyMsg)
	if ok && m.prompt != nil {
		return m, m.promptKey(km)
	}
	if !ok {
		if m.Typing() {
			var cmd tea.Cmd
			m.input, cmd = m.input.Update(msg)
			return m, cmd
		}
		return m, nil
	}
	if m.q.Require == "" {
		switch {
		case key.Matches(km, m.keys.Yes):
			return m, tea.Sequence(closeModal, m.q.Yes)
		case key.Matches(km, m.keys.No):
			return m, tea.Sequence(closeModal, common.Status("Cancelled"))
		}
		return m, nil
	}
	switch {
	case key.Matches(km, m.keys.Cancel):
		return m, tea.Sequence(closeModal, common.Status("Cancelled"))
	case key.Matches(km, m.keys.Submit):
		if m.input.Value() != m.q.Require {
			m.wrong = true
			return m, nil
		}
		return m, tea.Sequence(closeModal, m.q.Yes)
	}
	m.wrong = false
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(km)
	return m, cmd
}

func (m *Model) promptKey(km tea.KeyMsg) tea.Cmd {
	switch {
	case key.Matches(km, m.keys.Cancel):
		return tea.Sequence(closeModal, common.Status("Cancelled"))
	case key.Matches(km, m.keys.Submit):
		text := strings.TrimSpace(m.input.Value())
		if text == "" {
			m.wrong = true
			return nil
		}
		if m.prompt.Check != nil {
			if _, err := m.prompt.Check(text); err != nil {
				return nil // the error shows under the field already
			}
		}
		return tea.Sequence(closeModal, m.prompt.Submit(text))
	}
	m.wrong = false
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(km)
	return cmd
}

// View renders the question in a box.
func (m *Model) View() string {
	s := m.ctx.Styles
	w := max(20, min(70, m.width-4))
	var b strings.Builder
	b.WriteString(s.Title.Render(m.q.Title))
	for _, l := range m.q.Lines {
		b.WriteString("\n\n")
		b.WriteString(s.Label.Width(w).Render(l))
	}
	b.WriteString("\n\n")
	switch {
	case m.prompt != nil:
		b.WriteString(m.input.View())
		if m.prompt.Check != nil {
			if text := strings.TrimSpace(m.input.Value()); text != "" {
				if ok, err := m.prompt.Check(text); err != nil {
					b.WriteString("\n" + s.Error.Width(w).Render("✗ "+err.Error()))
				} else if ok != "" {
					b.WriteString("\n" + s.Subtle.Width(w).Render(ok))
				}
			}
		}
		b.WriteString("\n" + s.Warning.Render("enter") + " confirms · " + s.Warning.Render("esc") + " cancels")
		if m.wrong {
			b.WriteString("\n" + s.Error.Render("Type something first."))
		}
	case m.q.Require == "":
		b.WriteString(s.Warning.Render("y") + " confirms · " + s.Warning.Render("n") + " or " + s.Warning.Render("esc") + " cancels")
	default:
		b.WriteString("Type " + s.Warning.Render(m.q.Require) + " and press enter (esc cancels):\n")
		b.WriteString(m.input.View())
		if m.wrong {
			b.WriteString("\n" + s.Error.Render("That is not "+m.q.Require+"."))
		}
	}
	return s.Modal.Render(b.String())
}

// ShortHelp is the help line.
func (m *Model) ShortHelp() []key.Binding {
	if m.q.Require == "" && m.prompt == nil {
		return []key.Binding{m.keys.Yes, m.keys.No}
	}
	return []key.Binding{m.keys.Submit, m.keys.Cancel}
}

// FullHelp is the full help.
func (m *Model) FullHelp() [][]key.Binding { return [][]key.Binding{m.ShortHelp()} }

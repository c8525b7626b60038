// Package reveal is the one-time reveal of a new token: the whole token on one
// line, a copy to the clipboard (OSC 52), and a confirmed close after which the
// token is gone from memory and screen.
package reveal

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aymanbagabas/go-osc52/v2"
	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/apptokens/apptokens/internal/secret"
	"github.com/apptokens/apptokens/tui/common"
	"github.com/apptokens/apptokens/tui/keys"
)

// Model shows one new token until it is closed.
type Model struct {
	ctx       *common.Context
	keys      keys.Reveal
	name      string
	token     secret.Token
	clipboard io.Writer
	closing   bool // enter (or ctrl+c) was pressed: asking y/n
	quitting  bool // the question came from ctrl+c: yes quits too
	copied    bool
	width     int
	// rotated: the secret is an existing token's new one; oldUntil is when
	// its old secret stops working (zero: it stopped at once).
	rotated  bool
	oldUntil time.Time
}

// New shows tok, the secret of the token named name. clipboard receives the
// OSC 52 sequence; nil means copying is not available.
func New(ctx *common.Context, name string, tok secret.Token, clipboard io.Writer) *Model {
	return &Model{ctx: ctx, keys: keys.DefaultReveal(), name: name, token: tok, clipboard: clipboard}
}

// NewRotated shows tok, the new secret of the token named name after a
// rotation, exactly as New shows a new token's, and says until when the old
// secret works (oldUntil; zero or past: no longer).
func NewRotated(ctx *common.Context, name string, tok secret.Token, clipboard io.Writer, oldUntil time.Time) *Model {
	m := New(ctx, name, tok, clipboard)
	m.rotated, m.oldUntil = true, oldUntil
	return m
}

// done is what happened to the token: "created" or "rotated".
func (m *Model) done() string {
	if m.rotated {
		return "rotated"
	}
	return "created"
}

// Init does nothing.
func (m *Model) Init() tea.Cmd { return nil }

// SetSize sets the width available to the modal.
func (m *Model) SetSize(width, _ int) { m.width = width }

// Typing is false: the reveal has no text field.
func (m *Model) Typing() bool { return false }

// frame is the width the modal's border and padding add to the token.
const frame = 4

// MinWidth is the narrowest window that shows the whole token on one line.
const MinWidth = secret.Len + frame

// Update copies and closes.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	km, ok := msg.(tea.KeyMsg)
	if !ok {
		return m, nil
	}
	if m.closing {
		switch {
		case key.Matches(km, m.keys.Yes):
			m.forget()
			closed := tea.Batch(
				func() tea.Msg { return common.CloseModalMsg{} },
				common.Status("Token %s %s; its secret is no longer shown anywhere", m.name, m.done()))
			if m.quitting {
				return m, tea.Sequence(closed, common.Quit)
			}
			return m, closed
		case key.Matches(km, m.keys.No):
			m.closing, m.quitting = false, false
		}
		return m, nil
	}
	switch {
	case key.Matches(km, m.keys.Copy):
		return m, m.copy()
	case key.Matches(km, m.keys.Close):
		m.closing = true
	}
	return m, nil
}

// Interrupt asks, on ctrl+c, the question closing asks: quitting now would
// lose the only sight of the secret. Yes closes and then quits.
func (m *Model) Interrupt() (tea.Cmd, bool) {
	m.closing, m.quitting = true, true
	return nil, true
}

// forget drops the secret: after this nothing in the model holds it.
func (m *Model) forget() {
	m.token = ""
	m.clipboard = nil
}

func (m *Model) copy() tea.Cmd {
	if m.clipboard == nil {
		return common.Error(fmt.Errorf("copying is not available here: select the token on screen instead"))
	}
	if _, err := osc52.New(m.token.Reveal()).WriteTo(m.clipboard); err != nil {
		return common.Error(fmt.Errorf("copy: %w", err))
	}
	m.copied = true
	return common.Status("Token copied to the clipboard (OSC 52); paste it somewhere safe")
}

// View renders the modal. The token is never wrapped or cut: when the window is
// too narrow the modal says so instead.
func (m *Model) View() string {
	s := m.ctx.Styles
	var b strings.Builder
	b.WriteString(s.Title.Render("Token " + m.name + " " + m.done()))
	b.WriteString("\n\n")
	if m.rotated {
		if m.oldUntil.IsZero() || !m.ctx.Now().Before(m.oldUntil) {
			b.WriteString("The old secret no longer works. The new one:")
		} else {
			b.WriteString("The old secret works until " + m.oldUntil.UTC().Format("2006-01-02 15:04") + " UTC. The new one:")
		}
		b.WriteString("\n\n")
	}
	if m.width < MinWidth {
		b.WriteString(s.Warning.Render(fmt.Sprintf(
			"The window is too narrow for the token: widen it to at least %d columns (now %d). c still copies it.", MinWidth, m.width)))
	} else {
		b.WriteString(s.Secret.Render(m.token.Reveal()))
	}
	b.WriteString("\n\n")
	b.WriteString(s.Warning.Render("Copy it now: it will not be shown again."))
	b.WriteString("\n")
	if m.copied {
		b.WriteString(s.Status.Render("Copied to the clipboard."))
		b.WriteString("\n")
	}
	if m.closing {
		b.WriteString("\nClose? You will not be able to see this token again.\n")
		b.WriteString(s.Warning.Render("y") + " closes · " + s.Warning.Render("n") + " goes back")
	} else {
		b.WriteString("\n" + s.Warning.Render("c") + " copies · " + s.Warning.Render("enter") + " closes")
	}
	if m.width < MinWidth {
		// No token is shown: wrap the words to the window.
		return s.Modal.Width(max(10, m.width-2)).Render(b.String())
	}
	return s.Modal.Render(b.String())
}

// ShortHelp is the help line.
func (m *Model) ShortHelp() []key.Binding {
	if m.closing {
		return []key.Binding{m.keys.Yes, m.keys.No}
	}
	return []key.Binding{m.keys.Copy, m.keys.Close}
}

// FullHelp is the full help.
func (m *Model) FullHelp() [][]key.Binding { return [][]key.Binding{m.ShortHelp()} }

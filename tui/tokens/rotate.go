package tokens

import (
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/tui/common"
)

// DefaultGrace is the grace window the rotation prompt offers: how long the
// old secret keeps working (DESIGN "Lifecycle": 24 h).
const DefaultGrace = 24 * time.Hour

// askRotate asks for the grace window of the token under the cursor, then
// gives it a new secret; the root reveals it once (common.RotatedMsg).
func (m *Model) askRotate() tea.Cmd {
	t := m.current()
	if t == nil {
		return nil
	}
	id, name := t.ID, t.Name
	st, actor, now := m.store, m.ctx.Actor, m.ctx.Now
	check := func(text string) (string, error) {
		g, err := store.ParseGrace(text)
		if err != nil {
			return "", err
		}
		if g == 0 {
			return "the old secret stops working at once", nil
		}
		return "the old secret works until " + now().Add(g).UTC().Format("2006-01-02 15:04") + " UTC", nil
	}
	rotate := func(text string) tea.Cmd {
		g, err := store.ParseGrace(text)
		if err != nil {
			return common.Error(err)
		}
		return func() tea.Msg {
			c, err := st.RotateID(actor, id, g)
			if err != nil {
				return actedMsg{err: common.Picked(err, []string{id}, []string{name})}
			}
			return common.RotatedMsg{Token: c.Token, Secret: c.Secret, OldUntil: c.Token.OldValidUntil}
		}
	}
	return func() tea.Msg {
		return common.PromptMsg{
			Title: "Rotate token " + name,
			Lines: []string{
				"A new secret is made and shown once. The old one keeps working for the grace window, then is refused (401 rotated_token).",
				"Grace window (e.g. 24h, 30m, 7d; 0 stops the old secret at once):",
			},
			Placeholder: "24h",
			Value:       "24h",
			Check:       check,
			Submit:      rotate,
		}
	}
}

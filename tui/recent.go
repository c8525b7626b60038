package tui

import tea "github.com/charmbracelet/bubbletea"

// recentMsg says the tokens' last 24 hours changed: the table draws again.
type recentMsg struct{}

// startRecent starts the process's counts of the last 24 hours (once per
// process) and waits for them to change.
func (m *Model) startRecent() tea.Cmd {
	if m.deps.Recent == nil {
		return nil
	}
	m.deps.Recent.Start()
	return m.waitRecent()
}

// waitRecent waits until the counts change or the session closes.
func (m *Model) waitRecent() tea.Cmd {
	if m.deps.Recent == nil {
		return nil
	}
	changed, done := m.deps.Recent.Changed(), m.done
	return func() tea.Msg {
		select {
		case <-changed:
			return recentMsg{}
		case <-done:
			return nil
		}
	}
}

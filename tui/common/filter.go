package common

import (
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/apptokens/apptokens/tui/keys"
)

// FilterKey is a key typed while a screen's filter line has focus, the same on
// every screen that filters: Cancel clears the filter and leaves the line,
// Apply keeps it and leaves the line, anything else edits it. set is called
// with the line's text whenever that text changes (with "" on Cancel);
// *filtering becomes false when the line is left.
func FilterKey(msg tea.KeyMsg, k keys.FilterInput, field *textinput.Model, filtering *bool, set func(string)) tea.Cmd {
	switch {
	case key.Matches(msg, k.Cancel):
		*filtering = false
		field.Blur()
		set("")
		return nil
	case key.Matches(msg, k.Apply):
		*filtering = false
		field.Blur()
		return nil
	}
	before := field.Value()
	var cmd tea.Cmd
	*field, cmd = field.Update(msg)
	if field.Value() != before {
		set(field.Value())
	}
	return cmd
}

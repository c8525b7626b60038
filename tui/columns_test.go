package tui

import (
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"
)

// config.toml's columns choose the tokens screen's columns and their order;
// a click on the name still opens the token wherever its column is.
func TestConfiguredColumns(t *testing.T) {
	st, c := newStore(t)
	seedDemo(t, st, c)
	m := New(Deps{Store: st, Actor: tester, Renderer: asciiRenderer(), Now: c.Now,
		Columns: []string{"last_used", "name", "state"}}).(*Model)
	d := drive(t, m, 100, 20)
	v := d.view()
	var header string
	for _, line := range strings.Split(v, "\n") {
		if strings.Contains(line, "Name") {
			header = line
			break
		}
	}
	lu, name, state := strings.Index(header, "Last used"), strings.Index(header, "Name"), strings.Index(header, "State")
	if lu < 0 || name < 0 || state < 0 || !(lu < name && name < state) {
		t.Fatalf("columns not in the configured order (last used, name, state): %q\n%s", header, v)
	}
	for _, gone := range []string{"Description", "Access Type", "Created", "Nightly export"} {
		if strings.Contains(v, gone) {
			t.Errorf("%q shown although not configured:\n%s", gone, v)
		}
	}
	// The second row's name, now after the last-used column.
	d.send(tea.MouseMsg{X: name + 2, Y: 4, Action: tea.MouseActionPress, Button: tea.MouseButtonLeft})
	if v := d.view(); !strings.Contains(v, "Token feeds-sync") {
		t.Fatalf("a click on the moved name column did not open the token:\n%s", v)
	}
}

package tokens

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/tui/common"
	"github.com/apptokens/apptokens/tui/styles"
)

var now = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func makeTokens(n int) []store.Token {
	out := make([]store.Token, n)
	for i := range out {
		out[i] = store.Token{
			ID:          fmt.Sprintf("id-%06d", i),
			Name:        fmt.Sprintf("token-%06d", i),
			Description: fmt.Sprintf("service %d", i),
			Access:      []store.Access{store.AccessSecurityDirector},
			Active:      true,
			CreatedAt:   now.Add(-time.Duration(i) * time.Minute),
		}
	}
	return out
}

// loaded returns the screen with n tokens applied as a full load. The store
// is not needed: the screen only reads it through commands.
func loaded(n int) *Model {
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.Ascii)
	ctx := &common.Context{Styles: styles.New(r), Now: func() time.Time { return now }}
	m := New(ctx, nil)
	m.SetSize(120, 40)
	m.Update(loadedMsg{full: true, toks: makeTokens(n), inactiveAfter: store.DefaultInactiveAfter})
	return m
}

// TestKeystrokeScales guards the performance contract: a keystroke (down plus
// View) allocates no more with 100,000 tokens than with 1,000 (within 1.5×).
func TestKeystrokeScales(t *testing.T) {
	cost := func(n int) float64 {
		m := loaded(n)
		down := tea.KeyMsg{Type: tea.KeyDown}
		return testing.AllocsPerRun(200, func() {
			m.Update(down)
			_ = m.View()
		})
	}
	small, large := cost(1000), cost(100000)
	if large > 1.5*small {
		t.Fatalf("a keystroke allocates %.0f times with 100,000 tokens, %.0f with 1,000", large, small)
	}
}

func TestPatchKeepsCursorAndSelection(t *testing.T) {
	m := loaded(50)
	m.Update(tea.KeyMsg{Type: tea.KeyDown})
	m.Update(tea.KeyMsg{Type: tea.KeySpace, Runes: []rune{' '}}) // select token-000001
	m.Update(tea.KeyMsg{Type: tea.KeyDown})                      // cursor on token-000002
	first := store.Token{ID: "new", Name: "aaa", Access: []store.Access{store.AccessSecurityDirector}, Active: true, CreatedAt: now}
	m.Update(loadedMsg{upserts: []store.Token{first}, deleted: []string{"id-000000"}, inactiveAfter: store.DefaultInactiveAfter})
	v := m.View()
	for _, want := range []string{"> [ ] token-000002", "  [x] token-000001", "  [ ] aaa", "50 tokens, 50 active, 1 selected"} {
		if !strings.Contains(v, want) {
			t.Errorf("view lacks %q:\n%s", want, v)
		}
	}
	if strings.Contains(v, "token-000000") {
		t.Errorf("deleted token still shown:\n%s", v)
	}
	// Deleting the selected token drops it from the selection.
	m.Update(loadedMsg{deleted: []string{"id-000001"}, inactiveAfter: store.DefaultInactiveAfter})
	if v := m.View(); !strings.Contains(v, "49 tokens, 49 active\n") || !strings.Contains(v, "> [ ] token-000002") {
		t.Errorf("after deleting the selected token:\n%s", v)
	}
}

func TestWindowShowsOnlyRowsOnScreen(t *testing.T) {
	m := loaded(1000)
	for range 100 {
		m.Update(tea.KeyMsg{Type: tea.KeyDown})
	}
	v := m.View()
	if got := strings.Count(v, "\n") + 1; got != 40 {
		t.Fatalf("view has %d lines, want the screen's 40", got)
	}
	if !strings.Contains(v, "> [ ] token-000100") || strings.Contains(v, "token-000000") {
		t.Fatalf("window does not follow the cursor:\n%s", v)
	}
}

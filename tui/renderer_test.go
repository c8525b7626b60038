package tui

import (
	"io"
	"regexp"
	"strings"
	"testing"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
)

// Text fields take their styles from the session's renderer, not the process's
// default one: over SSH the server may have no terminal at all (TestMain makes
// the default renderer plain ASCII), yet the admin's terminal must show a cursor.
func TestTextFieldsUseTheSessionRenderer(t *testing.T) {
	st, c := newStore(t)
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.ANSI256)
	m := New(Deps{Store: st, Actor: tester, Renderer: r, Now: c.Now}).(*Model)
	d := drive(t, m, 100, 30)
	// The cursor is reverse video, in the admin's colours.
	reverse := regexp.MustCompile(`\x1b\[7;38;5;\d+m`)
	d.keys(runes("/"))
	if !reverse.MatchString(m.View()) {
		t.Fatal("the filter field shows no cursor in the session's terminal")
	}
	d.keys(keyEsc)
	d.keys(runes("n"))
	if v := m.View(); !reverse.MatchString(v) || !strings.Contains(v, "Create Application Token") {
		t.Fatal("the form's Name field shows no cursor in the session's terminal")
	}
}

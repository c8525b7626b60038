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

// Issue 9, fault 5: without colour (NO_COLOR, TERM=dumb, an SSH client that
// asks for none: the Ascii profile) the text cursor and the table cursor
// vanished; they stay in reverse video, which is not colour, and no colour is
// drawn.
func TestCursorVisibleWithoutColour(t *testing.T) {
	st, c := newStore(t)
	seedDemo(t, st, c)
	m := New(Deps{Store: st, Actor: tester, Renderer: asciiRenderer(), Now: c.Now}).(*Model)
	d := drive(t, m, 130, 20)
	v := m.View()
	if regexp.MustCompile(`\x1b\[[0-9;]*(38|48);`).MatchString(v) {
		t.Fatalf("colour drawn without colour:\n%q", v)
	}
	if l := lineWith(v, "> [ ] billing-export"); !strings.Contains(l, "7m") {
		t.Fatalf("the table cursor row is not in reverse video: %q", l)
	}
	d.keys(runes("n"))
	d.typ("abc")
	if l := lineWith(m.View(), "abc"); !regexp.MustCompile(`abc(\x1b\[[0-9;]*m)*\x1b\[[0-9;]*7m`).MatchString(l) {
		t.Fatalf("no reverse-video text cursor after the typed text: %q", l)
	}
}

package tui

import (
	"strings"
	"testing"
)

// helpLine is the last screen line: the short help.
func helpLine(v string) string {
	lines := strings.Split(v, "\n")
	return lines[len(lines)-1]
}

// Issue 9, fault 4: a taken name (case ignored) showed only after submit; it
// shows live from the tokens the session holds.
func TestNameTakenShowsLive(t *testing.T) {
	st, c := newStore(t)
	seedDemo(t, st, c)
	d := drive(t, newModel(st, c, nil), 100, 24)
	d.keys(runes("n"))
	d.typ("FEEDS-sync")
	if v := d.view(); !strings.Contains(v, `name "FEEDS-sync" is already taken`) {
		t.Fatalf("no live error for a taken name:\n%s", v)
	}
	d.typ("2")
	if v := d.view(); strings.Contains(v, "already taken") {
		t.Fatalf("the error stayed for a free name:\n%s", v)
	}
}

// Issue 9, fault 4: "1 characters remaining".
func TestOneCharacterRemaining(t *testing.T) {
	st, c := newStore(t)
	d := drive(t, newModel(st, c, nil), 100, 24)
	d.keys(runes("n"), keyTab)
	d.paste(strings.Repeat("a", 1023))
	if v := d.view(); !strings.Contains(v, "1 character remaining") {
		t.Fatalf("want the singular:\n%s", v)
	}
	d.typ("b")
	if v := d.view(); !strings.Contains(v, "0 characters remaining") {
		t.Fatalf("want 0 characters:\n%s", v)
	}
}

// Issue 9, fault 4: the form's help offered ? where ? is typed as text.
func TestHelpOffersQuestionMarkOnlyWhereItWorks(t *testing.T) {
	st, c := newStore(t)
	d := drive(t, newModel(st, c, nil), 160, 24)
	d.keys(runes("n"))
	if h := helpLine(d.view()); strings.Contains(h, "? help") {
		t.Fatalf("name field has focus, yet the help offers ?: %q", h)
	}
	d.typ("?")
	if got, _ := d.m.form.Values(); got != "?" {
		t.Fatalf("? in the name field should be text, the field holds %q", got)
	}
	d.keys(keyTab, keyTab, keyTab) // to the first check box (past Description and Expires)
	if h := helpLine(d.view()); !strings.Contains(h, "? help") {
		t.Fatalf("on a check box ? works, yet the help does not offer it: %q", h)
	}
	d.typ("?")
	if v := d.view(); !strings.Contains(v, "ctrl+c") {
		t.Fatalf("? on a check box should show the full help:\n%s", v)
	}
}

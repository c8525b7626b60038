package tui

import (
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/apptokens/apptokens/store"
)

// Issue 9, fault 6: after a paste of many lines, or when the window changes,
// the description field shows the line with its cursor, wrapped to its width.
func TestDescriptionFieldFollowsItsCursorAndTheWindow(t *testing.T) {
	st, c := newStore(t)
	d := drive(t, newModel(st, c, nil), 50, 16)
	d.keys(runes("n"))
	d.typ("x")
	d.keys(keyTab)
	d.paste(strings.Repeat("word ", 40) + "END")
	if v := d.view(); !strings.Contains(v, "END") {
		t.Fatalf("the field does not show its cursor's line after the paste:\n%s", v)
	}
	d.send(tea.WindowSizeMsg{Width: 120, Height: 30})
	v := d.view()
	if l := lineWith(v, "Description"); strings.Count(l, "word") < 12 {
		t.Fatalf("the field did not re-wrap to the wider window: %q", l)
	}
	if !strings.Contains(v, "END") {
		t.Fatalf("the cursor's line is out of sight after the resize:\n%s", v)
	}
	d.send(tea.WindowSizeMsg{Width: 40, Height: 14})
	if v := d.view(); !strings.Contains(v, "END") {
		t.Fatalf("the cursor's line is out of sight after shrinking:\n%s", v)
	}
}

// Issue 9, fault 6: after creating a token the cursor is on it.
func TestCursorOnTheNewToken(t *testing.T) {
	st, c := newStore(t)
	seedDemo(t, st, c)
	d := drive(t, newModel(st, c, nil), 130, 20)
	createToken(t, d) // ci-runner: second by name
	d.keys(keyEnter, runes("y"))
	if r := cursorRow(d.view()); !strings.Contains(r, "ci-runner") {
		t.Fatalf("the cursor is not on the new token: %q\n%s", r, d.view())
	}
}

// Issue 9, fault 7: i shows everything the table cuts, and the token's audit
// events; other admins' changes appear without a key.
func TestDetailsShowTheWholeToken(t *testing.T) {
	st, c := newStore(t)
	seedDemo(t, st, c)
	d := drive(t, newModel(st, c, nil), 100, 24)
	d.keys(runes("i")) // billing-export
	v := d.view()
	for _, want := range []string{"Token billing-export", "Nightly export of invoices", "to the finance share",
		"Hint              aptk_…", "Access            Third Party Feeds", "Created           2026-10-18 12:00",
		"Last used         never", "Days to inactive  -", "create      tester  access=third-party-feeds"} {
		if !strings.Contains(v, want) {
			t.Fatalf("details lack %q:\n%s", want, v)
		}
	}
	desc := "Nightly export\n\tthird line"
	if _, err := st.Edit(store.Actor{User: "other"}, "billing-export", store.Edit{Description: &desc}); err != nil {
		t.Fatal(err)
	}
	d.send(tea.WindowSizeMsg{Width: 100, Height: 24})
	if v := d.view(); !strings.Contains(v, "    third line") || !strings.Contains(v, "edit        other  description") {
		t.Fatalf("the edit did not appear:\n%s", v)
	}
	d.keys(keyEsc)
	if !strings.Contains(d.view(), "Application Tokens") {
		t.Fatalf("esc did not go back:\n%s", d.view())
	}
}

// Issue 9, fault 7: the audit screen filters with / and details the selected
// event in full (the actor's whole key fingerprint).
func TestAuditFilterAndDetailLine(t *testing.T) {
	st, c := newStore(t)
	seedDemo(t, st, c)
	seedSSHActor(t, st)
	d := drive(t, newModel(st, c, nil), 80, 20)
	d.keys(runes("L"))
	d.typeBurst("/alice\r")
	v := d.view()
	if !strings.Contains(v, "/alice  1 match of 6 events") || strings.Contains(v, "siem-connector") {
		t.Fatalf("the filter did not apply:\n%s", v)
	}
	if !strings.Contains(v, "by alice ("+sshFingerprint+")") || !strings.Contains(v, "details: access=third-party-feeds") {
		t.Fatalf("no full detail of the selected event:\n%s", v)
	}
	d.keys(keyEsc) // clears the filter, stays
	if v := d.view(); !strings.Contains(v, "6 events") || !strings.Contains(v, "Audit log") {
		t.Fatalf("esc did not clear the filter:\n%s", v)
	}
	d.keys(keyEsc)
	if !strings.Contains(d.view(), "Application Tokens") {
		t.Fatalf("second esc did not go back:\n%s", d.view())
	}
}

package tui

import (
	"fmt"
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/apptokens/apptokens/store"
)

// cursorRow is the screen line under the table cursor.
func cursorRow(v string) string {
	for _, l := range strings.Split(v, "\n") {
		if strings.HasPrefix(l, "> ") {
			return l
		}
	}
	return ""
}

// Issue 9, fault 1: "jjjj" in one read moved the cursor zero rows on every
// table screen.
func TestBurstMovesTheCursorOnEveryScreen(t *testing.T) {
	st, c := newStore(t)
	seedDemo(t, st, c)
	d := drive(t, newModel(st, c, nil), 130, 20)
	d.typeBurst("jj")
	if r := cursorRow(d.view()); !strings.Contains(r, "siem-connector") {
		t.Fatalf("tokens: jj should move two rows, cursor on %q:\n%s", r, d.view())
	}
	d.typeBurst("kjk") // up, down, up: one row up in all
	if r := cursorRow(d.view()); !strings.Contains(r, "feeds-sync") {
		t.Fatalf("tokens: kjk should end one row up, cursor on %q", r)
	}
	d.keys(keyEnter)
	d.typeBurst("jj")
	if r := cursorRow(d.view()); !strings.Contains(r, "198.51.100.23") {
		t.Fatalf("usage: jj should reach the last address, cursor on %q:\n%s", r, d.view())
	}
	d.keys(keyEsc)
	d.typeBurst("Ljjj")
	v := d.view()
	if !strings.Contains(v, "Audit log") {
		t.Fatalf("L in a burst should open the audit log:\n%s", v)
	}
	lines := strings.Split(v, "\n")
	if len(lines) < 7 || !strings.HasPrefix(lines[6], ">") {
		t.Fatalf("audit: jjj should put the cursor on the fourth event:\n%s", v)
	}
}

// Issue 9, fault 1: a burst that spells a key name (" the end", "up", "home")
// in a text field was taken as that key.
func TestBurstIsTextInTheForm(t *testing.T) {
	const desc = "runs up to the end of day, then goes home"
	st, c := newStore(t)
	d := drive(t, newModel(st, c, nil), 100, 30)
	// n opens the form through a command: what follows in the same read must
	// wait for it and land in the name field.
	d.typeBurst("nburst-end")
	d.keys(keyTab)
	d.typeBurst(desc)
	d.keys(keyTab, keyTab, keySpace, keyCtrlS)
	if v := d.view(); !strings.Contains(v, "will not be shown again") {
		t.Fatalf("no reveal after create:\n%s", v)
	}
	tok, err := st.Get("burst-end")
	if err != nil {
		t.Fatalf("token burst-end: %v", err)
	}
	if tok.Description != desc {
		t.Errorf("description %q, want %q", tok.Description, desc)
	}
}

// Issue 9, fault 1: "delete" as one burst was the Delete key, so the typed
// confirmation could not be given.
func TestBurstTypesTheDeleteConfirmation(t *testing.T) {
	st, c := newStore(t)
	seedDemo(t, st, c)
	d := drive(t, newModel(st, c, nil), 130, 20)
	d.typeBurst(" j x") // select the first, move, select the second, delete
	if v := d.view(); !strings.Contains(v, "Type delete") {
		t.Fatalf("no typed confirmation:\n%s", v)
	}
	d.typeBurst("delete\r")
	if v := d.view(); !strings.Contains(v, "2 tokens deleted") {
		t.Fatalf("delete not confirmed:\n%s", v)
	}
	if toks, _ := st.List(); len(toks) != 1 || toks[0].Name != "siem-connector" {
		t.Fatalf("left %v", toks)
	}
}

// Issue 9, fault 1: "/edr⏎" in one read opened the usage of the row under the
// cursor instead of filtering; esc then j arrived as alt+j and the filter
// kept a j.
func TestBurstFiltersThenEnter(t *testing.T) {
	st, c := newStore(t)
	seedDemo(t, st, c)
	d := drive(t, newModel(st, c, nil), 130, 20)
	d.typeBurst("/siem\r")
	v := d.view()
	if !strings.Contains(v, "Application Tokens") || !strings.Contains(v, "/siem") || !strings.Contains(v, "1 match") {
		t.Fatalf("/siem⏎ should filter and keep the filter:\n%s", v)
	}
	d.typeBurst("/")
	d.typeBurst("\x1bj") // esc clears the filter, j moves down
	v = d.view()
	if !strings.Contains(v, "3 matches") && !strings.Contains(v, "/ filter") {
		t.Fatalf("esc should clear the filter:\n%s", v)
	}
	if strings.Contains(v, "/j") {
		t.Fatalf("the j went into the filter:\n%s", v)
	}
	if r := cursorRow(v); !strings.Contains(r, "siem-connector") && !strings.Contains(r, "feeds-sync") {
		t.Fatalf("j after esc did not move the cursor: %q\n%s", r, v)
	}
}

// paste2K is 2 KB of text with spaces, key names and CRLF line ends.
func paste2K() string {
	var b strings.Builder
	for i := 0; b.Len() < 2048; i++ {
		fmt.Fprintf(&b, "line %d goes up to the end then home\r\n", i)
	}
	return b.String()
}

// Issue 9, faults 1 and 10: a 2 KB paste, bracketed or not, reaches the
// description whole (one newline per CRLF), with the live length error.
func TestPaste2KIntoTheDescription(t *testing.T) {
	text := paste2K()
	want := strings.ReplaceAll(text, "\r\n", "\n")
	for _, bracketed := range []bool{true, false} {
		t.Run(fmt.Sprintf("bracketed=%v", bracketed), func(t *testing.T) {
			st, c := newStore(t)
			d := drive(t, newModel(st, c, nil), 100, 30)
			d.keys(runes("n"))
			d.typ("pasted")
			d.keys(keyTab)
			if bracketed {
				d.paste(text)
			} else {
				d.typeBurst(text)
			}
			_, got := d.m.form.Values()
			if got != want {
				t.Fatalf("description field holds %d characters, want %d:\n%q", len([]rune(got)), len([]rune(want)), got[:min(200, len(got))])
			}
			n := len([]rune(want))
			if v := d.view(); !strings.Contains(v, fmt.Sprintf("description is %d characters long; at most 1024", n)) {
				t.Fatalf("no live length error:\n%s", v)
			}
			d.keys(keyCtrlS)
			if _, err := st.Get("pasted"); err == nil {
				t.Fatal("a description over the limit was created")
			}
		})
	}
}

// Issue 9, fault 10: a pasted CRLF is one newline.
func TestPastedCRLFIsOneNewline(t *testing.T) {
	st, c := newStore(t)
	d := drive(t, newModel(st, c, nil), 100, 30)
	d.keys(runes("n"))
	d.typ("crlf")
	d.keys(keyTab)
	d.paste("first\r\nsecond\rthird")
	d.keys(keyTab, keyTab, keySpace, keyCtrlS)
	tok, err := st.Get("crlf")
	if err != nil {
		t.Fatalf("not created: %v\n%s", err, d.view())
	}
	if tok.Description != "first\nsecond\nthird" {
		t.Errorf("description %q", tok.Description)
	}
}

// Issue 9, fault 1: a bracketed paste where no field has focus runs no keys
// and says so.
func TestPasteWithoutAFieldIsIgnoredWithAWord(t *testing.T) {
	st, c := newStore(t)
	seedDemo(t, st, c)
	d := drive(t, newModel(st, c, nil), 130, 20)
	d.paste("jjxq")
	v := d.view()
	if !strings.Contains(v, "Paste ignored: no text field has focus") {
		t.Fatalf("no word about the paste:\n%s", v)
	}
	if d.quit || !strings.Contains(cursorRow(v), "billing-export") || strings.Contains(v, "Delete") {
		t.Fatalf("the paste ran as keys:\n%s", v)
	}
	// In the filter it is text.
	d.keys(runes("/"))
	d.paste("feeds")
	if v := d.view(); !strings.Contains(v, "1 match") {
		t.Fatalf("paste into the filter:\n%s", v)
	}
}

// Issue 9, fault 3: a 46-character name was cut to 32 and created with the cut
// name. Every text field keeps what was typed or pasted.
func TestLongNameIsNeverCut(t *testing.T) {
	long := strings.Repeat("abcdefghij", 4) + "-12345" // 46 characters
	for _, how := range []string{"paste", "burst", "typed"} {
		t.Run(how, func(t *testing.T) {
			st, c := newStore(t)
			d := drive(t, newModel(st, c, nil), 120, 30)
			d.keys(runes("n"))
			switch how {
			case "paste":
				d.paste(long)
			case "burst":
				d.typeBurst(long)
			default:
				d.typ(long)
			}
			if got, _ := d.m.form.Values(); got != long {
				t.Fatalf("name field holds %q, want %q", got, long)
			}
			if v := d.view(); !strings.Contains(v, "name is 46 characters long; at most 32") {
				t.Fatalf("no live error for the long name:\n%s", v)
			}
			d.keys(keyTab, keyTab, keyTab, keySpace, keyCtrlS)
			if toks, _ := st.List(); len(toks) != 0 {
				t.Fatalf("created %v", toks)
			}
		})
	}
}

func TestFilterAndDeleteConfirmationAreNeverCut(t *testing.T) {
	st, c := newStore(t)
	name := strings.Repeat("x", store.MaxNameLen)
	seedActive(t, st, name)
	d := drive(t, newModel(st, c, nil), 120, 20)
	q := strings.Repeat("no-such-token-", 6) // 84 characters
	d.keys(runes("/"))
	d.paste(q)
	d.keys(keyEnter)
	if v := d.view(); !strings.Contains(v, "/"+q+"  0 matches") {
		t.Fatalf("the filter was cut:\n%s", v)
	}
	d.keys(keyEsc, runes("x"))
	// 72 characters that start with the name: cut at 64 they would not be it
	// either, but cut at 32 they would.
	d.paste(name + strings.Repeat("z", 40))
	d.keys(keyEnter)
	if v := d.view(); !strings.Contains(v, "That is not "+name) {
		t.Fatalf("a long answer was not refused:\n%s", v)
	}
	if toks, _ := st.List(); len(toks) != 1 {
		t.Fatalf("deleted on a wrong answer: %v", toks)
	}
}

func TestDescriptionPastePastTheFieldBoundIsRefusedWhole(t *testing.T) {
	st, c := newStore(t)
	d := drive(t, newModel(st, c, nil), 100, 30)
	d.keys(runes("n"), keyTab)
	d.paste("kept ")
	d.paste(strings.Repeat("a", 5000))
	if _, got := d.m.form.Values(); got != "kept " {
		t.Fatalf("description field holds %d characters, want the paste refused whole", len(got))
	}
	if v := d.view(); !strings.Contains(v, "not inserted") {
		t.Fatalf("no word about the refused paste:\n%s", v)
	}
}

func TestSplitKey(t *testing.T) {
	k := func(ks ...tea.KeyMsg) []tea.KeyMsg { return ks }
	for _, tt := range []struct {
		in   tea.KeyMsg
		want []tea.KeyMsg
	}{
		{runes("jjj"), k(runes("j"), runes("j"), runes("j"))},
		{runes("j"), k(runes("j"))},
		{tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("j"), Alt: true}, k(keyEsc, runes("j"))},
		{tea.KeyMsg{Type: tea.KeyBackspace, Alt: true}, k(keyEsc, tea.KeyMsg{Type: tea.KeyBackspace})},
		{tea.KeyMsg{Type: tea.KeyEnter, Alt: true}, k(keyEsc, keyEnter)},
		// alt+left comes as one CSI sequence: a real alt key.
		{tea.KeyMsg{Type: tea.KeyLeft, Alt: true}, k(tea.KeyMsg{Type: tea.KeyLeft, Alt: true})},
		{tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("a\r\nb\rc"), Paste: true}, k(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("a\nb\nc"), Paste: true})},
	} {
		got := splitKey(tt.in)
		if fmt.Sprint(got) != fmt.Sprint(tt.want) || len(got) != len(tt.want) {
			t.Errorf("splitKey(%q) = %q, want %q", tt.in, got, tt.want)
			continue
		}
		for i := range got {
			if got[i].Alt != tt.want[i].Alt || got[i].Type != tt.want[i].Type || got[i].Paste != tt.want[i].Paste {
				t.Errorf("splitKey(%q)[%d] = %#v, want %#v", tt.in, i, got[i], tt.want[i])
			}
		}
	}
}

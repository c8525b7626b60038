package tui

import (
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/storetest"
)

// tabbedDesc holds tabs, wide characters and two lines: what the text area
// would rewrite if the form let it.
const tabbedDesc = "Feeds\tfor the 東京 office\n\tsecond line 日本語"

func seedTabbed(t *testing.T, st *store.Store) {
	t.Helper()
	_, err := st.Create(tester, store.NewToken{Name: "tabbed", Description: tabbedDesc, Access: []store.Access{store.AccessSecurityDirector}})
	if err != nil {
		t.Fatal(err)
	}
}

func lastEvent(t *testing.T, st *store.Store) store.Event {
	t.Helper()
	evs, err := st.Audit(1)
	if err != nil || len(evs) != 1 {
		t.Fatalf("audit: %v %v", evs, err)
	}
	return evs[0]
}

func TestEditAccessOnlyLeavesDescriptionAlone(t *testing.T) {
	st, c := newStore(t)
	seedTabbed(t, st)
	d := drive(t, newModel(st, c, nil), 100, 30)
	d.keys(runes("e"))
	if v := d.view(); !strings.Contains(v, "Feeds⇥for the 東京 office") || !strings.Contains(v, "⇥ is a tab") {
		t.Fatalf("the form does not show the tab:\n%s", v)
	}
	d.keys(keyTab, keyTab, keyTab, keySpace, keyCtrlS) // add Third Party Feeds
	if v := d.view(); !strings.Contains(v, "Token tabbed saved") {
		t.Fatalf("no result of the edit:\n%s", v)
	}
	tok, err := st.Get("tabbed")
	if err != nil {
		t.Fatal(err)
	}
	if tok.Description != tabbedDesc {
		t.Errorf("description changed to %q, want %q", tok.Description, tabbedDesc)
	}
	if tok.AccessNames() != "security-director,third-party-feeds" {
		t.Errorf("access %q", tok.AccessNames())
	}
	ev := lastEvent(t, st)
	if ev.Action != store.ActionEdit || ev.Details != "access=security-director,third-party-feeds" {
		t.Errorf("audit event %+v, want an edit of the access only", ev)
	}
}

func TestEditDescriptionKeepsItsTabs(t *testing.T) {
	st, c := newStore(t)
	seedTabbed(t, st)
	d := drive(t, newModel(st, c, nil), 100, 30)
	d.keys(runes("e"))
	d.typ(" (EU)")
	// A pasted tab is kept too.
	d.send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("\tend"), Paste: true})
	d.keys(keyCtrlS)
	tok, err := st.Get("tabbed")
	if err != nil {
		t.Fatal(err)
	}
	if want := tabbedDesc + " (EU)\tend"; tok.Description != want {
		t.Errorf("description %q, want %q", tok.Description, want)
	}
	if ev := lastEvent(t, st); ev.Details != "description" {
		t.Errorf("audit details %q, want the description only", ev.Details)
	}
}

func TestEditWithoutChangesWritesNothing(t *testing.T) {
	st, c := newStore(t)
	seedTabbed(t, st)
	d := drive(t, newModel(st, c, nil), 100, 30)
	before := lastEvent(t, st)
	d.keys(runes("e"), keyCtrlS)
	if v := d.view(); !strings.Contains(v, "Token tabbed unchanged") {
		t.Fatalf("no word about the unchanged token:\n%s", v)
	}
	if ev := lastEvent(t, st); ev != before {
		t.Errorf("an edit without changes was audited: %+v", ev)
	}
}

// A description holding the tab mark itself is edited as it is: the mark is
// not taken for a tab.
func TestEditDescriptionWithTheTabMark(t *testing.T) {
	st, c := newStore(t)
	desc := "next ⇥ then\ttab"
	if _, err := st.Create(tester, store.NewToken{Name: "marked", Description: desc, Access: []store.Access{store.AccessSecurityDirector}}); err != nil {
		t.Fatal(err)
	}
	d := drive(t, newModel(st, c, nil), 100, 30)
	d.keys(runes("e"), keyTab, keyTab, keyTab, keySpace, keyCtrlS)
	tok, err := st.Get("marked")
	if err != nil {
		t.Fatal(err)
	}
	if tok.Description != desc || tok.AccessNames() != "security-director,third-party-feeds" {
		t.Errorf("stored %q %q", tok.Description, tok.AccessNames())
	}
}

// The limit is 1024 characters, not cells: wide characters count once.
func TestDescriptionLimitCountsCharacters(t *testing.T) {
	// On disk: an in-memory Badger refuses a record over its 1 KB value
	// threshold, and 1024 wide characters make a larger one.
	c := &clock{t: testNow}
	st, err := storetest.OpenWith(storetest.Options{Dir: t.TempDir(), Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	d := drive(t, newModel(st, c, nil), 100, 30)
	d.keys(runes("n"))
	d.typ("wide")
	d.keys(keyTab)
	remaining := func() int {
		t.Helper()
		v := d.view()
		l := lineWith(v, "characters remaining")
		if l == "" {
			return -1 << 31
		}
		n, err := strconv.Atoi(strings.Fields(l)[0])
		if err != nil {
			t.Fatalf("remaining line %q: %v", l, err)
		}
		return n
	}
	typed := ""
	for _, chunk := range []string{"日", "本語のテキスト", "\tと", strings.Repeat("日", 1000)} {
		d.typ(chunk)
		typed += chunk
		if got, want := remaining(), store.MaxDescriptionLen-utf8.RuneCountInString(typed); got != want {
			t.Fatalf("after %d characters: %d characters remaining, want %d", utf8.RuneCountInString(typed), got, want)
		}
	}
	d.typ(strings.Repeat("日", store.MaxDescriptionLen-utf8.RuneCountInString(typed)))
	if got := remaining(); got != 0 {
		t.Fatalf("at the limit: %d characters remaining, want 0:\n%s", got, d.view())
	}
	d.typ("日")
	v := d.view()
	if !strings.Contains(v, "description is 1025 characters long; at most 1024 allowed") {
		t.Fatalf("no over-limit error beside the field:\n%s", v)
	}
	d.keys(keyTab, keyTab, keySpace, keyCtrlS)
	if toks, err := st.List(); err != nil || len(toks) != 0 {
		t.Fatalf("submit over the limit created %v (%v)", toks, err)
	}
	if v := d.view(); !strings.Contains(v, "Create Application Token") || !strings.Contains(v, "at most 1024 allowed") {
		t.Fatalf("the form did not stay open with its error:\n%s", v)
	}
	d.keys(tea.KeyMsg{Type: tea.KeyBackspace}, keyCtrlS) // the refused submit focused the description
	tok, err := st.Get("wide")
	if err != nil {
		t.Fatalf("1024 characters refused: %v\n%s", err, d.view())
	}
	if n := utf8.RuneCountInString(tok.Description); n != store.MaxDescriptionLen || !strings.Contains(tok.Description, "\tと") {
		t.Errorf("stored %d characters (tab kept: %v)", n, strings.Contains(tok.Description, "\tと"))
	}
}

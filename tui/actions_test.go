package tui

import (
	"reflect"
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/apptokens/apptokens/store"
)

func TestRevealForgetsSecretOnClose(t *testing.T) {
	st, c := newStore(t)
	d := drive(t, newModel(st, c, nil), 100, 30)
	createToken(t, d)
	tok := tokenRE.FindString(d.view())
	if tok == "" {
		t.Fatalf("no token on screen:\n%s", d.view())
	}
	if findString(reflect.ValueOf(d.m), tok, map[uintptr]bool{}) == "" {
		t.Fatal("findString does not see the token while it is shown")
	}
	d.keys(runes("c"))
	if !strings.Contains(d.view(), "Copying is not available") && !strings.Contains(d.view(), "copying is not available") {
		t.Errorf("copy without a clipboard should say it is unavailable:\n%s", d.view())
	}
	d.keys(keyEnter, runes("n"))
	if !strings.Contains(d.view(), tok) {
		t.Fatal("n should keep the reveal open")
	}
	d.keys(keyEnter, runes("y"))
	if strings.Contains(d.view(), tok) {
		t.Fatal("token still on screen")
	}
	if p := findString(reflect.ValueOf(d.m), tok, map[uintptr]bool{}); p != "" {
		t.Fatalf("token still in the model at %s", p)
	}
}

func TestMouse(t *testing.T) {
	st, c := newStore(t)
	seedDemo(t, st, c)
	d := drive(t, newModel(st, c, nil), 130, 20)
	click := func(x, y int) {
		d.send(tea.MouseMsg{X: x, Y: y, Action: tea.MouseActionPress, Button: tea.MouseButtonLeft})
	}
	click(3, 5) // check box of the third row
	if v := d.view(); !strings.Contains(v, "> [x] siem-connector") || !strings.Contains(v, "1 selected") {
		t.Fatalf("click on the check box did not select the row:\n%s", v)
	}
	click(40, 3) // elsewhere on the first row: moves the cursor only
	if v := d.view(); !strings.Contains(v, "> [ ] billing-export") || !strings.Contains(v, "1 selected") {
		t.Fatalf("click on a row did not move the cursor:\n%s", v)
	}
	click(8, 4) // the name of the second row opens it
	if v := d.view(); !strings.Contains(v, "Token feeds-sync") || !strings.Contains(v, "203.0.113.7") {
		t.Fatalf("click on a name did not open its usage:\n%s", v)
	}
	d.keys(keyEsc)
	if v := d.view(); !strings.Contains(v, "> [ ] feeds-sync") || !strings.Contains(v, "[x] siem-connector") {
		t.Fatalf("esc did not come back to the same place:\n%s", v)
	}
}

func TestFormEscAsksOnlyWhenChanged(t *testing.T) {
	st, c := newStore(t)
	d := drive(t, newModel(st, c, nil), 100, 30)
	d.keys(runes("n"), keyEsc)
	if v := d.view(); !strings.Contains(v, "No tokens yet") {
		t.Fatalf("esc on an untouched form should leave it:\n%s", v)
	}
	d.keys(runes("n"))
	d.typ("half-typed")
	d.keys(keyEsc)
	if v := d.view(); !strings.Contains(v, "Discard the new token?") {
		t.Fatalf("esc after typing should ask:\n%s", v)
	}
	d.keys(runes("n"))
	if v := d.view(); !strings.Contains(v, "half-typed") {
		t.Fatalf("n should go back to the form with what was typed:\n%s", v)
	}
	d.keys(keyEsc, runes("y"))
	if v := d.view(); !strings.Contains(v, "No tokens yet") {
		t.Fatalf("y should discard the form:\n%s", v)
	}
}

func TestFormSubmitWithEnterOnOKAndKeepsTypingOnStoreError(t *testing.T) {
	st, c := newStore(t)
	seedDemo(t, st, c)
	d := drive(t, newModel(st, c, nil), 100, 30)
	d.keys(runes("n"))
	d.typ("FEEDS-sync")
	d.keys(keyTab)
	d.typ("kept")
	d.keys(keyTab, keyTab, keyTab, keySpace, keyTab, keyEnter) // Third Party Feeds, then enter on OK
	v := d.view()
	if !strings.Contains(v, `name "FEEDS-sync" is already taken`) || !strings.Contains(v, "kept") || !strings.Contains(v, "[x] Third Party Feeds") {
		t.Fatalf("store error not beside the name, or typing lost:\n%s", v)
	}
	d.typ("2")
	d.keys(keyCtrlS)
	if v := d.view(); !strings.Contains(v, "Token FEEDS-sync2 created") {
		t.Fatalf("fixed name not created:\n%s", v)
	}
	tok, err := st.Get("FEEDS-sync2")
	if err != nil || tok.Description != "kept" || tok.AccessNames() != "third-party-feeds" {
		t.Fatalf("stored %+v, %v", tok, err)
	}
}

func TestEditDescriptionAndAccess(t *testing.T) {
	st, c := newStore(t)
	seedDemo(t, st, c)
	d := drive(t, newModel(st, c, nil), 100, 30)
	d.keys(keyDown, runes("e"))
	d.typ(", EU")
	d.keys(keyTab, keyTab, keySpace, keyCtrlS) // drop Security Director
	if v := d.view(); !strings.Contains(v, "Token feeds-sync saved") {
		t.Fatalf("no result of the edit:\n%s", v)
	}
	tok, err := st.Get("feeds-sync")
	if err != nil {
		t.Fatal(err)
	}
	if tok.Description != "Pulls threat feeds every 5 minutes, EU" || tok.AccessNames() != "third-party-feeds" {
		t.Fatalf("edit stored %q %q", tok.Description, tok.AccessNames())
	}
}

func TestDeleteNeedsTheName(t *testing.T) {
	st, c := newStore(t)
	seedDemo(t, st, c)
	d := drive(t, newModel(st, c, nil), 100, 30)
	d.keys(keyDown, runes("x"))
	d.typ("feeds-syn")
	d.keys(keyEnter)
	if _, err := st.Get("feeds-sync"); err != nil {
		t.Fatal("deleted without the whole name")
	}
	d.typ("c")
	d.keys(keyEnter)
	if v := d.view(); !strings.Contains(v, "1 token deleted") || strings.Contains(v, "feeds-sync") {
		t.Fatalf("delete not shown:\n%s", v)
	}
	if _, err := st.Get("feeds-sync"); err == nil {
		t.Fatal("feeds-sync still stored")
	}
}

func TestDeleteSeveralNeedsTheWord(t *testing.T) {
	st, c := newStore(t)
	seedDemo(t, st, c)
	d := drive(t, newModel(st, c, nil), 100, 30)
	d.keys(runes("A"), runes("x"))
	if v := d.view(); !strings.Contains(v, "Type delete and press enter") {
		t.Fatalf("several tokens should ask for the word delete:\n%s", v)
	}
	d.typ("delete")
	d.keys(keyEnter)
	if v := d.view(); !strings.Contains(v, "3 tokens deleted") || !strings.Contains(v, "No tokens yet") {
		t.Fatalf("delete of all not shown:\n%s", v)
	}
}

func TestActivateCursorRowAndDeclineDeactivate(t *testing.T) {
	st, c := newStore(t)
	seedDemo(t, st, c)
	d := drive(t, newModel(st, c, nil), 130, 20)
	d.keys(runes("G"), runes("a")) // siem-connector, deactivated
	if v := d.view(); !strings.Contains(v, "1 token activated") || !strings.Contains(v, "> [ ] siem-connector  Active") {
		t.Fatalf("activate not shown:\n%s", v)
	}
	d.keys(runes("d"), runes("n"))
	if tok, _ := st.Get("siem-connector"); !tok.Active {
		t.Fatal("n still deactivated")
	}
	if v := d.view(); !strings.Contains(v, "Cancelled") {
		t.Fatalf("no word about the cancel:\n%s", v)
	}
}

func TestFilterAndSort(t *testing.T) {
	st, c := newStore(t)
	seedDemo(t, st, c)
	d := drive(t, newModel(st, c, nil), 130, 20)
	d.keys(runes("/"))
	d.typ("invoices") // matches the description of billing-export
	v := d.view()
	if !strings.Contains(v, "billing-export") || strings.Contains(v, "feeds-sync") || !strings.Contains(v, "1 match") {
		t.Fatalf("filter on description:\n%s", v)
	}
	d.typ("q") // typing q in the filter does not quit
	if v := d.view(); !strings.Contains(v, `No token matches "invoicesq"`) {
		t.Fatalf("q should be typed into the filter:\n%s", v)
	}
	d.keys(keyEsc)
	if v := d.view(); !strings.Contains(v, "siem-connector") {
		t.Fatalf("esc should clear the filter:\n%s", v)
	}
	order := func() []string {
		var names []string
		for _, l := range strings.Split(d.view(), "\n")[3:6] {
			names = append(names, strings.Fields(l[5:])[0])
		}
		return names
	}
	for _, want := range [][]string{
		{"siem-connector", "feeds-sync", "billing-export"}, // created, newest first
		{"feeds-sync", "billing-export", "siem-connector"}, // last used
		{"billing-export", "feeds-sync", "siem-connector"}, // name
	} {
		d.keys(runes("s"))
		if got := order(); !reflect.DeepEqual(got, want) {
			t.Fatalf("order %v, want %v", got, want)
		}
	}
}

func TestAuditScreenShowsActions(t *testing.T) {
	st, c := newStore(t)
	seedDemo(t, st, c)
	d := drive(t, newModel(st, c, nil), 100, 20)
	d.keys(runes("L"))
	v := d.view()
	if !strings.Contains(v, "Audit log") || !strings.Contains(v, "block") || !strings.Contains(v, "ip=198.51.100.23") {
		t.Fatalf("audit screen:\n%s", v)
	}
	if _, err := st.SetActive(store.Actor{User: "other\x1b[2J"}, []string{"feeds-sync"}, false); err != nil {
		t.Fatal(err)
	}
	d.send(tea.KeyMsg{Type: tea.KeyDown}) // any message lets the driver deliver the change
	v = d.view()
	if !strings.Contains(v, `other\x1b[2J`) || strings.Contains(v, "\x1b[2J") {
		t.Fatalf("new event not shown, or the actor not escaped:\n%q", v)
	}
	d.keys(keyEsc)
	if v := d.view(); !strings.Contains(v, "Application Tokens") {
		t.Fatalf("esc from audit:\n%s", v)
	}
}

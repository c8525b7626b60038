package tui

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/tui/common"
)

var keyCtrlC = tea.KeyMsg{Type: tea.KeyCtrlC}

// Issue 9, fault 2: ctrl+c on the reveal quit at once: the token was created
// and nobody had its secret. It asks as closing does; n keeps the reveal, y
// closes it and quits.
func TestCtrlCOnTheRevealAsks(t *testing.T) {
	st, c := newStore(t)
	d := drive(t, newModel(st, c, nil), 100, 30)
	createToken(t, d)
	tok := tokenRE.FindString(d.view())
	d.keys(keyCtrlC)
	v := d.view()
	if d.quit {
		t.Fatal("ctrl+c on the reveal quit at once")
	}
	if !strings.Contains(v, "Close? You will not be able to see this token again.") || !strings.Contains(v, tok) {
		t.Fatalf("ctrl+c did not ask as closing asks:\n%s", v)
	}
	d.keys(runes("n"))
	if d.quit || !strings.Contains(d.view(), tok) {
		t.Fatalf("n should keep the reveal open:\n%s", d.view())
	}
	d.keys(keyCtrlC, runes("y"))
	if !d.quit {
		t.Fatal("y after ctrl+c should quit")
	}
	if strings.Contains(d.view(), tok) {
		t.Fatal("the token is still on screen")
	}
}

// Issue 9, fault 2: ctrl+c in a form with typed changes quit without the
// question esc asks.
func TestCtrlCInAChangedFormAsks(t *testing.T) {
	st, c := newStore(t)
	seedDemo(t, st, c)
	d := drive(t, newModel(st, c, nil), 100, 30)
	d.keys(runes("n"))
	d.typ("half-typed")
	d.keys(keyCtrlC)
	if d.quit || !strings.Contains(d.view(), "Discard the new token?") {
		t.Fatalf("ctrl+c with changes should ask (quit=%v):\n%s", d.quit, d.view())
	}
	d.keys(runes("n"))
	if got, _ := d.m.form.Values(); d.quit || got != "half-typed" {
		t.Fatalf("n should keep the form and what was typed (quit=%v, name %q)", d.quit, got)
	}
	d.keys(keyCtrlC, keyCtrlC) // asked again, not quit
	if d.quit {
		t.Fatal("a second ctrl+c quit without an answer")
	}
	d.keys(runes("y"))
	if !d.quit {
		t.Fatal("y should discard and quit")
	}

	// Without changes, or on the table, it quits.
	for _, open := range [][]tea.KeyMsg{{runes("e")}, nil} {
		d := drive(t, newModel(st, c, nil), 100, 30)
		d.keys(open...)
		d.keys(keyCtrlC)
		if !d.quit {
			t.Fatalf("ctrl+c after %v should quit:\n%s", open, d.view())
		}
	}
}

// panicky is a modal that panics where told.
type panicky struct {
	inUpdate, inView bool
}

func (p *panicky) Init() tea.Cmd { return nil }
func (p *panicky) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	if _, ok := msg.(tea.KeyMsg); ok && p.inUpdate {
		panic(errors.New("update exploded"))
	}
	if k, ok := msg.(tea.KeyMsg); ok && k.Type == tea.KeyEsc {
		return p, func() tea.Msg { return common.CloseModalMsg{} }
	}
	return p, nil
}
func (p *panicky) View() string {
	if p.inView {
		panic("cannot draw")
	}
	return "fine"
}
func (p *panicky) SetSize(int, int)          {}
func (p *panicky) Typing() bool              { return false }
func (p *panicky) ShortHelp() []key.Binding  { return nil }
func (p *panicky) FullHelp() [][]key.Binding { return nil }

// panicStore panics in UsageID: a command that panics.
type panicStore struct{ *store.Store }

func (panicStore) UsageID(string) ([]store.Usage, error) { panic(errors.New("usage exploded")) }

// Issue 9, fault 9: a panic in Update, View or a command killed the session
// and went to the server's stdout. It is logged with the session's identity,
// shown, and the session goes on.
func TestPanicsAreRecoveredLoggedAndShown(t *testing.T) {
	st, c := newStore(t)
	seedDemo(t, st, c)
	var logs bytes.Buffer
	newM := func(s Store) *Model {
		return New(Deps{Store: s, Actor: store.Actor{User: "alice", Fingerprint: "SHA256:abc"}, Renderer: asciiRenderer(), Now: c.Now,
			Logger: slog.New(slog.NewTextHandler(&logs, nil))}).(*Model)
	}
	check := func(where, shown string, d *driver, next string) {
		t.Helper()
		v := d.view()
		if !strings.Contains(v, "Internal error ("+where+")") || !strings.Contains(v, shown) {
			t.Fatalf("%s: the panic is not shown:\n%s", where, v)
		}
		if l := logs.String(); !strings.Contains(l, "recovered from a panic") || !strings.Contains(l, "where="+where) ||
			!strings.Contains(l, "SHA256:abc") || !strings.Contains(l, "goroutine") {
			t.Fatalf("%s: not logged with the identity and stack:\n%s", where, l)
		}
		logs.Reset()
		// The session goes on.
		d.keys(keyEsc, keyDown)
		if r := cursorRow(d.view()); !strings.Contains(r, next) {
			t.Fatalf("%s: the session did not go on:\n%s", where, d.view())
		}
	}

	d := drive(t, newM(st), 130, 20)
	d.m.modal = &panicky{inUpdate: true}
	d.keys(runes("y"))
	d.m.modal.(*panicky).inUpdate = false
	check("update", "update exploded", d, "feeds-sync")

	d = drive(t, newM(st), 130, 20)
	d.m.modal = &panicky{inView: true}
	if v := d.view(); !strings.Contains(v, "could not be drawn") {
		t.Fatalf("view: %s", v)
	}
	check("view", "cannot draw", d, "feeds-sync")

	d = drive(t, newM(panicStore{st}), 130, 20)
	d.keys(keyDown, keyEnter) // opening usage runs the panicking load
	check("command", "usage exploded", d, "siem-connector")
}

// Issue 9, fault 10: a click below the last drawn row (the status line above
// the help) moved the cursor to a row not on screen, on every table screen.
func TestClickBelowTheRowsMovesNothing(t *testing.T) {
	st, c := newStore(t)
	var names []string
	for i := range 30 {
		names = append(names, fmt.Sprintf("tok-%02d", i))
	}
	seedActive(t, st, names...)
	tok, err := st.Get("tok-00")
	if err != nil {
		t.Fatal(err)
	}
	var deltas []store.UsageDelta
	for i := range 30 {
		deltas = append(deltas, store.UsageDelta{TokenID: tok.ID, IP: fmt.Sprintf("192.0.2.%d", i+1),
			FirstUsedAt: testNow.Add(-time.Duration(i+1) * time.Hour), LastUsedAt: testNow.Add(-time.Duration(i+1) * time.Hour), Allowed: 1})
	}
	if _, err := st.RecordUsage(deltas); err != nil {
		t.Fatal(err)
	}
	const w, h = 120, 15 // the body is 13 lines: the rows are on lines 3 to 12
	d := drive(t, newModel(st, c, nil), w, h)
	click := func(y int) {
		d.send(tea.MouseMsg{X: 30, Y: y, Action: tea.MouseActionPress, Button: tea.MouseButtonLeft})
	}
	for _, screen := range []struct {
		name    string
		open    []tea.KeyMsg
		first   string
		lastRow int // the line of the last drawn row
	}{
		{"tokens", nil, "tok-00", 12},
		{"usage", []tea.KeyMsg{runes("g"), keyEnter}, "192.0.2.1 ", 12},
		// The audit screen details the selected event on its last lines.
		{"audit", []tea.KeyMsg{keyEsc, runes("L")}, "create", 9},
	} {
		d.keys(screen.open...)
		before := cursorRow(d.view())
		if !strings.Contains(before, screen.first) {
			t.Fatalf("%s: cursor not on the first row:\n%s", screen.name, d.view())
		}
		for y := screen.lastRow + 1; y <= 15; y++ {
			click(y)
			if got := cursorRow(d.view()); got != before {
				t.Fatalf("%s: a click on line %d moved the cursor to %q:\n%s", screen.name, y, got, d.view())
			}
		}
		click(screen.lastRow)
		if got := cursorRow(d.view()); got == before || got == "" {
			t.Fatalf("%s: a click on the last drawn row did not move the cursor:\n%s", screen.name, d.view())
		}
	}
}

// A key that waits for a command holds the keys after it; ctrl+c does not
// wait: it is the way out of a command that hangs.
func TestKeysWaitForAnEarlierCommandButCtrlCDoesNot(t *testing.T) {
	st, c := newStore(t)
	seedDemo(t, st, c)
	m := newModel(st, c, nil)
	d := drive(t, m, 130, 20)
	_, cmd := m.Update(runes("nab")) // n opens the form through a command
	if cmd == nil || !m.waitingKeys || len(m.pendingKeys) != 2 {
		t.Fatalf("the keys after n do not wait (waiting=%v, pending=%d)", m.waitingKeys, len(m.pendingKeys))
	}
	m.Update(runes("c"))
	if len(m.pendingKeys) != 3 {
		t.Fatalf("a key that came meanwhile did not queue: %d pending", len(m.pendingKeys))
	}
	if _, q := m.Update(keyCtrlC); q == nil {
		t.Fatal("ctrl+c waited behind the queued keys")
	}
	d.run(cmd)
	if got, _ := m.form.Values(); got != "abc" {
		t.Fatalf("the queued keys went to %q, want abc in the form's name", got)
	}
}

package tui

import (
	"io"
	"os"
	"reflect"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
	"github.com/muesli/termenv"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/storetest"
	"github.com/apptokens/apptokens/tui/tokenset"
)

func TestMain(m *testing.M) {
	lipgloss.SetColorProfile(termenv.Ascii)
	code := m.Run()
	closeBenchStores()
	os.Exit(code)
}

// testNow is the fixed "now" of every test.
var testNow = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// clock is a settable clock shared by the store and the model.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

var tester = store.Actor{User: "tester"}

var keyBackspace = tea.KeyMsg{Type: tea.KeyBackspace}

// newStore opens an in-memory Badger store on a fixed clock.
func newStore(t testing.TB) (*store.Store, *clock) {
	t.Helper()
	c := &clock{t: testNow}
	st, err := storetest.OpenWith(storetest.Options{InMemory: true, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st, c
}

func asciiRenderer() *lipgloss.Renderer {
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.Ascii)
	return r
}

func newModel(st Store, c *clock, clipboard io.Writer) *Model {
	return New(Deps{Store: st, Actor: tester, Renderer: asciiRenderer(), Now: c.Now, Clipboard: clipboard}).(*Model)
}

// seedDemo creates tokens at different times, with usage and one blocked IP.
func seedDemo(t testing.TB, st *store.Store, c *clock) {
	t.Helper()
	create := func(at time.Time, name, desc string, access ...store.Access) store.Token {
		c.Set(at)
		cr, err := st.Create(tester, store.NewToken{Name: name, Description: desc, Access: access})
		if err != nil {
			t.Fatal(err)
		}
		return cr.Token
	}
	day := 24 * time.Hour
	create(testNow.Add(-40*day), "billing-export", "Nightly export of invoices\nto the finance share", store.AccessThirdPartyFeeds)
	feeds := create(testNow.Add(-12*day), "feeds-sync", "Pulls threat feeds every 5 minutes", store.AccessSecurityDirector, store.AccessThirdPartyFeeds)
	create(testNow.Add(-3*day), "siem-connector", "SIEM forwarder, EU region", store.AccessSecurityDirector)
	c.Set(testNow)
	if _, err := st.SetActive(tester, []string{"siem-connector"}, false); err != nil {
		t.Fatal(err)
	}
	_, err := st.RecordUsage([]store.UsageDelta{
		{TokenID: feeds.ID, IP: "203.0.113.7", FirstUsedAt: testNow.Add(-10 * day), LastUsedAt: testNow.Add(-2 * time.Hour), Allowed: 1520, Denied: 3},
		{TokenID: feeds.ID, IP: "198.51.100.23", FirstUsedAt: testNow.Add(-5 * day), LastUsedAt: testNow.Add(-26 * time.Hour), Allowed: 87},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.SetBlocked(tester, "feeds-sync", []string{"198.51.100.23"}, true); err != nil {
		t.Fatal(err)
	}
}

// driver runs a model without a program, applying every command's message in turn.
// The shared token set and committed changes reach it through the model's watch,
// brought up to date (Hub.Sync) and delivered after each message as the root's
// feed would deliver them.
type driver struct {
	t testing.TB
	m *Model
	w *tokenset.Watch
	// quit is set when a command asked the program to quit.
	quit bool
}

func drive(t testing.TB, m *Model, w, h int) *driver {
	t.Helper()
	d := &driver{t: t, m: m, w: m.watching()}
	t.Cleanup(func() { _ = m.Close() })
	// Init without the watch's wait, which blocks: flows with a real program
	// (teatest) cover the feed.
	d.run(m.tokens.Init())
	d.send(tea.WindowSizeMsg{Width: w, Height: h})
	return d
}

// blockWait is how long a command may take: none should block.
const blockWait = 10 * time.Second

func (d *driver) send(msg tea.Msg) {
	d.t.Helper()
	_, cmd := d.m.Update(msg)
	d.run(cmd)
	d.m.hub.Sync()
	select {
	case _, ok := <-d.w.C():
		if ok {
			d.send(changesMsg(d.w.Take()))
		}
	default:
	}
}

func (d *driver) run(cmd tea.Cmd) {
	d.t.Helper()
	queue := []tea.Cmd{cmd}
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		if c == nil {
			continue
		}
		msg, ok := call(c)
		if !ok {
			d.t.Fatalf("a command blocked for %s", blockWait)
		}
		switch msg := msg.(type) {
		case nil:
			continue
		case tea.QuitMsg:
			d.quit = true
			continue
		case tea.BatchMsg:
			queue = append(queue, msg...)
			continue
		}
		if v := reflect.ValueOf(msg); v.Kind() == reflect.Slice && v.Type().Elem() == reflect.TypeOf(tea.Cmd(nil)) {
			// tea.Sequence: run in order.
			for i := 0; i < v.Len(); i++ {
				queue = append(queue, v.Index(i).Interface().(tea.Cmd))
			}
			continue
		}
		_, next := d.m.Update(msg)
		queue = append(queue, next)
	}
}

func call(c tea.Cmd) (tea.Msg, bool) {
	ch := make(chan tea.Msg, 1)
	go func() { ch <- c() }()
	select {
	case msg := <-ch:
		return msg, true
	case <-time.After(blockWait):
		return nil, false
	}
}

func (d *driver) keys(ks ...tea.KeyMsg) {
	d.t.Helper()
	for _, k := range ks {
		d.send(k)
	}
}

func (d *driver) typ(s string) {
	d.t.Helper()
	for _, r := range s {
		if r == ' ' {
			d.send(tea.KeyMsg{Type: tea.KeySpace, Runes: []rune{' '}})
			continue
		}
		d.send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}})
	}
}

func (d *driver) view() string { return ansi.Strip(d.m.View()) }

var (
	keyDown  = tea.KeyMsg{Type: tea.KeyDown}
	keyEnter = tea.KeyMsg{Type: tea.KeyEnter}
	keyEsc   = tea.KeyMsg{Type: tea.KeyEsc}
	keyTab   = tea.KeyMsg{Type: tea.KeyTab}
	keySpace = tea.KeyMsg{Type: tea.KeySpace, Runes: []rune{' '}}
	keyCtrlS = tea.KeyMsg{Type: tea.KeyCtrlS}
)

func runes(s string) tea.KeyMsg { return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(s)} }

// burst is how Bubble Tea v1 reports text that arrives in one read from the
// terminal (fast typing, key repeat over SSH, a paste without bracketed
// paste): as its input parser does (detectOneMsg), every run of printable
// characters is ONE KeyRunes message, a space is the space key, a CR is enter, an LF is ctrl+j,
// a tab is tab, and ESC before a character is that character with Alt.
func burst(s string) []tea.KeyMsg {
	var out []tea.KeyMsg
	var word []rune
	flush := func() {
		if len(word) > 0 {
			out = append(out, tea.KeyMsg{Type: tea.KeyRunes, Runes: word})
			word = nil
		}
	}
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		switch r := rs[i]; r {
		case ' ':
			flush()
			out = append(out, keySpace)
		case '\r':
			flush()
			out = append(out, keyEnter)
		case '\n':
			flush()
			out = append(out, tea.KeyMsg{Type: tea.KeyCtrlJ})
		case '\t':
			flush()
			out = append(out, keyTab)
		case '\x1b':
			flush()
			if i+1 < len(rs) && rs[i+1] > ' ' {
				out = append(out, tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{rs[i+1]}, Alt: true})
				i++
			} else {
				out = append(out, keyEsc)
			}
		default:
			word = append(word, r)
		}
	}
	flush()
	return out
}

// typeBurst sends text as one read from the terminal would deliver it.
func (d *driver) typeBurst(s string) {
	d.t.Helper()
	d.keys(burst(s)...)
}

// paste sends text as a bracketed paste.
func (d *driver) paste(s string) {
	d.t.Helper()
	d.send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(s), Paste: true})
}

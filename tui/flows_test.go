package tui

import (
	"bytes"
	"encoding/base64"
	"reflect"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/teatest"

	"github.com/apptokens/apptokens/internal/secret"
	"github.com/apptokens/apptokens/store"
)

// flowTimeout is generous: the flows run under -race on two cores.
const flowTimeout = 15 * time.Second

func startFlow(t *testing.T, m *Model) *teatest.TestModel {
	t.Helper()
	return teatest.NewTestModel(t, m, teatest.WithInitialTermSize(100, 30))
}

// waitFor waits until the output written since the last wait contains every text.
func waitFor(t *testing.T, tm *teatest.TestModel, texts ...string) []byte {
	t.Helper()
	var seen []byte
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool {
		seen = b
		for _, s := range texts {
			if !bytes.Contains(b, []byte(s)) {
				return false
			}
		}
		return true
	}, teatest.WithDuration(flowTimeout), teatest.WithCheckInterval(10*time.Millisecond))
	return seen
}

func finish(t *testing.T, tm *teatest.TestModel) *Model {
	t.Helper()
	tm.Type("q")
	m := tm.FinalModel(t, teatest.WithFinalTimeout(flowTimeout)).(*Model)
	// Quitting cancelled the subscription: its channel is closed, so the
	// goroutine waiting on it has ended.
	select {
	case _, ok := <-m.watch.C():
		if ok {
			t.Error("subscription still open after quit")
		}
	case <-time.After(flowTimeout):
		t.Error("subscription still open after quit")
	}
	return m
}

func send(tm *teatest.TestModel, ks ...tea.KeyMsg) {
	for _, k := range ks {
		tm.Send(k)
	}
}

func TestFlowCreateRevealClose(t *testing.T) {
	st, c := newStore(t)
	var clip bytes.Buffer
	tm := startFlow(t, newModel(st, c, &clip))
	waitFor(t, tm, "Press n to create one")

	tm.Type("n")
	waitFor(t, tm, "Create Application Token")
	tm.Type("ci-runner")
	send(tm, keyTab)
	tm.Type("Builds and deploys")
	send(tm, keyTab, keyTab, keySpace, keyCtrlS)
	out := waitFor(t, tm, "it will not be shown again")
	tok := tokenRE.Find(out)
	if tok == nil {
		t.Fatalf("no whole token on screen:\n%s", out)
	}
	if _, err := secret.Parse(string(tok)); err != nil {
		t.Fatalf("revealed token %s does not parse: %v", secret.HintOf(string(tok)), err)
	}
	got, err := st.List()
	if err != nil || len(got) != 1 || got[0].Digest != secret.DigestOf(string(tok)) {
		t.Fatalf("the revealed token is not the stored one: %v %v", got, err)
	}

	tm.Type("c")
	waitFor(t, tm, "Copied to the clipboard")
	send(tm, keyEnter)
	waitFor(t, tm, "Close? You will not be able to see this token again.")
	tm.Type("y")
	waitFor(t, tm, "its secret is no longer shown anywhere", "ci-runner")

	m := finish(t, tm)
	want := "\x1b]52;c;" + base64.StdEncoding.EncodeToString(tok) + "\a"
	if clip.String() != want {
		t.Errorf("clipboard got %q, want the OSC 52 sequence of the token", clip.String())
	}
	view := ansi.Strip(m.View())
	if strings.Contains(view, string(tok)) {
		t.Error("the token is still on screen after closing")
	}
	// A table row, not the status line ("Token ci-runner created; …").
	if row := lineWith(view, "] ci-runner"); !strings.Contains(row, "Active") {
		t.Errorf("new token not in the table as Active:\n%s", view)
	}
	if path := findString(reflect.ValueOf(m), string(tok), map[uintptr]bool{}); path != "" {
		t.Errorf("the token is still held by the model at %s", path)
	}
}

// findString walks v (exported and unexported fields alike) and returns the path
// of the first string that contains s, or "".
// The store is skipped: it holds only digests (checked above), and its database
// goroutines are still running.
func findString(v reflect.Value, s string, seen map[uintptr]bool) string {
	if v.IsValid() && v.Type().PkgPath() == "github.com/apptokens/apptokens/store" &&
		(v.Type().Name() == "Store" || v.Type().Name() == "Subscription") {
		return ""
	}
	switch v.Kind() {
	case reflect.String:
		if strings.Contains(v.String(), s) {
			return "(string)"
		}
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return ""
		}
		if v.Kind() == reflect.Pointer {
			if seen[v.Pointer()] {
				return ""
			}
			seen[v.Pointer()] = true
		}
		return findString(v.Elem(), s, seen)
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if p := findString(v.Field(i), s, seen); p != "" {
				return "." + v.Type().Field(i).Name + p
			}
		}
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8 {
			if bytes.Contains(v.Bytes(), []byte(s)) {
				return "([]byte)"
			}
			return ""
		}
		if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Int32 {
			rs := make([]rune, v.Len())
			for i := range rs {
				rs[i] = rune(v.Index(i).Int())
			}
			if strings.Contains(string(rs), s) {
				return "([]rune)"
			}
			return ""
		}
		for i := 0; i < v.Len(); i++ {
			if p := findString(v.Index(i), s, seen); p != "" {
				return "[" + string(rune('0'+i%10)) + "]" + p
			}
		}
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			if p := findString(it.Key(), s, seen); p != "" {
				return "{key}" + p
			}
			if p := findString(it.Value(), s, seen); p != "" {
				return "{value}" + p
			}
		}
	}
	return ""
}

func TestFindStringSeesUnexportedFields(t *testing.T) {
	type inner struct{ tok secret.Token }
	v := struct{ p *inner }{p: &inner{tok: "aptk_secret"}}
	if findString(reflect.ValueOf(v), "aptk_secret", map[uintptr]bool{}) == "" {
		t.Fatal("findString missed a secret in an unexported field")
	}
}

// seedActive creates active tokens now.
func seedActive(t *testing.T, st *store.Store, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := st.Create(tester, store.NewToken{Name: n, Access: []store.Access{store.AccessSecurityDirector}}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFlowDeactivateTwoSelected(t *testing.T) {
	st, c := newStore(t)
	seedActive(t, st, "alpha", "beta", "gamma")
	tm := startFlow(t, newModel(st, c, nil))
	waitFor(t, tm, "3 tokens, 3 active", "gamma")

	send(tm, keySpace, keyDown, keySpace)
	tm.Type("d")
	waitFor(t, tm, "Deactivate 2 tokens? (alpha, beta)", "will be refused")
	tm.Type("y")
	waitFor(t, tm, "2 tokens deactivated", "3 tokens, 1 active")

	m := finish(t, tm)
	view := ansi.Strip(m.View())
	n := 0
	for _, l := range strings.Split(view, "\n") {
		if strings.Contains(l, "] ") && strings.Contains(l, " Inactive ") {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d rows Inactive, want 2:\n%s", n, view)
	}
	for _, n := range []string{"alpha", "beta"} {
		tok, err := st.Get(n)
		if err != nil || tok.Active {
			t.Errorf("%s still active in the store (%v)", n, err)
		}
	}
}

func TestFlowBlockUnblock(t *testing.T) {
	st, c := newStore(t)
	seedDemo(t, st, c)
	tm := startFlow(t, newModel(st, c, nil))
	waitFor(t, tm, "siem-connector")

	send(tm, keyDown, keyEnter)
	waitFor(t, tm, "Token feeds-sync", "203.0.113.7")
	tm.Type("b")
	waitFor(t, tm, "1 IP address blocked for feeds-sync", "2 blocked")
	if !blocked(t, st, "203.0.113.7") {
		t.Fatal("203.0.113.7 not blocked in the store")
	}
	tm.Type("u")
	waitFor(t, tm, "1 IP address unblocked for feeds-sync", "1 blocked")
	if blocked(t, st, "203.0.113.7") {
		t.Fatal("203.0.113.7 still blocked in the store")
	}
	send(tm, keyEsc)
	waitFor(t, tm, "> [ ] feeds-sync")
	finish(t, tm)
}

func blocked(t *testing.T, st *store.Store, ip string) bool {
	t.Helper()
	us, err := st.Usage("feeds-sync")
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range us {
		if u.IP == ip {
			return u.Blocked
		}
	}
	t.Fatalf("no usage for %s", ip)
	return false
}

func TestFlowOutsideChangeAppearsWithoutKey(t *testing.T) {
	st, c := newStore(t)
	seedDemo(t, st, c)
	tm := startFlow(t, newModel(st, c, nil))
	waitFor(t, tm, "siem-connector")
	// Select billing-export, put the cursor on feeds-sync.
	send(tm, keySpace, keyDown)
	waitFor(t, tm, "1 selected")

	// Another session creates a token that sorts first, and the gate records usage.
	if _, err := st.Create(store.Actor{User: "other"}, store.NewToken{Name: "aaa-outside", Access: []store.Access{store.AccessThirdPartyFeeds}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, tm, "aaa-outside", "4 tokens, 2 active")
	if _, err := st.SetActive(store.Actor{User: "other"}, []string{"feeds-sync"}, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, tm, "4 tokens, 1 active")

	m := finish(t, tm)
	view := ansi.Strip(m.View())
	for _, want := range []string{"> [ ] feeds-sync      Inactive", "  [x] billing-export", "1 selected"} {
		if !strings.Contains(view, want) {
			t.Errorf("view lacks %q (cursor or selection lost):\n%s", want, view)
		}
	}
}

func TestFlowUsageUpdatesLive(t *testing.T) {
	st, c := newStore(t)
	seedDemo(t, st, c)
	tm := startFlow(t, newModel(st, c, nil))
	waitFor(t, tm, "siem-connector")
	send(tm, keyDown, keyEnter)
	waitFor(t, tm, "203.0.113.7")
	tok, err := st.Get("feeds-sync")
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.RecordUsage([]store.UsageDelta{{TokenID: tok.ID, IP: "192.0.2.44", FirstUsedAt: testNow, LastUsedAt: testNow, Allowed: 1}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, tm, "192.0.2.44", "3 IP addresses")
	finish(t, tm)
}

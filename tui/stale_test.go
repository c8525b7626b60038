package tui

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/apptokens/apptokens/store"
)

// flakyStore fails its reads while fail is above zero, counting down.
type flakyStore struct {
	*store.Store
	fail atomic.Int32
}

var errFlaky = errors.New("disk on fire")

func (f *flakyStore) failing() bool { return f.fail.Add(-1) >= 0 }

func (f *flakyStore) EachToken(fn func(store.Token) error) error {
	if f.failing() {
		return errFlaky
	}
	return f.Store.EachToken(fn)
}

func (f *flakyStore) GetByID(id string) (store.Token, error) {
	if f.failing() {
		return store.Token{}, errFlaky
	}
	return f.Store.GetByID(id)
}

func (f *flakyStore) Audit(limit int) ([]store.Event, error) {
	if f.failing() {
		return nil, errFlaky
	}
	return f.Store.Audit(limit)
}

// Issue 9, fault 8: a failed fetch dropped the changes it had taken: the table
// stayed stale until the next change. It retries after a pause and says so.
func TestFailedLoadRetriesAndSaysSo(t *testing.T) {
	st, c := newStore(t)
	seedDemo(t, st, c)
	fl := &flakyStore{Store: st}
	// Changes carry their tokens: the shared load of the list is the read
	// that can fail.
	fl.fail.Store(1)
	d := drive(t, newModel(fl, c, nil), 130, 20)
	v := d.view()
	if !strings.Contains(v, "could not load the tokens: disk on fire; retrying in 1s") {
		t.Fatalf("the failure is not said:\n%s", v)
	}
	seedActive(t, st, "arrived-later")
	d.send(tea.WindowSizeMsg{Width: 130, Height: 20}) // the retry (here at once) and the change
	if v := d.view(); !strings.Contains(v, "arrived-later") || !strings.Contains(v, "4 tokens") {
		t.Fatalf("the retry did not bring the change:\n%s", v)
	}

	// The audit screen too.
	fl.fail.Store(1)
	d.keys(runes("L"))
	v = d.view()
	if !strings.Contains(v, "could not load the audit log: disk on fire; retrying in 1s") || !strings.Contains(v, "arrived-later") {
		t.Fatalf("the audit log did not retry:\n%s", v)
	}

	// And the usage screen.
	d.keys(keyEsc, runes("g"), keyDown, keyDown) // arrived-later, billing-export, feeds-sync
	fl.fail.Store(1)
	d.keys(keyEnter)
	v = d.view()
	if !strings.Contains(v, "could not load the usage of feeds-sync: disk on fire; retrying in 1s") || !strings.Contains(v, "203.0.113.7") {
		t.Fatalf("the usage screen did not retry:\n%s", v)
	}
}

// Issue 9, fault 8: the "N active" heading was only recounted on load: a
// token past the inactivity limit still counted as active.
func TestActiveCountFollowsTheClock(t *testing.T) {
	st, c := newStore(t)
	seedDemo(t, st, c)
	d := drive(t, newModel(st, c, nil), 130, 20)
	if v := d.view(); !strings.Contains(v, "3 tokens, 1 active") {
		t.Fatalf("heading:\n%s", v)
	}
	// feeds-sync was last used 2 hours before testNow.
	c.Set(testNow.Add(30*24*time.Hour - time.Hour))
	if v := d.view(); !strings.Contains(v, "3 tokens, 0 active") || !strings.Contains(lineWith(v, "feeds-sync"), "Inactive") {
		t.Fatalf("a token past the limit is counted active:\n%s", v)
	}
}

// Issue 9, fault 8: once the log held its limit, the audit cursor kept its
// position by the change in length (none): it jumped to another event.
func TestAuditCursorStaysOnItsEvent(t *testing.T) {
	st, c := newStore(t)
	seedActive(t, st, "toggled")
	for i := range 1000 {
		c.Set(testNow.Add(time.Duration(i) * time.Minute))
		if _, err := st.SetActive(tester, []string{"toggled"}, i%2 == 1); err != nil {
			t.Fatal(err)
		}
	}
	d := drive(t, newModel(st, c, nil), 130, 20)
	d.keys(runes("L"), keyDown, keyDown, keyDown)
	before := cursorRow(d.view())
	if before == "" || !strings.Contains(d.view(), "1000 events") {
		t.Fatalf("audit:\n%s", d.view())
	}
	c.Set(testNow.Add(2000 * time.Minute))
	if n, err := st.SetActive(tester, []string{"toggled"}, false); err != nil || n != 1 {
		t.Fatalf("deactivate: %d, %v", n, err)
	}
	d.send(tea.WindowSizeMsg{Width: 130, Height: 20})
	if after := cursorRow(d.view()); after != before {
		t.Fatalf("the cursor moved from\n%q to\n%q", before, after)
	}
}

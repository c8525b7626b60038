package tui

import (
	"strings"
	"testing"

	"github.com/apptokens/apptokens/store"
)

// Issue 10, item 2: a token picked on a screen, deleted and re-created under
// the same name by someone else before the action's confirmation (y, the
// typed name, ctrl+s, b): the action must not touch the new token of that
// name, and the screen says the picked one no longer exists. The store's
// changes are made between two key presses, and the feed delivers them only
// after the confirming key's action ran: as a slow feed (another node) would.

var other = store.Actor{User: "other"}

// recreate deletes name and creates a new token of that name, as another
// admin would; it returns the new token.
func recreate(t *testing.T, st *store.Store, name string) store.Token {
	t.Helper()
	if _, err := st.Delete(other, []string{name}); err != nil {
		t.Fatal(err)
	}
	cr, err := st.Create(other, store.NewToken{Name: name, Description: "the new one", Access: []store.Access{store.AccessSecurityDirector}})
	if err != nil {
		t.Fatal(err)
	}
	return cr.Token
}

// assertUntouched fails unless the token named name is fresh, unchanged.
func assertUntouched(t *testing.T, st *store.Store, fresh store.Token) {
	t.Helper()
	got, err := st.Get(fresh.Name)
	if err != nil {
		t.Fatalf("the new %s is gone: %v", fresh.Name, err)
	}
	if got.ID != fresh.ID || !got.Active || got.Description != fresh.Description || got.AccessNames() != fresh.AccessNames() {
		t.Fatalf("the new %s was touched: %+v, was %+v", fresh.Name, got, fresh)
	}
	us, err := st.UsageID(fresh.ID)
	if err != nil || len(us) != 0 {
		t.Fatalf("the new %s has usage or blocks: %+v, %v", fresh.Name, us, err)
	}
}

func assertSaysGone(t *testing.T, d *driver, name string) {
	t.Helper()
	if v := d.view(); !strings.Contains(v, "token "+name+" no longer exists") {
		t.Fatalf("the screen does not say that the picked %s no longer exists:\n%s", name, v)
	}
}

func seedFeed(t *testing.T, st *store.Store, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := st.Create(tester, store.NewToken{Name: n, Description: "picked", Access: []store.Access{store.AccessThirdPartyFeeds}}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDeactivateActsOnThePickedTokenNotItsNewNamesake(t *testing.T) {
	st, c := newStore(t)
	seedFeed(t, st, "feed")
	d := drive(t, newModel(st, c, nil), 200, 30)
	d.keys(runes("d"))
	if v := d.view(); !strings.Contains(v, "Deactivate 1 token? (feed)") {
		t.Fatalf("no confirmation:\n%s", v)
	}
	fresh := recreate(t, st, "feed")
	d.keys(runes("y"))
	assertUntouched(t, st, fresh)
	assertSaysGone(t, d, "feed")
}

// A batch is all or nothing: the other picked tokens stay as they were.
func TestDeactivateSelectionWithATokenRecreatedMeanwhile(t *testing.T) {
	st, c := newStore(t)
	seedFeed(t, st, "alpha", "feed")
	d := drive(t, newModel(st, c, nil), 200, 30)
	d.keys(keySpace, keyDown, keySpace, runes("d"))
	if v := d.view(); !strings.Contains(v, "Deactivate 2 tokens? (alpha, feed)") {
		t.Fatalf("no confirmation:\n%s", v)
	}
	fresh := recreate(t, st, "feed")
	d.keys(runes("y"))
	assertUntouched(t, st, fresh)
	assertSaysGone(t, d, "feed")
	if alpha, err := st.Get("alpha"); err != nil || !alpha.Active {
		t.Fatalf("alpha changed by a refused batch: %+v, %v", alpha, err)
	}
}

func TestDeleteActsOnThePickedTokenNotItsNewNamesake(t *testing.T) {
	st, c := newStore(t)
	seedFeed(t, st, "feed")
	d := drive(t, newModel(st, c, nil), 200, 30)
	d.keys(runes("x"))
	d.typ("feed")
	fresh := recreate(t, st, "feed")
	d.keys(keyEnter)
	assertUntouched(t, st, fresh)
	assertSaysGone(t, d, "feed")
}

func TestEditActsOnThePickedTokenNotItsNewNamesake(t *testing.T) {
	st, c := newStore(t)
	seedFeed(t, st, "feed")
	d := drive(t, newModel(st, c, nil), 200, 30)
	d.keys(runes("e"))
	d.typ(" more")
	d.keys(keyTab, keyTab, keySpace) // Security Director too
	fresh := recreate(t, st, "feed")
	d.keys(keyCtrlS)
	assertUntouched(t, st, fresh)
	if v := d.view(); !strings.Contains(v, "Edit token feed") || !strings.Contains(v, "feed was deleted") {
		t.Fatalf("the form does not say that the edited feed is gone:\n%s", v)
	}
}

func TestBlockActsOnThePickedTokenNotItsNewNamesake(t *testing.T) {
	st, c := newStore(t)
	seedFeed(t, st, "feed")
	tok, err := st.Get("feed")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.RecordUsage([]store.UsageDelta{{TokenID: tok.ID, IP: "203.0.113.7", FirstUsedAt: testNow, LastUsedAt: testNow, Allowed: 1}}); err != nil {
		t.Fatal(err)
	}
	d := drive(t, newModel(st, c, nil), 200, 30)
	d.keys(keyEnter)
	if v := d.view(); !strings.Contains(v, "Token feed") || !strings.Contains(v, "203.0.113.7") {
		t.Fatalf("usage screen not open:\n%s", v)
	}
	fresh := recreate(t, st, "feed")
	d.keys(runes("b"))
	assertUntouched(t, st, fresh)
	// The refusal came first; then the feed delivered the deletion, and the
	// screen went back to the table saying so.
	if v := d.view(); !strings.Contains(v, "Token feed was deleted") || !strings.Contains(v, "the new one") {
		t.Fatalf("the screen does not say that the picked feed was deleted:\n%s", v)
	}
}

package tui

import (
	"strings"
	"testing"

	"github.com/apptokens/apptokens/store"
)

// Issue 9, fault 12: b on a usage screen without addresses said nothing.
func TestBlockOnAnEmptyUsageScreenSaysSo(t *testing.T) {
	st, c := newStore(t)
	seedDemo(t, st, c)
	d := drive(t, newModel(st, c, nil), 130, 20)
	d.keys(keyEnter) // billing-export: never used
	if v := d.view(); !strings.Contains(v, "No client has used this token yet") {
		t.Fatalf("usage:\n%s", v)
	}
	d.keys(runes("b"))
	if v := d.view(); !strings.Contains(v, "no address to block: no client has used this token yet") {
		t.Fatalf("b said nothing:\n%s", v)
	}
	d.keys(runes("u"))
	if v := d.view(); !strings.Contains(v, "no address to unblock") {
		t.Fatalf("u said nothing:\n%s", v)
	}
}

// Issue 9, fault 12: the usage screen could not block an address not yet
// seen (DESIGN: B).
func TestBlockAnAddressNotSeenYet(t *testing.T) {
	st, c := newStore(t)
	seedDemo(t, st, c)
	d := drive(t, newModel(st, c, nil), 130, 20)
	d.keys(keyDown, keyEnter) // feeds-sync
	d.keys(runes("B"))
	if v := d.view(); !strings.Contains(v, "Block an address or range for feeds-sync") {
		t.Fatalf("B did not ask for an address:\n%s", v)
	}
	// A bad address is refused live, beside the field; enter does not take it.
	d.typeBurst("not-an-ip\r")
	if v := d.view(); !strings.Contains(v, `"not-an-ip" is not an IP address`) || !strings.Contains(v, "Block an address or range") {
		t.Fatalf("a bad address is not refused with a word:\n%s", v)
	}
	d.keys(keyEsc)
	d.keys(runes("B"))
	d.paste("192.0.2.200")
	d.keys(keyEnter)
	v := d.view()
	if !strings.Contains(v, "1 IP address blocked for feeds-sync") || !strings.Contains(lineWith(v, "192.0.2.200"), "Blocked") {
		t.Fatalf("the new address is not blocked:\n%s", v)
	}
	if !blocked(t, st, "192.0.2.200") {
		t.Fatal("not blocked in the store")
	}
	// esc cancels without a change.
	d.keys(runes("B"), keyEsc)
	if v := d.view(); !strings.Contains(v, "Cancelled") {
		t.Fatalf("esc:\n%s", v)
	}
}

// Issue 9, fault 12: a token deleted by another admin while being edited gave
// no word until save; it is said when the change arrives.
func TestEditedTokenDeletedMeanwhile(t *testing.T) {
	st, c := newStore(t)
	seedDemo(t, st, c)
	d := drive(t, newModel(st, c, nil), 130, 24)
	d.keys(runes("e"))
	d.typ(" more")
	if _, err := st.Delete(store.Actor{User: "other"}, []string{"billing-export"}); err != nil {
		t.Fatal(err)
	}
	d.typ("x") // any message lets the change in
	v := d.view()
	if !strings.Contains(v, "billing-export was deleted by someone else while you edited it") ||
		!strings.Contains(v, "was deleted meanwhile: nothing can be saved") {
		t.Fatalf("the deletion is not said:\n%s", v)
	}
	d.keys(keyCtrlS)
	if !strings.Contains(d.view(), "Edit token billing-export") {
		t.Fatalf("the form left on a refused save:\n%s", d.view())
	}
}

package tui

import (
	"strings"
	"testing"

	"github.com/apptokens/apptokens/store"
)

// A selection larger than one transaction takes is refused before any question,
// with a word on what to do; nothing changes.
func TestSelectionOverBatchLimitRefusedUpFront(t *testing.T) {
	st, c := newStore(t)
	if err := st.BulkLoad(tester, seedTokens(store.MaxBatch+1)); err != nil {
		t.Fatal(err)
	}
	d := drive(t, newModel(st, c, nil), 120, 30)
	d.keys(runes("A"))
	for _, k := range []string{"d", "x", "a"} {
		d.keys(runes(k))
		v := d.view()
		if strings.Contains(v, "Clients using them will be refused") {
			t.Fatalf("%s asked about %d tokens instead of refusing:\n%s", k, store.MaxBatch+1, v)
		}
		if !strings.Contains(v, "at most 500 tokens at once (501 selected)") {
			t.Fatalf("%s: no refusal on screen:\n%s", k, v)
		}
	}
	toks, _ := st.List()
	active := 0
	for _, tok := range toks {
		if tok.Active {
			active++
		}
	}
	if len(toks) != store.MaxBatch+1 || active != 400 {
		t.Fatalf("the refused selection changed the store: %d tokens, %d active", len(toks), active)
	}
}

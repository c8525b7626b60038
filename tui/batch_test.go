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

// limitedStore is the real store on an engine that takes fewer tokens in one
// change (etcd takes about 18): the screen asks the store its bound.
type limitedStore struct {
	*store.Store
	most int
}

func (s limitedStore) MaxBatch() int { return s.most }

func TestSelectionOverTheEnginesBatchLimitRefusedUpFront(t *testing.T) {
	st, c := newStore(t)
	seedActive(t, st, "alpha", "beta", "gamma", "delta")
	d := drive(t, newModel(limitedStore{st, 3}, c, nil), 120, 30)
	d.keys(runes("A"), runes("d"))
	if v := d.view(); strings.Contains(v, "Deactivate 4 tokens?") || !strings.Contains(v, "at most 3 tokens at once (4 selected)") {
		t.Fatalf("a selection over the engine's bound was not refused up front:\n%s", v)
	}
}

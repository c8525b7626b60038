package tokens

import (
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/tui/common"
	"github.com/apptokens/apptokens/tui/styles"
)

var now = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func makeTokens(n int) []store.Token {
	out := make([]store.Token, n)
	for i := range out {
		out[i] = store.Token{
			ID:          fmt.Sprintf("id-%06d", i),
			Name:        fmt.Sprintf("token-%06d", i),
			Description: fmt.Sprintf("service %d", i),
			Access:      []store.Access{store.AccessSecurityDirector},
			Active:      true,
			CreatedAt:   now.Add(-time.Duration(i) * time.Minute),
		}
	}
	return out
}

// loaded returns the screen with n tokens applied as a full load. The store
// is not needed: the screen only reads it through commands.
func loaded(n int) *Model { return loadedWith(makeTokens(n)) }

func loadedWith(toks []store.Token) *Model {
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.Ascii)
	ctx := &common.Context{Styles: styles.New(r), Now: func() time.Time { return now }}
	m := New(ctx, nil)
	m.SetSize(120, 40)
	m.Update(loadedMsg{full: true, toks: toks, inactiveAfter: store.DefaultInactiveAfter})
	return m
}

// TestKeystrokeScales guards the performance contract: a keystroke (down plus
// View) allocates no more with 100,000 tokens than with 1,000 (within 1.5×).
func TestKeystrokeScales(t *testing.T) {
	cost := func(n int) float64 {
		m := loaded(n)
		down := tea.KeyMsg{Type: tea.KeyDown}
		return testing.AllocsPerRun(200, func() {
			m.Update(down)
			_ = m.View()
		})
	}
	small, large := cost(1000), cost(100000)
	if large > 1.5*small {
		t.Fatalf("a keystroke allocates %.0f times with 100,000 tokens, %.0f with 1,000", large, small)
	}
}

func TestPatchKeepsCursorAndSelection(t *testing.T) {
	m := loaded(50)
	m.Update(tea.KeyMsg{Type: tea.KeyDown})
	m.Update(tea.KeyMsg{Type: tea.KeySpace, Runes: []rune{' '}}) // select token-000001
	m.Update(tea.KeyMsg{Type: tea.KeyDown})                      // cursor on token-000002
	first := store.Token{ID: "new", Name: "aaa", Access: []store.Access{store.AccessSecurityDirector}, Active: true, CreatedAt: now}
	m.Update(loadedMsg{upserts: []store.Token{first}, deleted: []string{"id-000000"}, inactiveAfter: store.DefaultInactiveAfter})
	v := m.View()
	for _, want := range []string{"> [ ] token-000002", "  [x] token-000001", "  [ ] aaa", "50 tokens, 50 active, 1 selected"} {
		if !strings.Contains(v, want) {
			t.Errorf("view lacks %q:\n%s", want, v)
		}
	}
	if strings.Contains(v, "token-000000") {
		t.Errorf("deleted token still shown:\n%s", v)
	}
	// Deleting the selected token drops it from the selection.
	m.Update(loadedMsg{deleted: []string{"id-000001"}, inactiveAfter: store.DefaultInactiveAfter})
	if v := m.View(); !strings.Contains(v, "49 tokens, 49 active\n") || !strings.Contains(v, "> [ ] token-000002") {
		t.Errorf("after deleting the selected token:\n%s", v)
	}
}

func TestWindowShowsOnlyRowsOnScreen(t *testing.T) {
	m := loaded(1000)
	for range 100 {
		m.Update(tea.KeyMsg{Type: tea.KeyDown})
	}
	v := m.View()
	if got := strings.Count(v, "\n") + 1; got != 40 {
		t.Fatalf("view has %d lines, want the screen's 40", got)
	}
	if !strings.Contains(v, "> [ ] token-000100") || strings.Contains(v, "token-000000") {
		t.Fatalf("window does not follow the cursor:\n%s", v)
	}
}

// BenchmarkGateUsage applies one gate flush that used 1000 of 100,000 tokens:
// the changes carry the new last-used times, so no store is read (the screen
// here has none). Floor, 2-core machine: sorted by name 0.2-0.4 ms/op, 9 allocs
// (only the 1000 tokens are touched); sorted by last use 2-4 ms/op, ~0.9 MB/op
// (they are merged back into the order of every token, not sorted with it).
func BenchmarkGateUsage(b *testing.B) {
	for _, sort := range []SortKey{SortName, SortLastUsed} {
		b.Run("sort="+sort.String()[:strings.IndexByte(sort.String()+" ", ' ')], func(b *testing.B) {
			m := loaded(100000)
			m.setSort(sort)
			changes := make([]store.Change, 1000)
			for j := range changes {
				changes[j] = store.Change{Kind: store.ChangeUsed, TokenID: fmt.Sprintf("id-%06d", j*100)}
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				at := now.Add(time.Duration(i+1) * time.Second)
				for j := range changes {
					changes[j].LastUsedAt = at
				}
				if _, cmd := m.Update(common.ChangesMsg{Changes: changes}); cmd != nil {
					b.Fatal("the gate's usage started a fetch")
				}
			}
		})
	}
}

// The gate's usage keeps the order (merged, not sorted) and the counts exactly
// as a full sort and recount would make them.
func TestGateUsageKeepsOrderAndCounts(t *testing.T) {
	toks := makeTokens(2000)
	for i := range toks {
		if i%2 == 0 {
			toks[i].CreatedAt = now.Add(-60 * 24 * time.Hour) // inactive until used
		}
	}
	m := loadedWith(toks)
	m.setSort(SortLastUsed)
	m.setQuery("1") // a filter too: the view follows the order
	if m.active != 1000 {
		t.Fatalf("%d active before any use, want 1000", m.active)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 20 {
		var changes []store.Change
		for range 1 + rng.IntN(300) {
			id := fmt.Sprintf("id-%06d", rng.IntN(2000))
			// Some uses are older than the token's creation or last use, some tie.
			at := now.Add(time.Duration(rng.IntN(40)-20) * 24 * time.Hour).Add(time.Duration(rng.IntN(3)) * time.Hour)
			changes = append(changes, store.Change{Kind: store.ChangeUsed, TokenID: id, LastUsedAt: at})
		}
		m.Update(common.ChangesMsg{Changes: changes})
		order, view, active := slices.Clone(m.idx.order), slices.Clone(m.idx.view), m.active
		m.idx.resort()
		m.recount()
		if !slices.Equal(order, m.idx.order) || !slices.Equal(view, m.idx.view) {
			t.Fatalf("round %d: the merged order differs from a sort", round)
		}
		if active != m.active {
			t.Fatalf("round %d: %d active counted from the changes, %d by a recount", round, active, m.active)
		}
	}
	if m.active == 1000 {
		t.Fatal("no use made a token active again: the test tests nothing")
	}
}

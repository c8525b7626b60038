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
	"github.com/apptokens/apptokens/tui/tokenset"
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

// loaded returns the screen with n tokens, as the shared set delivers them.
// The store is not needed: the screen only reads it through commands.
func loaded(n int) *Model { return loadedWith(makeTokens(n)) }

func loadedWith(toks []store.Token) *Model {
	m, _ := loadedBuilder(toks)
	return m
}

// loadedBuilder is loadedWith and the Builder of the set it shows, for changes.
func loadedBuilder(toks []store.Token) (*Model, *tokenset.Builder) {
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.Ascii)
	ctx := &common.Context{Styles: styles.New(r), Now: func() time.Time { return now }}
	m := New(ctx, nil)
	m.SetSize(120, 40)
	b := &tokenset.Builder{}
	b.Reset(store.DefaultInactiveAfter)
	for _, t := range toks {
		b.Add(t)
	}
	m.Update(common.ChangesMsg{Tokens: b.Publish()})
	return m, b
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
	m, b := loadedBuilder(makeTokens(50))
	m.Update(tea.KeyMsg{Type: tea.KeyDown})
	m.Update(tea.KeyMsg{Type: tea.KeySpace, Runes: []rune{' '}}) // select token-000001
	m.Update(tea.KeyMsg{Type: tea.KeyDown})                      // cursor on token-000002
	first := store.Token{ID: "new", Name: "aaa", Access: []store.Access{store.AccessSecurityDirector}, Active: true, CreatedAt: now}
	b.Add(first)
	b.Remove("id-000000")
	m.Update(common.ChangesMsg{Tokens: b.Publish()})
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
	b.Remove("id-000001")
	m.Update(common.ChangesMsg{Tokens: b.Publish()})
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

// BenchmarkGateUsage applies one gate flush that used 1000 of 100,000 tokens
// to the shared set (copy-on-write: only chunks of last-use times are copied,
// 2 KB each) and shows it in one session. Sorted by last use, the 1000 tokens
// are merged back into the shared order, not sorted with it. Measured (2
// cores): sorted by name ~8 ms/op, 0.9 MB/op; by last use ~14 ms/op, 1.3 MB/op
// (the order is new: 0.4 MB). Once per process: other sessions only pick up
// the new set.
func BenchmarkGateUsage(b *testing.B) {
	for _, sort := range []SortKey{SortName, SortLastUsed} {
		b.Run("sort="+sort.String()[:strings.IndexByte(sort.String()+" ", ' ')], func(b *testing.B) {
			m, bl := loadedBuilder(makeTokens(100000))
			m.setSort(sort)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				at := now.Add(time.Duration(i+1) * time.Second)
				for j := range 1000 {
					bl.Touch(fmt.Sprintf("id-%06d", j*100), at)
				}
				m.Update(common.ChangesMsg{Tokens: bl.Publish()})
			}
		})
	}
}

// The gate's usage keeps the order (merged into the shared one, not sorted)
// and the counts exactly as a full sort and recount would make them.
func TestGateUsageKeepsOrderAndCounts(t *testing.T) {
	toks := makeTokens(2000)
	for i := range toks {
		if i%2 == 0 {
			toks[i].CreatedAt = now.Add(-60 * 24 * time.Hour) // inactive until used
		}
	}
	m, bl := loadedBuilder(toks)
	m.setSort(SortLastUsed)
	m.setQuery("1") // a filter too: the view follows the order
	if m.active != 1000 {
		t.Fatalf("%d active before any use, want 1000", m.active)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 20 {
		for range 1 + rng.IntN(300) {
			id := fmt.Sprintf("id-%06d", rng.IntN(2000))
			// Some uses are older than the token's creation or last use, some tie.
			at := now.Add(time.Duration(rng.IntN(40)-20) * 24 * time.Hour).Add(time.Duration(rng.IntN(3)) * time.Hour)
			bl.Touch(id, at)
		}
		m.Update(common.ChangesMsg{Tokens: bl.Publish()})
		order, view, active := slices.Clone(m.idx.order()), slices.Clone(m.idx.view), m.active
		var fresh []store.Token
		for p := range m.idx.set.Len() {
			if tok := m.idx.set.At(p); tok != nil {
				fresh = append(fresh, *tok)
			}
		}
		sorted := tokenset.FromTokens(fresh, store.DefaultInactiveAfter).Order(SortLastUsed)
		for i := range sorted {
			if fresh[sorted[i]].ID != m.idx.set.At(int(order[i])).ID {
				t.Fatalf("round %d: the merged order differs from a sort at row %d", round, i)
			}
		}
		m.idx.refilter()
		m.recount()
		if !slices.Equal(view, m.idx.view) {
			t.Fatalf("round %d: the view differs from a fresh filter", round)
		}
		if active != m.active {
			t.Fatalf("round %d: %d active counted, %d by a recount", round, active, m.active)
		}
	}
	if m.active == 1000 {
		t.Fatal("no use made a token active again: the test tests nothing")
	}
}

// A filter result is kept while only last uses change (the gate, every
// second), and made again when a description changes what it matches.
func TestFilterFollowsEditsNotUses(t *testing.T) {
	m, bl := loadedBuilder(makeTokens(100))
	m.setQuery("service 4")
	if n := len(m.idx.view); n != 11 { // service 4, 40-49
		t.Fatalf("%d matches, want 11", n)
	}
	own := &m.idx.view[0]
	bl.Touch("id-000004", now)
	m.Update(common.ChangesMsg{Tokens: bl.Publish()})
	if len(m.idx.view) != 11 || &m.idx.view[0] != own {
		t.Fatal("a use made the filter run again")
	}
	tok := *m.idx.set.At(7)
	tok.Description = "Service 4 backup"
	bl.Add(tok)
	m.Update(common.ChangesMsg{Tokens: bl.Publish()})
	if n := len(m.idx.view); n != 12 || !strings.Contains(m.View(), "token-000007") {
		t.Fatalf("after an edit that matches: %d matches\n%s", n, m.View())
	}
}

package tui

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/apptokens/apptokens/internal/secret"
	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/storetest"
)

// Floors, measured on the 2-core machine (AMD EPYC, shared, load ~4-6;
// go test -run X -bench . -benchmem ./tui):
//
//	BenchmarkTokensKeystroke/tokens=1000     150-250 µs/op   60 KB/op   750 allocs/op
//	BenchmarkTokensKeystroke/tokens=100000   150-280 µs/op   60 KB/op   750 allocs/op (within 1.5× of 1000)
//	BenchmarkTokensFilter/tokens=100000      1.2-2.3 ms/op   60 KB/op   690 allocs/op (refilters every token)
//	BenchmarkOpenFirstView/tokens=100000     0.4-1.7 s/op   ~370 MB/op  ~0.9 M allocs/op (open Badger, list, index, first View)
//
// A keystroke costs the same at 100,000 tokens as at 1,000 because the table
// renders only the rows on screen from its own index; TestKeystrokeScales in
// package tokens guards it in every test run.

// seedTokens builds n tokens with cheap, unique (not checksum-valid) secrets:
// generating 100,000 real ones would dominate the benchmark's set-up.
func seedTokens(n int) []store.SeedToken {
	out := make([]store.SeedToken, n)
	for i := range out {
		access := []store.Access{store.AccessSecurityDirector}
		if i%3 == 0 {
			access = append(access, store.AccessThirdPartyFeeds)
		}
		out[i] = store.SeedToken{
			Token: store.Token{
				Name:        fmt.Sprintf("token-%06d", i),
				Description: fmt.Sprintf("Service %d of team %d\nsecond line", i, i%97),
				Access:      access,
				Active:      i%5 != 0,
				CreatedAt:   testNow.Add(-time.Duration(i) * time.Minute),
				LastUsedAt:  testNow.Add(-time.Duration(i%1000) * time.Hour),
			},
			Secret: secret.Token(fmt.Sprintf("%s%046d", secret.Prefix, i)),
		}
	}
	return out
}

// benchStores caches one seeded in-memory store per size for the whole binary:
// a benchmark function runs several times while b.N is calibrated.
var benchStores = struct {
	sync.Mutex
	m map[int]*store.Store
}{m: map[int]*store.Store{}}

func seededStore(b *testing.B, n int) *store.Store {
	b.Helper()
	benchStores.Lock()
	defer benchStores.Unlock()
	if st, ok := benchStores.m[n]; ok {
		return st
	}
	st, err := storetest.OpenWith(storetest.Options{InMemory: true, Now: func() time.Time { return testNow }})
	if err != nil {
		b.Fatal(err)
	}
	if err := st.BulkLoad(tester, seedTokens(n)); err != nil {
		b.Fatal(err)
	}
	benchStores.m[n] = st
	return st
}

func closeBenchStores() {
	benchStores.Lock()
	defer benchStores.Unlock()
	for _, st := range benchStores.m {
		_ = st.Close()
	}
}

func BenchmarkTokensKeystroke(b *testing.B) {
	for _, n := range []int{1000, 100000} {
		b.Run(fmt.Sprintf("tokens=%d", n), func(b *testing.B) {
			st := seededStore(b, n)
			d := drive(b, newModel(st, &clock{t: testNow}, nil), 120, 40)
			home := runes("g")
			b.ReportAllocs()
			b.ResetTimer()
			row := 0
			for i := 0; i < b.N; i++ {
				if row == n-1 {
					b.StopTimer()
					d.m.Update(home)
					row = 0
					b.StartTimer()
				}
				d.m.Update(keyDown)
				_ = d.m.View()
				row++
			}
		})
	}
}

func BenchmarkTokensFilter(b *testing.B) {
	const n = 100000
	b.Run(fmt.Sprintf("tokens=%d", n), func(b *testing.B) {
		st := seededStore(b, n)
		d := drive(b, newModel(st, &clock{t: testNow}, nil), 120, 40)
		d.keys(runes("/"))
		backspace := tea.KeyMsg{Type: tea.KeyBackspace}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			d.m.Update(runes("7"))
			_ = d.m.View()
			b.StopTimer()
			d.m.Update(backspace)
			b.StartTimer()
		}
	})
}

func BenchmarkOpenFirstView(b *testing.B) {
	const n = 100000
	b.Run(fmt.Sprintf("tokens=%d", n), func(b *testing.B) {
		dir := b.TempDir()
		st, err := storetest.OpenWith(storetest.Options{Dir: dir})
		if err != nil {
			b.Fatal(err)
		}
		if err := st.BulkLoad(tester, seedTokens(n)); err != nil {
			b.Fatal(err)
		}
		if err := st.Close(); err != nil {
			b.Fatal(err)
		}
		c := &clock{t: testNow}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			st, err := storetest.OpenWith(storetest.Options{Dir: dir})
			if err != nil {
				b.Fatal(err)
			}
			m := newModel(st, c, nil)
			m.Update(tea.WindowSizeMsg{Width: 120, Height: 40})
			w := m.watching()
			m.hub.Sync()
			m.Update(feedMsg{update: w.Take()})
			if v := m.View(); !strings.Contains(v, "100000 tokens") {
				b.Fatalf("not loaded:\n%s", v)
			}
			_ = m.Close()
			b.StopTimer()
			if err := st.Close(); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
}

// The floors below run beside the benchmarks above, so that the TUI's own cost
// can be read as a ratio in one run (go test -run X -bench . -benchmem ./tui).

// BenchmarkTokensKeystrokeFloor is View alone, without the key: what any frame costs.
func BenchmarkTokensKeystrokeFloor(b *testing.B) {
	const n = 100000
	b.Run(fmt.Sprintf("tokens=%d", n), func(b *testing.B) {
		st := seededStore(b, n)
		d := drive(b, newModel(st, &clock{t: testNow}, nil), 120, 40)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			_ = d.m.View()
		}
	})
}

// BenchmarkTokensFilterFloor is a bare substring scan of every token's name and
// description, lower-cased in advance: the least a filter over 100,000 tokens costs.
func BenchmarkTokensFilterFloor(b *testing.B) {
	const n = 100000
	b.Run(fmt.Sprintf("tokens=%d", n), func(b *testing.B) {
		toks, err := seededStore(b, n).List()
		if err != nil {
			b.Fatal(err)
		}
		hay := make([]string, len(toks))
		for j := range toks {
			hay[j] = strings.ToLower(toks[j].Name + "\x00" + toks[j].Description)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			hits := 0
			for _, h := range hay {
				if strings.Contains(h, "7") {
					hits++
				}
			}
			if hits == 0 {
				b.Fatal("no hits")
			}
		}
	})
}

// BenchmarkOpenFirstViewFloor opens the same seeded directory and lists the
// tokens, without any UI: the store's share of BenchmarkOpenFirstView.
func BenchmarkOpenFirstViewFloor(b *testing.B) {
	const n = 100000
	b.Run(fmt.Sprintf("tokens=%d", n), func(b *testing.B) {
		dir := b.TempDir()
		st, err := storetest.OpenWith(storetest.Options{Dir: dir})
		if err != nil {
			b.Fatal(err)
		}
		if err := st.BulkLoad(tester, seedTokens(n)); err != nil {
			b.Fatal(err)
		}
		if err := st.Close(); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			st, err := storetest.OpenWith(storetest.Options{Dir: dir})
			if err != nil {
				b.Fatal(err)
			}
			if toks, err := st.List(); err != nil || len(toks) != n {
				b.Fatalf("listed %d tokens: %v", len(toks), err)
			}
			b.StopTimer()
			if err := st.Close(); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
}

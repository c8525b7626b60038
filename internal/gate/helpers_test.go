package gate

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/apptokens/apptokens/internal/secret"
	"github.com/apptokens/apptokens/store"
)

var admin = store.Actor{User: "test"}

// clock is a settable clock shared by the store and the gate.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func openStore(tb testing.TB, now func() time.Time) *store.Store {
	tb.Helper()
	s, err := store.Open(store.Options{InMemory: true, Now: now})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

func create(tb testing.TB, s *store.Store, name string, access ...store.Access) string {
	tb.Helper()
	c, err := s.Create(admin, store.NewToken{Name: name, Access: access})
	if err != nil {
		tb.Fatal(err)
	}
	return c.Secret.Reveal()
}

// seed bulk-loads n tokens named tok-0…, alternating access types, and returns
// their secrets.
func seed(tb testing.TB, s *store.Store, n int) []string {
	tb.Helper()
	toks := make([]store.SeedToken, n)
	secrets := make([]string, n)
	now := s.Now()
	for i := range toks {
		sec, err := secret.Generate()
		if err != nil {
			tb.Fatal(err)
		}
		access := []store.Access{store.AccessSecurityDirector, store.AccessThirdPartyFeeds}[:1+i%2]
		toks[i] = store.SeedToken{
			Token:  store.Token{Name: fmt.Sprintf("tok-%d", i), Access: access, Active: true, CreatedAt: now},
			Secret: sec,
		}
		secrets[i] = sec.Reveal()
	}
	if err := s.BulkLoad(admin, toks); err != nil {
		tb.Fatal(err)
	}
	return secrets
}

func newGate(tb testing.TB, cfg Config) *Gate {
	tb.Helper()
	g, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return g
}

// run runs the gate until the test ends, and checks that Run returned cleanly.
func run(tb testing.TB, g *Gate) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("Run: %v", err)
		}
	})
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(tb testing.TB, within time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

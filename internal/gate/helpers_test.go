package gate

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apptokens/apptokens/internal/secret"
	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/storetest"
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
	s, err := storetest.OpenWith(storetest.Options{InMemory: true, Now: now})
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

// wsgiEnviron is a request's headers as a CGI or WSGI backend sees them: each
// name upper-cased with "-" as "_" and HTTP_ in front, so that X-Token-Name,
// X_Token_Name and x-token_name are all HTTP_X_TOKEN_NAME; the values of names
// that fold together are joined with commas, in the order they came.
func wsgiEnviron(h http.Header) map[string]string {
	env := map[string]string{}
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		key := "HTTP_" + strings.ToUpper(strings.ReplaceAll(k, "-", "_"))
		for _, v := range h[k] {
			if prev, ok := env[key]; ok {
				v = prev + "," + v
			}
			env[key] = v
		}
	}
	return env
}

// spoofedIdentity is a client posing as a token it does not hold, with every
// kind of spelling of the gate's identity headers that a CGI or WSGI backend
// folds into them (issue 8, fault 5).
var spoofedIdentity = []string{
	"X_Token_Name", "t1,admin",
	"x_token_access", "security-director,third-party-feeds",
	"X-TOKEN-NAME", "root",
	"x-token_access", "third-party-feeds",
	"X_TOKEN-NAME", "root2",
	"X-Token_Name", "root3",
	"x-token-name", "root4",
	"X_Token_Extra", "1",
}

// wantOnlyGateIdentity checks that a backend saw exactly the gate's identity
// headers, under every spelling it folds names to.
func wantOnlyGateIdentity(t *testing.T, env map[string]string, name, access string) {
	t.Helper()
	if got := env["HTTP_X_TOKEN_NAME"]; got != name {
		t.Errorf("the backend saw HTTP_X_TOKEN_NAME %q, want %q", got, name)
	}
	if got := env["HTTP_X_TOKEN_ACCESS"]; got != access {
		t.Errorf("the backend saw HTTP_X_TOKEN_ACCESS %q, want %q", got, access)
	}
}

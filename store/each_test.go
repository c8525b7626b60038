package store_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/apptokens/apptokens/internal/secret"
	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/storetest"
)

// EachToken gives every token once, in List's order, across its batches, and
// stops at fn's error.
func TestEachTokenInListOrder(t *testing.T) {
	storetest.Each(t, func(t *testing.T, eng storetest.Engine) {
		s, err := store.New(eng.New(t), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		const n = 2500 // more than two batches
		seed := make([]store.SeedToken, n)
		for i := range seed {
			seed[i] = store.SeedToken{
				Token:  store.Token{Name: fmt.Sprintf("T-%05d", n-i), Access: []store.Access{store.AccessSecurityDirector}, Active: true},
				Secret: secret.Token(fmt.Sprintf("%s%046d", secret.Prefix, i)),
			}
		}
		if err := s.BulkLoad(store.Actor{User: "tester"}, seed); err != nil {
			t.Fatal(err)
		}
		want, err := s.List()
		if err != nil {
			t.Fatal(err)
		}
		var got []store.Token
		if err := s.EachToken(func(tok store.Token) error { got = append(got, tok); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%d tokens, List has %d", len(got), len(want))
		}
		for i := range want {
			if got[i].ID != want[i].ID {
				t.Fatalf("token %d: %s, List has %s", i, got[i].Name, want[i].Name)
			}
		}
		stop := errors.New("enough")
		calls := 0
		if err := s.EachToken(func(store.Token) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
			t.Fatalf("fn's error: %v after %d calls", err, calls)
		}
	})
}

package store_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/storetest"
)

// TestCreateSameNameConcurrently: many admins create the same name (in mixed
// case) at the same moment; the unique-name check inside the transaction lets
// exactly one through.
func TestCreateSameNameConcurrently(t *testing.T) {
	s, _ := openDir(t)
	const workers = 32
	for round, base := range []string{"race-token", "Shared-Feed", "x"} {
		start := make(chan struct{})
		errs := make([]error, workers)
		created := make([]store.Created, workers)
		var wg sync.WaitGroup
		for i := range workers {
			name := base
			switch i % 3 {
			case 1:
				name = strings.ToUpper(base)
			case 2:
				name = strings.ToLower(base)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				created[i], errs[i] = s.Create(store.Actor{User: fmt.Sprintf("admin%d", i)},
					store.NewToken{Name: name, Access: []store.Access{store.AccessThirdPartyFeeds}})
			}()
		}
		close(start)
		wg.Wait()

		winners := 0
		var winner store.Created
		for i, err := range errs {
			switch {
			case err == nil:
				winners++
				winner = created[i]
			case errors.Is(err, store.ErrNameTaken):
				var fe *store.FieldError
				if !errors.As(err, &fe) || fe.Field != "name" {
					t.Errorf("worker %d: %v is not a name FieldError", i, err)
				}
				if !strings.Contains(err.Error(), "is already taken") {
					t.Errorf("worker %d: message %q", i, err)
				}
			default:
				t.Errorf("worker %d: unexpected error %v", i, err)
			}
		}
		if winners != 1 {
			t.Fatalf("round %d: %d creates of %q succeeded, want exactly 1", round, winners, base)
		}
		toks, err := s.List()
		if err != nil {
			t.Fatal(err)
		}
		if len(toks) != round+1 {
			t.Fatalf("round %d: %d tokens stored", round, len(toks))
		}
		got, err := s.Get(base)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != winner.Token.ID || got.Digest != winner.Secret.Digest() {
			t.Fatalf("stored token is not the winner's")
		}
		events, err := s.Audit(0)
		if err != nil {
			t.Fatal(err)
		}
		if len(events) != round+1 {
			t.Fatalf("round %d: %d audit events, want %d", round, len(events), round+1)
		}
	}
}

// TestConcurrentDistinctCreates: concurrent creates of different names all land.
func TestConcurrentDistinctCreates(t *testing.T) {
	storetest.Each(t, func(t *testing.T, eng storetest.Engine) {
		s := openOn(t, eng, nil)
		const workers = 16
		var wg sync.WaitGroup
		errs := make([]error, workers)
		for i := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = s.Create(admin, store.NewToken{Name: fmt.Sprintf("tok-%02d", i), Access: []store.Access{store.AccessSecurityDirector}})
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("create %d: %v", i, err)
			}
		}
		toks, err := s.List()
		if err != nil {
			t.Fatal(err)
		}
		if len(toks) != workers {
			t.Fatalf("%d tokens, want %d", len(toks), workers)
		}
		for i, tok := range toks {
			if want := fmt.Sprintf("tok-%02d", i); tok.Name != want {
				t.Errorf("List()[%d] = %q, want %q (sorted by name)", i, tok.Name, want)
			}
		}
	})
}

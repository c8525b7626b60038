package store_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/apptokens/apptokens/internal/secret"
	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/storetest"
)

// TestBulkLoadAgainstCreate: a seed and an admin's Create of the same name (in
// another case) at the same moment never leave two tokens of that name: exactly
// one wins, and the token list and the name index agree on which.
func TestBulkLoadAgainstCreate(t *testing.T) {
	storetest.Each(t, func(t *testing.T, eng storetest.Engine) {
		s := openOn(t, eng, nil)
		const rounds = 200
		for round := range rounds {
			name := fmt.Sprintf("Race-%03d", round)
			sec, err := secret.Generate()
			if err != nil {
				t.Fatal(err)
			}
			seed := []store.SeedToken{{
				Token:  store.Token{Name: strings.ToUpper(name), Access: []store.Access{store.AccessSecurityDirector}, Active: true},
				Secret: sec,
			}}
			var createErr, bulkErr error
			var wg sync.WaitGroup
			start := make(chan struct{})
			wg.Add(2)
			go func() {
				defer wg.Done()
				<-start
				_, createErr = s.Create(admin, store.NewToken{Name: strings.ToLower(name), Access: []store.Access{store.AccessThirdPartyFeeds}})
			}()
			go func() {
				defer wg.Done()
				<-start
				bulkErr = s.BulkLoad(admin, seed)
			}()
			close(start)
			wg.Wait()
			if (createErr == nil) == (bulkErr == nil) {
				t.Fatalf("round %d: Create: %v; BulkLoad: %v; want exactly one success", round, createErr, bulkErr)
			}
			for _, err := range []error{createErr, bulkErr} {
				if err != nil && !errors.Is(err, store.ErrNameTaken) {
					t.Fatalf("round %d: loser's error %v is not ErrNameTaken", round, err)
				}
			}
		}
		list, err := s.List()
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != rounds {
			t.Fatalf("%d tokens after %d rounds", len(list), rounds)
		}
		seen := map[string]bool{}
		for _, tok := range list {
			low := strings.ToLower(tok.Name)
			if seen[low] {
				t.Fatalf("two tokens named %q", low)
			}
			seen[low] = true
			got, err := s.Get(low)
			if err != nil || got.ID != tok.ID {
				t.Fatalf("name index of %q points at %q (%v), list has %q", low, got.ID, err, tok.ID)
			}
		}
	})
}

package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/storetest"
)

// A token picked by ID, deleted and re-created under the same name before the
// action on it: the action refuses with a *GoneError naming the picked ID,
// touches nothing (neither the new token of that name nor the batch's other
// tokens), and acting on the new token's ID works.
func TestActingByIDNeverTouchesTheNewTokenOfThatName(t *testing.T) {
	desc := "changed"
	ops := []struct {
		name string
		act  func(s *store.Store, other, picked string) error
	}{
		{"deactivate", func(s *store.Store, other, picked string) error {
			_, err := s.SetActiveIDs(admin, []string{other, picked}, false)
			return err
		}},
		{"activate", func(s *store.Store, other, picked string) error {
			_, err := s.SetActiveIDs(admin, []string{other, picked}, true)
			return err
		}},
		{"delete", func(s *store.Store, other, picked string) error {
			_, err := s.DeleteIDs(admin, []string{other, picked})
			return err
		}},
		{"edit", func(s *store.Store, _, picked string) error {
			_, err := s.EditID(admin, picked, store.Edit{Description: &desc})
			return err
		}},
		{"block", func(s *store.Store, _, picked string) error {
			_, err := s.SetBlockedID(admin, picked, []string{"192.0.2.1"}, true)
			return err
		}},
		{"usage", func(s *store.Store, _, picked string) error {
			_, err := s.UsageID(picked)
			return err
		}},
		{"usage series", func(s *store.Store, _, picked string) error {
			_, err := s.UsageSeriesID(picked, "", time.Time{})
			return err
		}},
	}
	storetest.Each(t, func(t *testing.T, eng storetest.Engine) {
		for _, op := range ops {
			t.Run(op.name, func(t *testing.T) {
				s := openOn(t, eng, nil)
				other := mustCreate(t, s, "other").Token
				if op.name == "activate" {
					if _, err := s.SetActive(admin, []string{"other"}, false); err != nil {
						t.Fatal(err)
					}
				}
				picked := mustCreate(t, s, "feed").Token
				if _, err := s.Delete(admin, []string{"feed"}); err != nil {
					t.Fatal(err)
				}
				fresh := mustCreate(t, s, "feed").Token
				before := takeSnapshot(t, s)

				err := op.act(s, other.ID, picked.ID)
				var gone *store.GoneError
				if !errors.Is(err, store.ErrNotFound) || !errors.As(err, &gone) || gone.ID != picked.ID {
					t.Fatalf("acting on the deleted token's ID: %v, want a GoneError for %s", err, picked.ID)
				}
				assertUnchanged(t, before, takeSnapshot(t, s))

				if err := op.act(s, other.ID, fresh.ID); err != nil {
					t.Fatalf("acting on the new token's ID: %v", err)
				}
			})
		}
	})
}

// The name versions resolve a name to its token inside the transaction that
// acts on it, through the same implementation: a name that is gone is
// refused with the name, all or nothing.
func TestNameVersionsStillActByName(t *testing.T) {
	storetest.Each(t, func(t *testing.T, eng storetest.Engine) { nameVersionsStillActByName(t, openOn(t, eng, nil)) })
}

func nameVersionsStillActByName(t *testing.T, s *store.Store) {
	mustCreate(t, s, "feed")
	mustCreate(t, s, "other")
	before := takeSnapshot(t, s)
	if _, err := s.SetActive(admin, []string{"other", "ghost"}, false); !errors.Is(err, store.ErrNotFound) || err.Error() != `no token named "ghost": not found` {
		t.Fatalf("SetActive of a missing name: %v", err)
	}
	assertUnchanged(t, before, takeSnapshot(t, s))
	if n, err := s.SetActive(admin, []string{"FEED", "feed"}, false); err != nil || n != 1 {
		t.Fatalf("SetActive by name: %d, %v", n, err)
	}
	if tok, err := s.Get("feed"); err != nil || tok.Active {
		t.Fatalf("feed after deactivation by name: %+v, %v", tok, err)
	}
}

func TestIDBatchesAreChecked(t *testing.T) {
	s := openMem(t, nil)
	tok := mustCreate(t, s, "feed").Token
	if _, err := s.SetActiveIDs(admin, nil, false); err == nil {
		t.Error("an empty batch was accepted")
	}
	many := make([]string, s.MaxBatch()+1)
	for i := range many {
		many[i] = tok.ID
	}
	if _, err := s.DeleteIDs(admin, many); !errors.Is(err, store.ErrTooMany) {
		t.Errorf("a batch over MaxBatch: %v, want ErrTooMany", err)
	}
	if n, err := s.SetActiveIDs(admin, []string{tok.ID, tok.ID}, false); err != nil || n != 1 {
		t.Errorf("a repeated ID: %d, %v; want one change", n, err)
	}
	if _, err := s.EditID(admin, "", store.Edit{}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("an empty ID: %v, want ErrNotFound", err)
	}
}

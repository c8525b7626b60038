package store_test

import (
	"strings"
	"testing"
	"time"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/storetest"
)

// The gate records usage every second: repeated uses of one token collapse into
// the newest, so a subscriber that reads slowly is not pushed into a reload.
func TestFeedCollapsesRepeatedUse(t *testing.T) {
	storetest.Each(t, func(t *testing.T, eng storetest.Engine) {
		s, err := store.New(eng.New(t), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		const bound = 200 // the queue's (4096 in production): each use is a commit on etcd
		s.SetPendingBound(bound)
		c, err := s.Create(store.Actor{User: "t"}, store.NewToken{Name: "hot", Access: []store.Access{store.AccessSecurityDirector}})
		if err != nil {
			t.Fatal(err)
		}
		sub := s.Subscribe()
		defer sub.Close()
		start := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
		const uses = 3 * bound // past the bound, were they not collapsed
		for i := 0; i < uses; i++ {
			at := start.Add(time.Duration(i) * time.Second)
			if _, err := s.RecordUsage([]store.UsageDelta{{TokenID: c.Token.ID, IP: "10.0.0.1", FirstUsedAt: at, LastUsedAt: at, Allowed: 1}}); err != nil {
				t.Fatal(err)
			}
		}
		changes, reload := sub.Take()
		if reload || len(changes) != 1 {
			t.Fatalf("got %d changes, reload %v; want the newest use alone", len(changes), reload)
		}
		if want := start.Add((uses - 1) * time.Second); changes[0].Kind != store.ChangeUsed || !changes[0].LastUsedAt.Equal(want) {
			t.Fatalf("change = %+v, want ChangeUsed at %s", changes[0], want)
		}
	})
}

func TestInMemoryStoreTakesLongestDescription(t *testing.T) {
	storetest.Each(t, func(t *testing.T, eng storetest.Engine) {
		s, err := store.New(eng.New(t), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		desc := strings.Repeat("日", store.MaxDescriptionLen)
		if _, err := s.Create(store.Actor{User: "t"}, store.NewToken{Name: "wide", Description: desc, Access: []store.Access{store.AccessThirdPartyFeeds}}); err != nil {
			t.Fatal(err)
		}
		if tok, err := s.Get("wide"); err != nil || tok.Description != desc {
			t.Fatalf("stored description differs: %v", err)
		}
	})
}

// An edit that changes nothing writes nothing and tells no subscriber: the gate
// and every TUI session would otherwise re-read the token for nothing.
func TestNoOpEditPublishesNothing(t *testing.T) {
	storetest.Each(t, func(t *testing.T, eng storetest.Engine) {
		s, err := store.New(eng.New(t), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := s.Create(store.Actor{User: "t"}, store.NewToken{Name: "same", Description: "d", Access: []store.Access{store.AccessSecurityDirector}}); err != nil {
			t.Fatal(err)
		}
		before, _ := s.Audit(0)
		sub := s.Subscribe()
		defer sub.Close()
		desc := "d"
		if _, err := s.Edit(store.Actor{User: "t"}, "same", store.Edit{Description: &desc, Access: []store.Access{store.AccessSecurityDirector}}); err != nil {
			t.Fatal(err)
		}
		if changes, reload := sub.Take(); len(changes) != 0 || reload {
			t.Fatalf("a no-op edit published %v (reload %v)", changes, reload)
		}
		if after, _ := s.Audit(0); len(after) != len(before) {
			t.Fatal("a no-op edit wrote an audit event")
		}
	})
}

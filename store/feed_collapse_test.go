package store_test

import (
	"strings"
	"testing"
	"time"

	"github.com/apptokens/apptokens/store"
)

// The gate records usage every second: repeated uses of one token collapse into
// the newest, so a subscriber that reads slowly is not pushed into a reload.
func TestFeedCollapsesRepeatedUse(t *testing.T) {
	s, err := store.Open(store.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := s.Create(store.Actor{User: "t"}, store.NewToken{Name: "hot", Access: []store.Access{store.AccessSecurityDirector}})
	if err != nil {
		t.Fatal(err)
	}
	sub := s.Subscribe()
	defer sub.Close()
	start := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	for i := 0; i < 6000; i++ {
		at := start.Add(time.Duration(i) * time.Second)
		if _, err := s.RecordUsage([]store.UsageDelta{{TokenID: c.Token.ID, IP: "10.0.0.1", FirstUsedAt: at, LastUsedAt: at, Allowed: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	changes, reload := sub.Take()
	if reload || len(changes) != 1 {
		t.Fatalf("got %d changes, reload %v; want the newest use alone", len(changes), reload)
	}
	if want := start.Add(5999 * time.Second); changes[0].Kind != store.ChangeUsed || !changes[0].LastUsedAt.Equal(want) {
		t.Fatalf("change = %+v, want ChangeUsed at %s", changes[0], want)
	}
}

func TestInMemoryStoreTakesLongestDescription(t *testing.T) {
	s, err := store.Open(store.Options{InMemory: true})
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
}

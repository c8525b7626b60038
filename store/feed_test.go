package store_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/storetest"
)

// wait returns when sub is signalled, or fails the test.
func wait(t *testing.T, sub *store.Subscription) {
	t.Helper()
	select {
	case _, ok := <-sub.C():
		if !ok {
			t.Fatal("subscription closed")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no change signalled")
	}
}

// TestFeedAfterCommit: each change is signalled after its commit, so a subscriber
// that reads the store on the signal sees the change.
func TestFeedAfterCommit(t *testing.T) {
	storetest.Each(t, func(t *testing.T, eng storetest.Engine) {
		s := openOn(t, eng, nil)
		sub := s.Subscribe()
		defer sub.Close()

		seen := make(chan error, 1)
		go func() {
			var err error
			defer func() { seen <- err }()
			for range sub.C() {
				changes, _ := sub.Take()
				for _, ch := range changes {
					if ch.Kind != store.ChangeToken {
						continue
					}
					tok, gerr := s.GetByID(ch.TokenID)
					if gerr != nil || tok.Name != ch.Name {
						err = fmt.Errorf("change %+v signalled but not readable: %v", ch, gerr)
						return
					}
					if tok.Name == "feed-last" {
						return
					}
				}
			}
			err = fmt.Errorf("subscription closed before the last change")
		}()
		for i := range 50 {
			mustCreate(t, s, fmt.Sprintf("feed-%02d", i))
		}
		mustCreate(t, s, "feed-last")
		select {
		case err := <-seen:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("subscriber never saw the last change")
		}
	})
}

// TestFeedKinds: each kind of write tells subscribers what it touched.
func TestFeedKinds(t *testing.T) {
	storetest.Each(t, func(t *testing.T, eng storetest.Engine) {
		s := openOn(t, eng, nil)
		sub := s.Subscribe()
		defer sub.Close()
		c := mustCreate(t, s, "kinds")
		id := c.Token.ID
		usedAt := time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)
		// Each change carries the state its subscribers need: the token as
		// committed, the address and its block, the rows written, the policy.
		tok := func(active bool, desc string) *store.Token {
			t := c.Token
			t.Active, t.Description = active, desc
			return &t
		}
		steps := []struct {
			name  string
			write func() error
			want  store.Change
		}{
			{"create", func() error { return nil }, store.Change{Kind: store.ChangeToken, TokenID: id, Name: "kinds", Token: tok(true, c.Token.Description)}},
			{"edit", func() error {
				d := "x"
				_, err := s.Edit(admin, "KINDS", store.Edit{Description: &d})
				return err
			}, store.Change{Kind: store.ChangeToken, TokenID: id, Name: "kinds", Token: tok(true, "x")}},
			{"deactivate", func() error { _, err := s.SetActive(admin, []string{"kinds"}, false); return err },
				store.Change{Kind: store.ChangeToken, TokenID: id, Name: "kinds", Token: tok(false, "x")}},
			{"block", func() error { _, err := s.SetBlocked(admin, "kinds", []string{"192.0.2.1"}, true); return err },
				store.Change{Kind: store.ChangeUsage, TokenID: id, Name: "kinds", IP: "192.0.2.1", Blocked: true}},
			{"usage", func() error {
				_, err := s.RecordUsage([]store.UsageDelta{
					{TokenID: id, IP: "192.0.2.2", FirstUsedAt: usedAt, LastUsedAt: usedAt, Allowed: 1},
					{TokenID: id, IP: "192.0.2.1", FirstUsedAt: usedAt, LastUsedAt: usedAt, Denied: 1},
				})
				return err
			}, store.Change{Kind: store.ChangeUsed, TokenID: id, Name: "kinds", LastUsedAt: usedAt, Usage: []store.Usage{
				{TokenID: id, IP: "192.0.2.2", FirstUsedAt: usedAt, LastUsedAt: usedAt, Allowed: 1},
				{TokenID: id, IP: "192.0.2.1", FirstUsedAt: usedAt, LastUsedAt: usedAt, Denied: 1, Blocked: true},
			}, Hours: []store.UsageHour{
				{IP: "192.0.2.2", Hour: usedAt.Truncate(time.Hour), Allowed: 1},
				{IP: "192.0.2.1", Hour: usedAt.Truncate(time.Hour), Denied: 1},
			}}},
			{"unblock", func() error { _, err := s.SetBlocked(admin, "kinds", []string{"::ffff:192.0.2.1"}, false); return err },
				store.Change{Kind: store.ChangeUsage, TokenID: id, Name: "kinds", IP: "192.0.2.1", Blocked: false}},
			{"policy", func() error { return s.SetInactiveAfter(time.Hour) }, store.Change{Kind: store.ChangePolicy, InactiveAfter: time.Hour, DeleteAfter: store.DefaultDeleteAfter}},
			{"delete", func() error { _, err := s.Delete(admin, []string{"kinds"}); return err },
				store.Change{Kind: store.ChangeDeleted, TokenID: id, Name: "kinds", Token: func() *store.Token {
					t := tok(false, "x")
					t.LastUsedAt = usedAt
					return t
				}()}},
		}
		for _, st := range steps {
			if err := st.write(); err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
			wait(t, sub)
			changes, reload := sub.Take()
			if reload || len(changes) != 1 || !sameChange(changes[0], st.want) {
				t.Errorf("%s: got %s (reload %v), want [%s]", st.name, showChanges(changes), reload, showChanges([]store.Change{st.want}))
			}
		}
		// A refused write publishes nothing.
		if _, err := s.Create(admin, store.NewToken{Name: "bad name"}); err == nil {
			t.Fatal("bad name accepted")
		}
		select {
		case <-sub.C():
			changes, reload := sub.Take()
			t.Errorf("refused write signalled %+v (reload %v)", changes, reload)
		case <-time.After(50 * time.Millisecond):
		}
	})
}

// TestSlowSubscriberNeverBlocksWriters: a subscriber that never reads does not
// hold up writes, three times as many as its queue holds; it is told to
// reload and then gets changes again.
func TestSlowSubscriberNeverBlocksWriters(t *testing.T) {
	storetest.Each(t, func(t *testing.T, eng storetest.Engine) {
		s := openOn(t, eng, nil)
		const bound = 200 // the queue's (4096 in production): each write is a commit on etcd
		s.SetPendingBound(bound)
		mustCreate(t, s, "busy")
		sleeper := s.Subscribe() // never read during the writes
		defer sleeper.Close()
		reader := s.Subscribe()
		defer reader.Close()

		const writes = 3 * bound
		done := make(chan error, 1)
		go func() {
			for i := range writes {
				d := fmt.Sprintf("revision %d", i)
				if _, err := s.Edit(admin, "busy", store.Edit{Description: &d}); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
		// A second subscriber reading along keeps up, or is told to reload.
		readerCount, readerReloads := 0, 0
		var writeErr error
	loop:
		for {
			select {
			case writeErr = <-done:
				break loop
			case <-reader.C():
				changes, reload := reader.Take()
				readerCount += len(changes)
				if reload {
					readerReloads++
				}
			case <-time.After(60 * time.Second):
				t.Fatalf("%d writes did not complete: a subscriber blocks writers", writes)
			}
		}
		if writeErr != nil {
			t.Fatal(writeErr)
		}
		changes, reload := reader.Take()
		readerCount += len(changes)
		if reload {
			readerReloads++
		}
		if readerReloads == 0 && readerCount != writes {
			t.Errorf("reading subscriber got %d of %d changes and no reload", readerCount, writes)
		}

		changes, reload = sleeper.Take()
		if !reload || len(changes) != 0 {
			t.Fatalf("sleeping subscriber: %d changes, reload %v; want a reload and no queue", len(changes), reload)
		}
		// After the reload it is back to ordinary changes.
		if changes, reload := sleeper.Take(); reload || len(changes) != 0 {
			t.Fatalf("second Take: %d changes, reload %v", len(changes), reload)
		}
		mustCreate(t, s, "after-reload")
		wait(t, sleeper)
		changes, reload = sleeper.Take()
		if reload || len(changes) != 1 || changes[0].Name != "after-reload" {
			t.Fatalf("after reload: %+v (reload %v)", changes, reload)
		}
	})
}

// TestSubscriptionClose: closing the store closes every C(); a subscription made
// after Close starts closed; a cancelled subscription gets nothing more.
func TestSubscriptionClose(t *testing.T) {
	storetest.Each(t, func(t *testing.T, eng storetest.Engine) {
		s, err := store.New(eng.New(t), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		a := s.Subscribe()
		b := s.Subscribe()
		b.Close()
		if _, ok := <-b.C(); ok {
			t.Fatal("cancelled subscription's channel still open")
		}
		mustCreate(t, s, "one")
		if changes, reload := b.Take(); len(changes) != 0 || reload {
			t.Errorf("cancelled subscription received %+v", changes)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		deadline := time.After(5 * time.Second)
		for closed := false; !closed; {
			select {
			case _, ok := <-a.C():
				closed = !ok
			case <-deadline:
				t.Fatal("store Close did not close the subscription")
			}
		}
		a.Close() // cancelling after the store closed is harmless
		b.Close() // and so is cancelling twice
		if _, ok := <-s.Subscribe().C(); ok {
			t.Fatal("subscription to a closed store is open")
		}
	})
}

// sameChange compares changes by what they carry; times of the token it
// carries (set by the store's clock) are not compared but for the last use.
func sameChange(got, want store.Change) bool {
	if (got.Token == nil) != (want.Token == nil) {
		return false
	}
	if got.Token != nil {
		g, w := *got.Token, *want.Token
		g.UpdatedAt, w.UpdatedAt = time.Time{}, time.Time{}
		if !reflect.DeepEqual(g, w) {
			return false
		}
	}
	got.Token, want.Token = nil, nil
	return reflect.DeepEqual(got, want)
}

func showChanges(cs []store.Change) string {
	var b strings.Builder
	for _, c := range cs {
		fmt.Fprintf(&b, "%+v", c)
		if c.Token != nil {
			fmt.Fprintf(&b, " token=%+v", *c.Token)
		}
		b.WriteString("; ")
	}
	return b.String()
}

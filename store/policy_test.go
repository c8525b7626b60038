package store_test

import (
	"slices"
	"testing"
	"time"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/storetest"
)

const day = 24 * time.Hour

func TestStateAt(t *testing.T) {
	t0 := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	policy := store.DefaultInactiveAfter
	if policy != 30*day {
		t.Fatalf("default policy %v, want 30 days", policy)
	}
	tests := []struct {
		name  string
		tok   store.Token
		now   time.Time
		after time.Duration
		want  store.State
		days  int // DaysToInactive; -1 when not ok
	}{
		{"just created", store.Token{Active: true, CreatedAt: t0}, t0, policy, store.StateActive, 30},
		{"an hour old", store.Token{Active: true, CreatedAt: t0}, t0.Add(time.Hour), policy, store.StateActive, 30},
		{"one day old", store.Token{Active: true, CreatedAt: t0}, t0.Add(day), policy, store.StateActive, 29},
		{"last second", store.Token{Active: true, CreatedAt: t0}, t0.Add(30*day - time.Second), policy, store.StateActive, 1},
		{"30 days unused", store.Token{Active: true, CreatedAt: t0}, t0.Add(30 * day), policy, store.StateInactive, -1},
		{"a year unused", store.Token{Active: true, CreatedAt: t0}, t0.Add(365 * day), policy, store.StateInactive, -1},
		{"used on day 20", store.Token{Active: true, CreatedAt: t0, LastUsedAt: t0.Add(20 * day)}, t0.Add(45 * day), policy, store.StateActive, 5},
		{"used on day 20, 30 days on", store.Token{Active: true, CreatedAt: t0, LastUsedAt: t0.Add(20 * day)}, t0.Add(50 * day), policy, store.StateInactive, -1},
		{"re-activated on day 40", store.Token{Active: true, CreatedAt: t0, ActivatedAt: t0.Add(40 * day)}, t0.Add(41 * day), policy, store.StateActive, 29},
		{"re-activated, then 30 days", store.Token{Active: true, CreatedAt: t0, ActivatedAt: t0.Add(40 * day)}, t0.Add(70 * day), policy, store.StateInactive, -1},
		{"used before re-activation", store.Token{Active: true, CreatedAt: t0, LastUsedAt: t0.Add(5 * day), ActivatedAt: t0.Add(40 * day)}, t0.Add(60 * day), policy, store.StateActive, 10},
		{"deactivated", store.Token{Active: false, CreatedAt: t0}, t0, policy, store.StateInactive, -1},
		{"policy off", store.Token{Active: true, CreatedAt: t0}, t0.Add(10 * 365 * day), 0, store.StateActive, -1},
		{"policy off, deactivated", store.Token{Active: false, CreatedAt: t0}, t0, 0, store.StateInactive, -1},
		{"short policy", store.Token{Active: true, CreatedAt: t0}, t0.Add(36 * time.Hour), 2 * day, store.StateActive, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.tok.StateAt(tt.now, tt.after); got != tt.want {
				t.Errorf("StateAt = %s, want %s", got, tt.want)
			}
			if got := tt.tok.Expired(tt.now, tt.after); got != (tt.tok.Active && tt.want == store.StateInactive) {
				t.Errorf("Expired = %v", got)
			}
			days, ok := tt.tok.DaysToInactive(tt.now, tt.after)
			if tt.days < 0 {
				if ok {
					t.Errorf("DaysToInactive = %d, want none", days)
				}
			} else if !ok || days != tt.days {
				t.Errorf("DaysToInactive = %d, %v; want %d", days, ok, tt.days)
			}
		})
	}
	if store.StateActive.Label() != "Active" || store.StateInactive.Label() != "Inactive" {
		t.Error("state labels")
	}
}

func TestExpireStale(t *testing.T) {
	storetest.Each(t, func(t *testing.T, eng storetest.Engine) {
		c := newClock()
		s := openOn(t, eng, c)
		t0 := c.Now()
		used := mustCreate(t, s, "used")
		mustCreate(t, s, "idle-a")
		mustCreate(t, s, "idle-b")
		mustCreate(t, s, "off")
		if _, err := s.SetActive(admin, []string{"off"}, false); err != nil {
			t.Fatal(err)
		}

		c.Add(20 * day)
		if _, err := s.RecordUsage([]store.UsageDelta{{TokenID: used.Token.ID, IP: "192.0.2.4", FirstUsedAt: c.Now(), LastUsedAt: c.Now(), Allowed: 1}}); err != nil {
			t.Fatal(err)
		}
		// Denied requests alone do not count as use.
		idleA, err := s.Get("idle-a")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.RecordUsage([]store.UsageDelta{{TokenID: idleA.ID, IP: "192.0.2.5", FirstUsedAt: c.Now(), LastUsedAt: c.Now(), Denied: 3}}); err != nil {
			t.Fatal(err)
		}
		if names, err := s.ExpireStale(admin); err != nil || len(names) != 0 {
			t.Fatalf("day 20: ExpireStale = %v, %v; want nothing", names, err)
		}

		c.Add(10 * day) // day 30: the unused ones go, the one used on day 20 stays
		sub := s.Subscribe()
		defer sub.Close()
		sweeper := store.Actor{User: "policy"}
		names, err := s.ExpireStale(sweeper)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(names)
		if !slices.Equal(names, []string{"idle-a", "idle-b"}) {
			t.Fatalf("ExpireStale = %v, want idle-a and idle-b", names)
		}
		wait(t, sub)
		if changes, _ := sub.Take(); len(changes) != 2 {
			t.Errorf("expiry published %d changes, want 2", len(changes))
		}
		events, err := s.Audit(2)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range events {
			if e.Action != store.ActionExpire || e.Actor != "policy" || e.Details != "unused for 30 days" || !e.Time.Equal(c.Now()) {
				t.Errorf("audit event %+v", e)
			}
		}
		for name, want := range map[string]bool{"used": true, "idle-a": false, "idle-b": false, "off": false} {
			tok, err := s.Get(name)
			if err != nil {
				t.Fatal(err)
			}
			if tok.Active != want {
				t.Errorf("%s: Active = %v, want %v", name, tok.Active, want)
			}
		}
		// A second sweep finds nothing more.
		if names, err := s.ExpireStale(sweeper); err != nil || len(names) != 0 {
			t.Fatalf("second sweep = %v, %v", names, err)
		}

		// Activating an expired token restarts its clock from now.
		if n, err := s.SetActive(admin, []string{"idle-a"}, true); err != nil || n != 1 {
			t.Fatalf("SetActive = %d, %v", n, err)
		}
		tok, err := s.Get("idle-a")
		if err != nil {
			t.Fatal(err)
		}
		if !tok.ActivatedAt.Equal(c.Now()) {
			t.Errorf("ActivatedAt = %v, want %v", tok.ActivatedAt, c.Now())
		}
		if days, ok := tok.DaysToInactive(c.Now(), s.InactiveAfter()); !ok || days != 30 {
			t.Errorf("re-activated token: %d days to inactive (ok %v), want 30", days, ok)
		}
		c.Add(29 * day)
		if names, err := s.ExpireStale(sweeper); err != nil || slices.Contains(names, "idle-a") {
			t.Fatalf("29 days after re-activation: swept %v, %v", names, err)
		}
		c.Add(day)
		if names, err := s.ExpireStale(sweeper); err != nil || !slices.Contains(names, "idle-a") {
			t.Fatalf("30 days after re-activation: swept %v, %v", names, err)
		}
		if !c.Now().After(t0.Add(59 * day)) {
			t.Fatal("clock did not move")
		}
	})
}

// TestActivateStaleButUnswept: a token the policy made Inactive, before any sweep
// marked it, is activated (and its clock restarted) by SetActive(true).
func TestActivateStaleButUnswept(t *testing.T) {
	storetest.Each(t, func(t *testing.T, eng storetest.Engine) {
		c := newClock()
		s := openOn(t, eng, c)
		mustCreate(t, s, "stale")
		c.Add(31 * day)
		tok, err := s.Get("stale")
		if err != nil {
			t.Fatal(err)
		}
		if !tok.Active || tok.StateAt(c.Now(), s.InactiveAfter()) != store.StateInactive {
			t.Fatalf("setup: token %+v should be stale but unswept", tok)
		}
		if n, err := s.SetActive(admin, []string{"stale"}, true); err != nil || n != 1 {
			t.Fatalf("SetActive = %d, %v; want 1 change", n, err)
		}
		tok, err = s.Get("stale")
		if err != nil {
			t.Fatal(err)
		}
		if tok.StateAt(c.Now(), s.InactiveAfter()) != store.StateActive {
			t.Fatal("activated token is still inactive")
		}
		if ev, err := s.Audit(1); err != nil || ev[0].Action != store.ActionActivate {
			t.Fatalf("audit %+v, %v", ev, err)
		}
		// Activating an active token again changes nothing.
		before := takeSnapshot(t, s)
		if n, err := s.SetActive(admin, []string{"stale"}, true); err != nil || n != 0 {
			t.Fatalf("second SetActive = %d, %v", n, err)
		}
		assertUnchanged(t, before, takeSnapshot(t, s))
	})
}

func TestPolicyOffAndPersisted(t *testing.T) {
	c := newClock()
	dir := t.TempDir()
	s, err := storetest.OpenWith(storetest.Options{Dir: dir, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	if s.InactiveAfter() != store.DefaultInactiveAfter {
		t.Fatalf("fresh store policy %v", s.InactiveAfter())
	}
	mustCreate(t, s, "forever")
	if err := s.SetInactiveAfter(0); err != nil {
		t.Fatal(err)
	}
	if err := s.SetInactiveAfter(-time.Hour); err == nil {
		t.Fatal("negative policy accepted")
	}
	c.Add(1000 * day)
	if names, err := s.ExpireStale(admin); err != nil || len(names) != 0 {
		t.Fatalf("policy off: swept %v, %v", names, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = storetest.OpenWith(storetest.Options{Dir: dir, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.InactiveAfter() != 0 {
		t.Fatalf("policy after reopen = %v, want 0 (off)", s.InactiveAfter())
	}
	tok, err := s.Get("forever")
	if err != nil {
		t.Fatal(err)
	}
	if tok.StateAt(c.Now(), s.InactiveAfter()) != store.StateActive {
		t.Fatal("token inactive with the policy off")
	}
}

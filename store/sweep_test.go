package store_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apptokens/apptokens/internal/secret"
	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/storetest"
)

// openHooks opens a store over e on c that queues webhook events.
func openHooks(t *testing.T, e storetest.Engine, c *clock) *store.Store {
	t.Helper()
	return e.Open(t, store.Options{Now: c.Now, Webhooks: true})
}

// pending is the outbox as "event token at" lines.
func pending(t *testing.T, s *store.Store) []string {
	t.Helper()
	evs, err := s.PendingWebhooks(0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		out = append(out, e.Event+" "+e.Token+" "+e.At.Format(time.RFC3339))
	}
	return out
}

// ackAll empties the outbox.
func ackAll(t *testing.T, s *store.Store) {
	t.Helper()
	evs, err := s.PendingWebhooks(0)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if err := s.AckWebhook(e.ID); err != nil {
			t.Fatal(err)
		}
	}
}

func sweep(t *testing.T, s *store.Store) store.SweepResult {
	t.Helper()
	res, err := s.Sweep(admin)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// auditOf is the audit trail of one token, oldest first, as "actor action details".
func auditOf(t *testing.T, s *store.Store, name string) []string {
	t.Helper()
	evs, err := s.Audit(0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := len(evs) - 1; i >= 0; i-- {
		if e := evs[i]; e.Token == name {
			out = append(out, strings.TrimSpace(e.Actor+" "+e.Action+" "+e.Details))
		}
	}
	return out
}

func TestAutoDelete(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		for _, tc := range []struct {
			name    string
			used    bool          // used once, a day after creation
			after   time.Duration // since the last use (or creation)
			deleted bool
		}{
			{"never used, 89 days", false, 89 * day, false},
			{"never used, 90 days less 1ns", false, 90*day - 1, false},
			{"never used, 90 days", false, 90 * day, true},
			{"used, 89 days after", true, 89 * day, false},
			{"used, 90 days after", true, 90 * day, true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c := newClock()
				s := openHooks(t, e, c)
				cr := mustCreate(t, s, "feed")
				mustCreate(t, s, "other")
				if tc.used {
					c.Add(day)
					if _, err := s.RecordUsage([]store.UsageDelta{{TokenID: cr.Token.ID, IP: "192.0.2.1", FirstUsedAt: c.Now(), LastUsedAt: c.Now(), Allowed: 1}}); err != nil {
						t.Fatal(err)
					}
				}
				if _, err := s.SetAllowed(admin, "feed", []string{"192.0.2.0/24"}, true); err != nil {
					t.Fatal(err)
				}
				if _, err := s.SetBlocked(admin, "feed", []string{"198.51.100.0/24"}, true); err != nil {
					t.Fatal(err)
				}
				c.Add(tc.after)
				res := sweep(t, s)
				_, err := s.Get("feed")
				if gone := errors.Is(err, store.ErrNotFound); gone != tc.deleted {
					t.Fatalf("deleted: %v (%v), want %v; sweep %+v", gone, err, tc.deleted, res)
				}
				if !tc.deleted {
					for _, n := range res.Deleted {
						if n == "feed" {
							t.Errorf("sweep deleted %q", res.Deleted)
						}
					}
					return
				}
				if !reflect.DeepEqual(res.Deleted, []string{"feed", "other"}) && !reflect.DeepEqual(res.Deleted, []string{"other", "feed"}) && !(tc.used && reflect.DeepEqual(res.Deleted, []string{"feed"})) {
					t.Errorf("sweep deleted %q", res.Deleted)
				}
				trail := auditOf(t, s, "feed")
				if last := trail[len(trail)-1]; last != "apptokens auto-delete unused for 90 days" {
					t.Errorf("audit trail %q: want the auto-delete last, by apptokens", trail)
				}
				if _, _, err := s.Whois(cr.Secret.Digest()); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("whois after delete: %v", err)
				}
				raw, err := s.RawKV()
				if err != nil {
					t.Fatal(err)
				}
				for k := range raw {
					if strings.Contains(k, cr.Token.ID) {
						t.Errorf("key %q of the deleted token left", k)
					}
				}
				found := false
				for _, p := range pending(t, s) {
					found = found || strings.HasPrefix(p, "token.deleted feed ")
				}
				if !found {
					t.Errorf("outbox %q lacks token.deleted", pending(t, s))
				}
			})
		}
	})
}

func TestAutoDeleteOff(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		c := newClock()
		s := openOn(t, e, c)
		if s.DeleteAfter() != store.DefaultDeleteAfter {
			t.Fatalf("default delete-after %v", s.DeleteAfter())
		}
		if err := s.SetDeleteAfter(0); err != nil {
			t.Fatal(err)
		}
		if err := s.SetDeleteAfter(-time.Hour); err == nil {
			t.Error("negative delete-after accepted")
		}
		mustCreate(t, s, "feed")
		c.Add(1000 * day)
		if res := sweep(t, s); len(res.Deleted) != 0 || !reflect.DeepEqual(res.Inactivated, []string{"feed"}) {
			t.Errorf("sweep %+v", res)
		}
		raw, err := s.RawKV()
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := raw["m/delete_after"]; !ok || v != "0" {
			t.Errorf("m/delete_after = %q, %v; want it stored as 0", v, ok)
		}
	})
}

// TestOutboxOnce: each warning and event is queued once, in order, however
// often the sweep runs; an acked event is gone; without webhooks nothing is
// queued, and turning them on later sends no old warning.
func TestOutboxOnce(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		c := newClock()
		s := openHooks(t, e, c)
		if err := s.SetInactiveAfter(0); err != nil {
			t.Fatal(err)
		}
		if err := s.SetDeleteAfter(0); err != nil {
			t.Fatal(err)
		}
		start := c.Now()
		at := start.Add(10 * day)
		if _, err := s.Create(admin, store.NewToken{Name: "feed", Access: []store.Access{store.AccessThirdPartyFeeds}, ExpiresAt: at}); err != nil {
			t.Fatal(err)
		}
		stamp := at.Format(time.RFC3339)
		for _, step := range []struct {
			to   time.Duration // since start
			want []string      // the outbox after two sweeps
		}{
			{2 * day, nil},
			{3*day - 1, nil},
			{3 * day, []string{"token.expiring feed " + stamp}},
			{8 * day, []string{"token.expiring feed " + stamp}},
			{9 * day, []string{"token.expiring feed " + stamp, "token.expiring feed " + stamp}},
			{10*day - 1, []string{"token.expiring feed " + stamp, "token.expiring feed " + stamp}},
			{10 * day, []string{"token.expiring feed " + stamp, "token.expiring feed " + stamp, "token.expired feed " + stamp}},
			{20 * day, []string{"token.expiring feed " + stamp, "token.expiring feed " + stamp, "token.expired feed " + stamp}},
		} {
			c.Add(start.Add(step.to).Sub(c.Now()))
			sweep(t, s)
			sweep(t, s)
			if got := pending(t, s); !reflect.DeepEqual(got, step.want) {
				t.Fatalf("at +%v: outbox %q, want %q", step.to, got, step.want)
			}
		}
		if trail := auditOf(t, s, "feed"); trail[len(trail)-1] != "apptokens expired expires="+stamp || strings.Count(strings.Join(trail, "|"), "expired") != 1 {
			t.Errorf("audit %q: want one expired event by apptokens", trail)
		}
		evs, _ := s.PendingWebhooks(1)
		if len(evs) != 1 || evs[0].Event != store.EventExpiring || evs[0].Hint == "" {
			t.Fatalf("PendingWebhooks(1) = %+v", evs)
		}
		if err := s.AckWebhook(evs[0].ID); err != nil {
			t.Fatal(err)
		}
		if err := s.AckWebhook(evs[0].ID); err != nil {
			t.Errorf("acking twice: %v", err)
		}
		if got := len(pending(t, s)); got != 2 {
			t.Errorf("after an ack %d pending, want 2", got)
		}

		// Without webhooks: nothing queued; warnings marked all the same.
		c2 := newClock()
		quiet := openOn(t, e, c2)
		if _, err := quiet.Create(admin, store.NewToken{Name: "feed", Access: []store.Access{store.AccessThirdPartyFeeds}, ExpiresAt: c2.Now().Add(2 * day)}); err != nil {
			t.Fatal(err)
		}
		c2.Add(day)
		if res := sweep(t, quiet); res.Warned != 2 {
			t.Errorf("warned %d, want 2 (7 d and 1 d, the 7 d one missed)", res.Warned)
		}
		if got := pending(t, quiet); got != nil {
			t.Errorf("outbox without webhooks: %q", got)
		}
	})
}

// TestInactivityWarnings: token.inactivating at 7 d and 1 d before, then
// token.inactivated; a use in between moves the warnings.
func TestInactivityWarnings(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		c := newClock()
		s := openHooks(t, e, c)
		start := c.Now()
		cr := mustCreate(t, s, "feed")
		c.Add(23 * day)
		sweep(t, s)
		if got := pending(t, s); !reflect.DeepEqual(got, []string{"token.inactivating feed " + start.Add(30*day).Format(time.RFC3339)}) {
			t.Fatalf("at 23 d: %q", got)
		}
		ackAll(t, s)
		// Used: the clock starts again; the next warning is 7 d before the new end.
		if _, err := s.RecordUsage([]store.UsageDelta{{TokenID: cr.Token.ID, IP: "192.0.2.1", FirstUsedAt: c.Now(), LastUsedAt: c.Now(), Allowed: 1}}); err != nil {
			t.Fatal(err)
		}
		used := c.Now()
		c.Add(22 * day)
		sweep(t, s)
		if got := pending(t, s); got != nil {
			t.Fatalf("at 22 d after use: %q", got)
		}
		c.Add(day)
		sweep(t, s)
		c.Add(6 * day)
		sweep(t, s)
		c.Add(day)
		res := sweep(t, s)
		end := used.Add(30 * day).Format(time.RFC3339)
		want := []string{"token.inactivating feed " + end, "token.inactivating feed " + end, "token.inactivated feed " + end}
		if got := pending(t, s); !reflect.DeepEqual(got, want) || !reflect.DeepEqual(res.Inactivated, []string{"feed"}) {
			t.Fatalf("outbox %q (sweep %+v), want %q", got, res, want)
		}
		if trail := auditOf(t, s, "feed"); trail[len(trail)-1] != "alice expire unused for 30 days" {
			t.Errorf("audit %q", trail)
		}
	})
}

func TestRevokeByReport(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		for _, tc := range []struct {
			name     string
			reported func(cur, old secret.Token) secret.Digest
			found    bool
		}{
			{"current secret", func(cur, _ secret.Token) secret.Digest { return cur.Digest() }, true},
			{"old secret in its grace window", func(_, old secret.Token) secret.Digest { return old.Digest() }, true},
			{"unknown secret", func(_, _ secret.Token) secret.Digest { return secret.DigestOf("aptk_junk") }, false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c := newClock()
				s := openHooks(t, e, c)
				first := mustCreate(t, s, "feed")
				rot, err := s.Rotate(admin, "feed", time.Hour)
				if err != nil {
					t.Fatal(err)
				}
				before := takeSnapshot(t, s)
				found, err := s.RevokeByReport(tc.reported(rot.Secret, first.Secret), "203.0.113.5")
				if err != nil || found != tc.found {
					t.Fatalf("RevokeByReport: %v, %v; want found %v", found, err, tc.found)
				}
				if !tc.found {
					assertUnchanged(t, before, takeSnapshot(t, s))
					return
				}
				tok, _ := s.Get("feed")
				if tok.Active || tok.OldDigest != (secret.Digest{}) {
					t.Errorf("after the report: active %v, old digest kept %v", tok.Active, tok.OldDigest != (secret.Digest{}))
				}
				if got := whoisAt(t, s, first.Secret.Digest()); got != "none" {
					t.Errorf("the old secret after the report: %s", got)
				}
				trail := auditOf(t, s, "feed")
				if last := trail[len(trail)-1]; last != "apptokens revoked_by_report ip=203.0.113.5" {
					t.Errorf("audit %q", trail)
				}
				if got := pending(t, s); len(got) != 1 || !strings.HasPrefix(got[0], "token.revoked_by_report feed ") {
					t.Errorf("outbox %q", got)
				}
				// Reported again: nothing more to do, nothing written.
				again := takeSnapshot(t, s)
				if found, err := s.RevokeByReport(rot.Secret.Digest(), "203.0.113.5"); !found || err != nil {
					t.Errorf("second report: %v, %v", found, err)
				}
				assertUnchanged(t, again, takeSnapshot(t, s))
			})
		}
	})
}

// TestLifecycleRefusals: every refused change leaves the store as it was,
// with a one-line error.
func TestLifecycleRefusals(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		c := newClock()
		s := openOn(t, e, c)
		cr := mustCreate(t, s, "feed")
		if _, err := s.SetAllowed(admin, "feed", []string{"192.0.2.0/24"}, true); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Rotate(admin, "feed", time.Hour); err != nil {
			t.Fatal(err)
		}
		past := c.Now().Add(-time.Second)
		now := c.Now()
		before := takeSnapshot(t, s)
		for _, tc := range []struct {
			name string
			do   func() error
			is   error
		}{
			{"create expiring in the past", func() error {
				_, err := s.Create(admin, store.NewToken{Name: "new", Access: []store.Access{store.AccessThirdPartyFeeds}, ExpiresAt: past})
				return err
			}, store.ErrInvalidExpires},
			{"create expiring now", func() error {
				_, err := s.Create(admin, store.NewToken{Name: "new", Access: []store.Access{store.AccessThirdPartyFeeds}, ExpiresAt: now})
				return err
			}, store.ErrInvalidExpires},
			{"edit expiry to the past", func() error {
				_, err := s.Edit(admin, "feed", store.Edit{ExpiresAt: &past})
				return err
			}, store.ErrInvalidExpires},
			{"rotate with a negative grace", func() error { _, err := s.Rotate(admin, "feed", -time.Second); return err }, store.ErrInvalidGrace},
			{"rotate with a grace over a year", func() error { _, err := s.Rotate(admin, "feed", store.MaxGrace+time.Second); return err }, store.ErrInvalidGrace},
			{"rotate a missing token", func() error { _, err := s.Rotate(admin, "nope", time.Hour); return err }, store.ErrNotFound},
			{"rotate a missing id", func() error { _, err := s.RotateID(admin, "0123456789abcdef", time.Hour); return err }, store.ErrNotFound},
			{"allow with host bits", func() error {
				_, err := s.SetAllowed(admin, "feed", []string{"10.0.0.0/8", "10.0.0.1/8"}, true)
				return err
			}, store.ErrInvalidIP},
			{"allow junk", func() error { _, err := s.SetAllowed(admin, "feed", []string{"here"}, true); return err }, store.ErrInvalidIP},
			{"allow nothing", func() error { _, err := s.SetAllowed(admin, "feed", nil, true); return err }, nil},
			{"allow on a missing token", func() error { _, err := s.SetAllowed(admin, "nope", []string{"10.0.0.0/8"}, true); return err }, store.ErrNotFound},
			{"block with host bits", func() error { _, err := s.SetBlocked(admin, "feed", []string{"203.0.113.1/24"}, true); return err }, store.ErrInvalidIP},
			{"block the unspecified address", func() error { _, err := s.SetBlocked(admin, "feed", []string{"::"}, true); return err }, store.ErrInvalidIP},
			{"disallow what is not allowed", func() error {
				n, err := s.SetAllowed(admin, "feed", []string{"10.0.0.0/8"}, false)
				if err == nil && n != 0 {
					return errors.New("changed something")
				}
				return errors.New("no change") // not an error, but must change nothing
			}, nil},
			{"negative delete-after", func() error { return s.SetDeleteAfter(-1) }, nil},
			{"bad outbox id", func() error { return s.AckWebhook("a/b") }, nil},
			{"whois of an unknown digest", func() error { _, _, err := s.Whois(secret.DigestOf("aptk_x")); return err }, store.ErrNotFound},
			{"report of an unknown digest", func() error {
				if found, err := s.RevokeByReport(secret.DigestOf("aptk_x"), "192.0.2.1"); found || err != nil {
					return errors.New("found")
				}
				return errors.New("no change")
			}, nil},
		} {
			err := tc.do()
			if err == nil || tc.is != nil && !errors.Is(err, tc.is) || strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), string(cr.Secret)) {
				t.Errorf("%s: %v; want one line matching %v", tc.name, err, tc.is)
			}
		}
		assertUnchanged(t, before, takeSnapshot(t, s))
	})
}

// TestSweepChunks: a sweep with more tokens to change than one transaction of
// the engine holds (etcd's 128 operations on the shared engine) does them all,
// in chunks, each event queued once.
func TestSweepChunks(t *testing.T) {
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		c := newClock()
		s := openHooks(t, e, c)
		const n = 40
		names := make([]string, n)
		for i := range names {
			names[i] = "tok-" + string(rune('a'+i/26)) + string(rune('a'+i%26))
			if _, err := s.Create(admin, store.NewToken{Name: names[i], Access: []store.Access{store.AccessThirdPartyFeeds}, ExpiresAt: c.Now().Add(40 * day)}); err != nil {
				t.Fatal(err)
			}
		}
		c.Add(31 * day)
		res := sweep(t, s)
		if len(res.Inactivated) != n {
			t.Fatalf("inactivated %d of %d", len(res.Inactivated), n)
		}
		count := map[string]int{}
		for _, p := range pending(t, s) {
			count[strings.Fields(p)[0]]++
		}
		// The expiry 9 d ahead: its 7 d warning is not due yet; a token that
		// has already become inactive gets token.inactivated, and no late
		// warning that it will.
		if want := map[string]int{store.EventInactivated: n}; !reflect.DeepEqual(count, want) {
			t.Errorf("outbox %v, want %v", count, want)
		}
		if res := sweep(t, s); res.Changed() || res.Warned != 0 {
			t.Errorf("second sweep: %+v", res)
		}
	})
}

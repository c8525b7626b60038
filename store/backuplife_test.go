package store_test

import (
	"bytes"
	"errors"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/storetest"
)

// populateLifecycle gives s what the lifecycle keeps: an expiry passed and
// noted by the sweep, a warning done, a rotation in its grace window, an
// allow-list, a blocked range and a delete-after policy of its own.
func populateLifecycle(t *testing.T, s *store.Store, c *clock) (rotated store.Created, old store.Created) {
	t.Helper()
	old = mustCreate(t, s, "rotating")
	if _, err := s.Create(admin, store.NewToken{Name: "expiring", Access: []store.Access{store.AccessThirdPartyFeeds}, ExpiresAt: c.Now().Add(2 * day)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(admin, store.NewToken{Name: "expired", Access: []store.Access{store.AccessThirdPartyFeeds}, ExpiresAt: c.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetAllowed(admin, "rotating", []string{"192.0.2.0/24", "2001:db8::/48", "198.51.100.7"}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetBlocked(admin, "rotating", []string{"192.0.2.128/25", "203.0.113.5"}, true); err != nil {
		t.Fatal(err)
	}
	if err := s.SetDeleteAfter(120 * day); err != nil {
		t.Fatal(err)
	}
	c.Add(2 * time.Hour)
	if res := sweep(t, s); !reflect.DeepEqual(res.Expired, []string{"expired"}) || res.Warned != 1 {
		t.Fatalf("sweep: %+v", res)
	}
	var err error
	if rotated, err = s.Rotate(admin, "rotating", 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	return rotated, old
}

// TestBackupLifecycle: expiry, rotation (the old secret and its window), the
// allow-list, blocked ranges, warnings done and the delete-after policy back
// up and restore on every engine, backing up again as the same bytes; the
// restored store answers the old secret as old, and its sweep does not note
// the expiry or send the warnings again.
func TestBackupLifecycle(t *testing.T) {
	c := newClock()
	src := openMem(t, c)
	rotated, old := populateLifecycle(t, src, c)
	first := backupOf(t, src)
	for _, want := range []string{`"delete_after":"2880h0m0s"`, `"expires_at":`, `"old_digest":`, `"old_hint":`, `"old_valid_until":`, `"rotated_at":`,
		`{"type":"allow","token_id":"` + old.Token.ID + `","cidr":"192.0.2.0/24"}`, `"ip":"192.0.2.128/25"`, `{"type":"warned","token_id":`} {
		if !strings.Contains(string(first), want) {
			t.Errorf("backup lacks %s:\n%s", want, first)
		}
	}
	if strings.Contains(string(first), string(rotated.Secret)) || strings.Contains(string(first), string(old.Secret)) {
		t.Fatal("a secret in the backup")
	}
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		dst := openOn(t, e, c)
		if err := dst.Restore(admin, bytes.NewReader(first), true); err != nil {
			t.Fatalf("restore: %v", err)
		}
		if got := withoutLastEvent(t, backupOf(t, dst)); got != string(first) {
			t.Fatalf("backup after the restore:\n%s\nwant\n%s", got, first)
		}
		if got := whoisAt(t, dst, old.Secret.Digest()); got != "old" {
			t.Errorf("old secret after the restore: %s", got)
		}
		if got := whoisAt(t, dst, rotated.Secret.Digest()); got != "current" {
			t.Errorf("new secret after the restore: %s", got)
		}
		if dst.DeleteAfter() != 120*day {
			t.Errorf("delete-after %v", dst.DeleteAfter())
		}
		tok, err := dst.Get("rotating")
		if err != nil || !reflect.DeepEqual(tok.Allowed, []string{"192.0.2.0/24", "198.51.100.7", "2001:db8::/48"}) {
			t.Errorf("allow-list after the restore: %q, %v", tok.Allowed, err)
		}
		if res := sweep(t, dst); res.Changed() || res.Warned != 0 {
			t.Errorf("sweep after the restore did again: %+v", res)
		}
		c.Add(24 * time.Hour)
		if res := sweep(t, dst); !reflect.DeepEqual(res.RotationEnd, []string{"rotating"}) {
			t.Errorf("grace window after the restore: %+v", res)
		}
		c.Add(-24 * time.Hour)
	})
}

// TestRestoreRefusesCraftedLifecycle: lifecycle records that break the rules
// are refused with one line naming them, the store unchanged.
func TestRestoreRefusesCraftedLifecycle(t *testing.T) {
	c := newClock()
	src := openMem(t, c)
	_, old := populateLifecycle(t, src, c)
	g := string(backupOf(t, src))
	sub := func(old, new string) string {
		if !strings.Contains(g, old) {
			t.Fatalf("backup holds no %q", old)
		}
		return strings.Replace(g, old, new, 1)
	}
	drop := func(re string) string {
		r := regexp.MustCompile(re)
		if !r.MatchString(g) {
			t.Fatalf("backup holds no %s", re)
		}
		return r.ReplaceAllString(g, "")
	}
	for _, tc := range []struct{ name, file, want string }{
		{"allow with host bits", sub(`"cidr":"192.0.2.0/24"`, `"cidr":"192.0.2.1/24"`), "host bits set"},
		{"allow not canonical", sub(`"cidr":"198.51.100.7"`, `"cidr":"::ffff:198.51.100.7"`), `is written "198.51.100.7" in a backup`},
		{"block range not canonical", sub(`"ip":"192.0.2.128/25"`, `"ip":"::ffff:192.0.2.128/121"`), `is written "192.0.2.128/25" in a backup`},
		{"unknown field", sub(`"old_hint":"`, `"old_hinx":"`), `unknown field "old_hinx"`},
		{"old secret without its end", drop(`,"old_valid_until":"[^"]*"`), "old_digest, old_hint and old_valid_until go together"},
		{"old secret without its hint", drop(`,"old_hint":"[^"]*"`), "old_digest, old_hint and old_valid_until go together"},
		{"old secret without its digest", drop(`,"old_digest":"[^"]*"`), "old_digest, old_hint and old_valid_until go together"},
		{"warned of an unknown event", sub(`"event":"token.expir`, `"event":"token.exfil`), "is not one of"},
		{"negative delete-after", sub(`"delete_after":"2880h0m0s"`, `"delete_after":"-1h"`), "delete_after"},
		{"allow of no token", sub(`{"type":"allow","token_id":"`+old.Token.ID, `{"type":"allow","token_id":"0000000000000000`), "no token with that id before it"},
	} {
		target := openMem(t, c)
		mustCreate(t, target, "kept")
		before, snap := backupOf(t, target), takeSnapshot(t, target)
		err := target.Restore(admin, strings.NewReader(tc.file), true)
		if !errors.Is(err, store.ErrInvalidBackup) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: Restore = %v; want one line with %q", tc.name, err, tc.want)
		}
		if after := backupOf(t, target); !bytes.Equal(before, after) {
			t.Errorf("%s: the store changed", tc.name)
		}
		assertUnchanged(t, snap, takeSnapshot(t, target))
	}
}

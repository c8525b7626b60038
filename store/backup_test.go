package store_test

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/storetest"
)

// populate writes tokens, usage, blocks, state changes, an edit, a delete and a
// policy change: every kind of record a backup must carry.
func populate(t *testing.T, s *store.Store, c *clock) {
	t.Helper()
	feed := mustCreate(t, s, "Feed-1", store.AccessThirdPartyFeeds)
	siem := mustCreate(t, s, "soc-siem-export", store.AccessSecurityDirector, store.AccessThirdPartyFeeds)
	mustCreate(t, s, "old-script")
	mustCreate(t, s, "gone")
	c.Add(time.Hour)
	t0 := c.Now()
	if _, err := s.RecordUsage([]store.UsageDelta{
		{TokenID: feed.Token.ID, IP: "192.0.2.1", FirstUsedAt: t0, LastUsedAt: t0.Add(time.Minute), Allowed: 12, Denied: 2},
		{TokenID: feed.Token.ID, IP: "2001:db8::7", FirstUsedAt: t0, LastUsedAt: t0.Add(2 * time.Minute), Allowed: 1},
		{TokenID: siem.Token.ID, IP: "198.51.100.3", FirstUsedAt: t0, LastUsedAt: t0, Denied: 5},
	}); err != nil {
		t.Fatal(err)
	}
	c.Add(time.Hour)
	if _, err := s.SetBlocked(admin, "Feed-1", []string{"192.0.2.1", "203.0.113.99"}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetActive(store.Actor{User: "bob", Fingerprint: "SHA256:abc"}, []string{"old-script"}, false); err != nil {
		t.Fatal(err)
	}
	d := "exports alerts to the SIEM\nnightly"
	if _, err := s.Edit(admin, "soc-siem-export", store.Edit{Description: &d}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(admin, []string{"gone"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetInactiveAfter(10 * 24 * time.Hour); err != nil {
		t.Fatal(err)
	}
	c.Add(time.Hour)
}

// withoutLastEvent is a backup file without its last line (the newest audit
// event: a restore's own).
func withoutLastEvent(t *testing.T, b []byte) string {
	t.Helper()
	s := strings.TrimSuffix(string(b), "\n")
	i := strings.LastIndexByte(s, '\n')
	if i < 0 || !strings.Contains(s[i:], `"type":"event"`) {
		t.Fatalf("backup ends in no event: %q", s[max(i, 0):])
	}
	return s[:i+1]
}

func TestBackupRestore(t *testing.T) {
	c := newClock()
	src, err := storetest.OpenWith(storetest.Options{Dir: t.TempDir(), Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	populate(t, src, c)
	want := takeSnapshot(t, src)
	if len(want.tokens) != 3 || len(want.usage["Feed-1"]) != 3 || len(want.audit) < 8 {
		t.Fatalf("populate wrote %d tokens, %d Feed-1 usage rows, %d events", len(want.tokens), len(want.usage["Feed-1"]), len(want.audit))
	}
	var backup bytes.Buffer
	if err := src.Backup(&backup); err != nil {
		t.Fatal(err)
	}

	restorer := store.Actor{User: "carol"}
	dstDir := t.TempDir()
	dst, err := storetest.OpenWith(storetest.Options{Dir: dstDir, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	sub := dst.Subscribe()
	if err := dst.Restore(restorer, bytes.NewReader(backup.Bytes()), false); err != nil {
		t.Fatalf("restore into an empty store: %v", err)
	}
	checkRestored := func(when string, s *store.Store) {
		t.Helper()
		got := takeSnapshot(t, s)
		if !reflect.DeepEqual(got.tokens, want.tokens) {
			t.Errorf("%s: tokens differ:\n got %+v\nwant %+v", when, got.tokens, want.tokens)
		}
		if !reflect.DeepEqual(got.usage, want.usage) {
			t.Errorf("%s: usage differs:\n got %+v\nwant %+v", when, got.usage, want.usage)
		}
		if !reflect.DeepEqual(got.gate, want.gate) {
			t.Errorf("%s: gate entries (blocks) differ", when)
		}
		if got.policy != want.policy {
			t.Errorf("%s: policy %v, want %v", when, got.policy, want.policy)
		}
		// The restore itself is audited, on top of the whole restored trail.
		if len(got.audit) != len(want.audit)+1 {
			t.Fatalf("%s: %d audit events, want %d + 1", when, len(got.audit), len(want.audit))
		}
		if r := got.audit[0]; r.Action != store.ActionRestore || r.Actor != "carol" {
			t.Errorf("%s: newest event %+v, want a restore by carol", when, r)
		}
		if !reflect.DeepEqual(got.audit[1:], want.audit) {
			t.Errorf("%s: audit differs:\n got %+v\nwant %+v", when, got.audit[1:], want.audit)
		}
		// A backup of it is the source's, plus the restore's event.
		var again bytes.Buffer
		if err := s.Backup(&again); err != nil {
			t.Fatal(err)
		}
		if got := withoutLastEvent(t, again.Bytes()); got != backup.String() {
			t.Errorf("%s: a backup differs from the one restored:\n%s\nwant\n%s", when, got, backup.String())
		}
	}
	checkRestored("after restore", dst)
	select {
	case <-sub.C():
		changes, reload := sub.Take()
		if !reload && (len(changes) != 1 || changes[0].Kind != store.ChangeReload) {
			t.Errorf("restore did not tell subscribers to reload: changes %+v", changes)
		}
	case <-time.After(5 * time.Second):
		t.Error("restore published no change")
	}

	// The restored data is durable: reopen the directory.
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	dst, err = storetest.OpenWith(storetest.Options{Dir: dstDir, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	checkRestored("after reopen", dst)

	// Writes after a restore work and see the restored name index.
	if _, err := dst.Create(admin, store.NewToken{Name: "FEED-1", Access: []store.Access{store.AccessSecurityDirector}}); !errors.Is(err, store.ErrNameTaken) {
		t.Errorf("create of a restored name: %v, want ErrNameTaken", err)
	}
	mustCreate(t, dst, "after-restore")

	// Restoring into a store that holds tokens is refused and changes nothing...
	before := takeSnapshot(t, dst)
	err = dst.Restore(restorer, bytes.NewReader(backup.Bytes()), false)
	if !errors.Is(err, store.ErrNotEmpty) {
		t.Fatalf("restore into a non-empty store: %v, want ErrNotEmpty", err)
	}
	if !strings.Contains(err.Error(), "already holds 4 tokens") {
		t.Errorf("message %q does not say what is in the way", err)
	}
	assertUnchanged(t, before, takeSnapshot(t, dst))

	// ...unless replace is asked for: then it holds exactly the backup again.
	if err := dst.Restore(restorer, bytes.NewReader(backup.Bytes()), true); err != nil {
		t.Fatalf("restore with replace: %v", err)
	}
	checkRestored("after replace", dst)
	if _, err := dst.Get("after-restore"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("token created before the replace survived it: %v", err)
	}
}

// TestRestoreBringsBackupPolicy: the restored store runs under the backup's
// inactivity policy, also when the backup kept the default and the store had
// another one, and reading the policy during a restore is safe.
func TestRestoreBringsBackupPolicy(t *testing.T) {
	src := openMem(t, nil)
	mustCreate(t, src, "source")
	dst, _ := openDir(t)
	mustCreate(t, dst, "to-be-replaced")
	if err := dst.SetInactiveAfter(0); err != nil {
		t.Fatal(err)
	}
	for _, policy := range []time.Duration{store.DefaultInactiveAfter, 5 * 24 * time.Hour} {
		if policy != store.DefaultInactiveAfter {
			if err := src.SetInactiveAfter(policy); err != nil {
				t.Fatal(err)
			}
		}
		var backup bytes.Buffer
		if err := src.Backup(&backup); err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() { // a gate reading the policy during the restore
			defer close(done)
			for {
				select {
				case <-stop:
					return
				default:
					_ = dst.InactiveAfter()
				}
			}
		}()
		err := dst.Restore(admin, &backup, true)
		close(stop)
		<-done
		if err != nil {
			t.Fatal(err)
		}
		if got := dst.InactiveAfter(); got != policy {
			t.Fatalf("policy after restore = %v, want the backup's %v", got, policy)
		}
	}
}

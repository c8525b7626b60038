package store_test

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/badger"
	"github.com/apptokens/apptokens/store/etcd/etcdtest"
)

// TestBackupBadgerEtcdBadger (issue 10, the migration path): a Badger
// store's backup restored into etcd (an in-process cluster on loopback) and
// backed up there is the same file, record for record and byte for byte (but
// the restore's own audit event); restored into Badger again, the same once
// more. The previous release's backup restores into etcd as the same records
// as into Badger; usage recorded through two nodes backs up merged, the same
// through either; and a crafted file is refused with etcd's data unchanged.
func TestBackupBadgerEtcdBadger(t *testing.T) {
	c := newClock()
	cluster := etcdtest.Start(t, 1)
	prefixes := 0
	openEtcd := func(prefix, node string) *store.Store {
		t.Helper()
		s, err := store.New(cluster.Engine(t, prefix, node), store.Options{Now: c.Now, LegacyBackup: badger.ReadLegacyBackup})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	fresh := func(node string) (*store.Store, string) {
		prefixes++
		p := "/apptokens-" + string(rune('a'+prefixes)) + "/"
		return openEtcd(p, node), p
	}

	src := openMem(t, c)
	populate(t, src, c)
	first := backupOf(t, src)
	e, prefix := fresh("n1")
	mustCreate(t, e, "replaced-by-the-restore")
	if err := e.Restore(admin, bytes.NewReader(first), true); err != nil {
		t.Fatalf("restore into etcd: %v", err)
	}
	second := backupOf(t, e)
	if got := withoutLastEvent(t, second); got != string(first) {
		t.Fatalf("backup of etcd after the restore:\n%s\nwant\n%s", got, first)
	}
	back := openMem(t, c)
	if err := back.Restore(admin, bytes.NewReader(second), false); err != nil {
		t.Fatalf("restore into badger: %v", err)
	}
	if got := withoutLastEvent(t, backupOf(t, back)); got != string(second) {
		t.Fatalf("backup of badger after the restore from etcd:\n%s\nwant\n%s", got, second)
	}

	// Two nodes record usage of one (token, address): one record, added up.
	e2 := openEtcd(prefix, "n2")
	tok, err := e.Get("Feed-1")
	if err != nil {
		t.Fatal(err)
	}
	at := c.Now()
	for _, s := range []*store.Store{e, e2} {
		if _, err := s.RecordUsage([]store.UsageDelta{{TokenID: tok.ID, IP: "192.0.2.1", FirstUsedAt: at, LastUsedAt: at, Allowed: 100}}); err != nil {
			t.Fatal(err)
		}
	}
	b1, b2 := backupOf(t, e), backupOf(t, e2)
	want := `"ip":"192.0.2.1","first_used_at":"2026-03-01T10:00:00Z","last_used_at":"` + at.Format(time.RFC3339Nano) + `","allowed":212,"denied":2}`
	if !bytes.Equal(b1, b2) || strings.Count(string(b1), want+"\n") != 1 {
		t.Errorf("usage through two nodes backs up as\n%s\nand through the other as\n%s\nwant one usage record ending %s", b1, b2, want)
	}

	// A crafted file changes nothing.
	before := backupOf(t, e)
	bad := strings.Replace(string(b1), `"description":"test token Feed-1"`, `"description":"\u001b]0;owned\u0007"`, 1)
	err = e.Restore(admin, strings.NewReader(bad), true)
	if !errors.Is(err, store.ErrInvalidBackup) || !strings.HasSuffix(err.Error(), ": token "+tok.ID+": description may not contain control character U+001B") {
		t.Errorf("crafted file: %v", err)
	}
	if after := backupOf(t, e); !bytes.Equal(before, after) {
		t.Errorf("a refused restore changed etcd:\n%s\nwas\n%s", after, before)
	}

	// The previous release's backup, restored into etcd, backs up as the
	// golden file (its content, proven in store/badger) and the restore.
	old, err := os.ReadFile("testdata/legacy-v2.backup")
	if err != nil {
		t.Fatal(err)
	}
	golden, err := os.ReadFile("testdata/legacy-v2.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	c.Add(24 * time.Hour)
	l, _ := fresh("n1")
	if err := l.Restore(admin, bytes.NewReader(old), false); err != nil {
		t.Fatalf("restore of the old backup into etcd: %v", err)
	}
	if got := withoutLastEvent(t, backupOf(t, l)); got != string(golden) {
		t.Errorf("old backup restored into etcd backs up as\n%s\nwant\n%s", got, golden)
	}
}

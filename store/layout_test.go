package store_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/storetest"
)

// oldLayoutRecords are the records of a database written before blocks had
// their own keys: the blocked flag inside the usage row, the last use only in
// the token record.
func oldLayoutRecords(t *testing.T) (store.Token, map[string][]byte) {
	t.Helper()
	tok := rawToken(t, "legacy")
	at := tok.CreatedAt.Add(time.Hour)
	tok.LastUsedAt = at
	recs := records(tok)
	for i, ip := range []string{"192.0.2.1", "192.0.2.2", "2001:db8::1"} {
		u := store.Usage{TokenID: tok.ID, IP: ip, FirstUsedAt: at, LastUsedAt: at, Allowed: uint64(i + 1), Blocked: ip == "192.0.2.2"}
		b, err := json.Marshal(u)
		if err != nil {
			t.Fatal(err)
		}
		recs[string(store.UsageKey(tok.ID, ip))] = b
	}
	return tok, recs
}

// TestOpenMigratesOldLayout: a database of the old layout keeps every block and
// its last-used time when opened; the migration runs once and an unblock made
// after it stays unblocked across restarts.
func TestOpenMigratesOldLayout(t *testing.T) {
	dir := t.TempDir()
	tok, recs := oldLayoutRecords(t)
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error {
		for k, v := range recs {
			if err := txn.Set([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	open := func() *store.Store {
		t.Helper()
		s, err := storetest.OpenWith(storetest.Options{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	blockedIPs := func(s *store.Store) []string {
		t.Helper()
		rows, err := s.Usage("legacy")
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 3 {
			t.Fatalf("%d usage rows after migration, want 3", len(rows))
		}
		var out []string
		for _, u := range rows {
			if u.Blocked {
				out = append(out, u.IP)
			}
		}
		return out
	}
	s := open()
	if got := blockedIPs(s); !reflect.DeepEqual(got, []string{"192.0.2.2"}) {
		t.Fatalf("blocked after migration: %v, want [192.0.2.2]", got)
	}
	ge, err := s.GateEntries()
	if err != nil {
		t.Fatal(err)
	}
	if len(ge) != 1 || !reflect.DeepEqual(ge[0].Blocked, []string{"192.0.2.2"}) {
		t.Fatalf("gate entries after migration: %+v", ge)
	}
	if got, err := s.Get("legacy"); err != nil || !got.LastUsedAt.Equal(tok.LastUsedAt) {
		t.Fatalf("last used after migration: %v (%v), want %v", got.LastUsedAt, err, tok.LastUsedAt)
	}
	migrated, err := s.DumpKV()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := migrated[hexKey(store.LayoutKey)]; !ok {
		t.Fatal("no layout key after migration")
	}
	s.Close()

	// Once: a second open writes nothing.
	s = open()
	again, err := s.DumpKV()
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(migrated, again) {
		t.Fatal("a second open rewrote records: the migration ran twice")
	}
	if _, err := s.SetBlocked(admin, "legacy", []string{"192.0.2.2"}, false); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open()
	defer s.Close()
	if got := blockedIPs(s); len(got) != 0 {
		t.Fatalf("unblocked address blocked again after a restart: %v", got)
	}
}

// TestRestoreOldLayoutBackup: a backup made before blocks had their own keys
// restores with its blocks.
func TestRestoreOldLayoutBackup(t *testing.T) {
	_, recs := oldLayoutRecords(t)
	s := openMem(t, nil)
	if err := s.Restore(admin, bytes.NewReader(craftedBackup(t, recs)), false); err != nil {
		t.Fatal(err)
	}
	rows, err := s.Usage("legacy")
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range rows {
		if u.Blocked != (u.IP == "192.0.2.2") {
			t.Fatalf("restored row %+v", u)
		}
	}
	// A backup of the new layout that still holds a blocked flag in a usage
	// row would lose that block: refused.
	recs[store.LayoutKey] = []byte("2")
	err = openMem(t, nil).Restore(admin, bytes.NewReader(craftedBackup(t, recs)), false)
	if !errors.Is(err, store.ErrInvalidBackup) || !strings.Contains(err.Error(), "blocked flag") {
		t.Fatalf("new-layout backup with a blocked usage row: %v", err)
	}
}

func hexKey(k string) string {
	const digits = "0123456789abcdef"
	var b strings.Builder
	for i := 0; i < len(k); i++ {
		b.WriteByte(digits[k[i]>>4])
		b.WriteByte(digits[k[i]&15])
	}
	return b.String()
}

// errInjected is the write error a test makes a restore meet.
var errInjected = errors.New("injected write error")

// TestRestoreFailingHalfWayLeavesDataWhole (issue 8, fault 9): a restore
// --replace that fails after writing half of the backup leaves the database
// exactly as it was (a backup before and after are the same bytes), also
// across a restart; a restore that succeeds then replaces everything.
func TestRestoreFailingHalfWayLeavesDataWhole(t *testing.T) {
	for _, inMemory := range []bool{false, true} {
		name := "dir"
		if inMemory {
			name = "memory"
		}
		t.Run(name, func(t *testing.T) {
			c := newClock()
			dir := t.TempDir()
			opts := storetest.Options{Dir: dir, InMemory: inMemory, Now: c.Now}
			s, err := storetest.OpenWith(opts)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { s.Close() }()
			populate(t, s, c)
			before := takeSnapshot(t, s)
			var backupBefore bytes.Buffer
			if err := s.Backup(&backupBefore); err != nil {
				t.Fatal(err)
			}

			// Another database to restore from: other tokens, many records.
			other := openMem(t, c)
			for _, n := range []string{"other-1", "other-2", "other-3", "other-4"} {
				mustCreate(t, other, n)
			}
			var incoming bytes.Buffer
			if err := other.Backup(&incoming); err != nil {
				t.Fatal(err)
			}
			raw, err := other.DumpKV()
			if err != nil {
				t.Fatal(err)
			}
			half := len(raw) / 2
			calls := 0
			store.SetRestoreHook(s, func(written int) error {
				calls++
				if written == half {
					return errInjected
				}
				return nil
			})
			err = s.Restore(admin, bytes.NewReader(incoming.Bytes()), true)
			if !errors.Is(err, errInjected) {
				t.Fatalf("restore with a write failing half-way: %v", err)
			}
			if calls != half+1 {
				t.Fatalf("the restore wrote %d records before failing, want %d", calls-1, half)
			}
			assertUnchanged(t, before, takeSnapshot(t, s))
			var backupAfter bytes.Buffer
			if err := s.Backup(&backupAfter); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(backupBefore.Bytes(), backupAfter.Bytes()) {
				t.Fatal("a backup after the failed restore differs from one before")
			}
			if !inMemory {
				if left, _ := filepath.Glob(filepath.Join(dir, "data-*")); len(left) != 0 {
					t.Fatalf("the failed restore left %v behind", left)
				}
				s.Close()
				if s, err = storetest.OpenWith(opts); err != nil {
					t.Fatal(err)
				}
				assertUnchanged(t, before, takeSnapshot(t, s))
			}

			// Without the fault, the restore replaces everything.
			store.SetRestoreHook(s, nil)
			if err := s.Restore(admin, bytes.NewReader(incoming.Bytes()), true); err != nil {
				t.Fatal(err)
			}
			check := func(when string) {
				t.Helper()
				toks, err := s.List()
				if err != nil {
					t.Fatal(err)
				}
				var names []string
				for _, tk := range toks {
					names = append(names, tk.Name)
				}
				if strings.Join(names, " ") != "other-1 other-2 other-3 other-4" {
					t.Fatalf("%s: tokens %v", when, names)
				}
			}
			check("after the restore")
			if inMemory {
				return
			}
			s.Close()
			if s, err = storetest.OpenWith(opts); err != nil {
				t.Fatal(err)
			}
			check("after a restart")
			// The old data is gone from the disk: only the restored directory
			// and the files apptokens keeps are left.
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				if e.Name() != "apptokens.lock" && e.Name() != "apptokens.data" && !(e.IsDir() && strings.HasPrefix(e.Name(), "data-")) {
					t.Errorf("left in the database directory after a restore: %s", e.Name())
				}
			}
			// Should the data directory go missing, Open says so rather than
			// starting an empty database in its place.
			s.Close()
			data, _ := filepath.Glob(filepath.Join(dir, "data-*"))
			if len(data) != 1 {
				t.Fatalf("data directories: %v", data)
			}
			if err := os.Rename(data[0], data[0]+".moved"); err != nil {
				t.Fatal(err)
			}
			if s2, err := storetest.OpenWith(opts); err == nil || !strings.Contains(err.Error(), "missing") {
				if err == nil {
					s2.Close()
				}
				t.Fatalf("open with the data directory gone: %v", err)
			}
			if err := os.Rename(data[0]+".moved", data[0]); err != nil {
				t.Fatal(err)
			}
			if s, err = storetest.OpenWith(opts); err != nil {
				t.Fatal(err)
			}
			check("after the data directory came back")
		})
	}
}

// TestRepeatedNamesCountOnce (issue 8, fault 12): a batch naming a token twice,
// in any case, acts on it once.
func TestRepeatedNamesCountOnce(t *testing.T) {
	storetest.Each(t, func(t *testing.T, eng storetest.Engine) {
		s := openOn(t, eng, nil)
		mustCreate(t, s, "a")
		mustCreate(t, s, "b")
		if n, err := s.SetActive(admin, []string{"a", "A"}, false); err != nil || n != 1 {
			t.Fatalf("deactivate a A: %d, %v", n, err)
		}
		if n, err := s.Delete(admin, []string{"a", "A", "b"}); err != nil || n != 2 {
			t.Fatalf("delete a A b: %d, %v", n, err)
		}
		if toks, _ := s.List(); len(toks) != 0 {
			t.Fatalf("left: %+v", toks)
		}
	})
}

// TestNoUsageWithoutAddress (issue 8, fault 12): usage from a peer without an IP
// address (a unix socket gives none; 0.0.0.0 is no client's) is refused and
// recorded nowhere; the other usage of the batch is; such an address cannot be
// blocked either.
func TestNoUsageWithoutAddress(t *testing.T) {
	storetest.Each(t, func(t *testing.T, eng storetest.Engine) {
		s := openOn(t, eng, nil)
		tok := mustCreate(t, s, "a").Token
		at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
		deltas := []store.UsageDelta{
			{TokenID: tok.ID, IP: "", FirstUsedAt: at, LastUsedAt: at, Allowed: 1},
			{TokenID: tok.ID, IP: "0.0.0.0", FirstUsedAt: at, LastUsedAt: at, Allowed: 1},
			{TokenID: tok.ID, IP: "192.0.2.9", FirstUsedAt: at, LastUsedAt: at, Allowed: 1},
			{TokenID: tok.ID, IP: "::", FirstUsedAt: at, LastUsedAt: at, Allowed: 1},
		}
		written, err := s.RecordUsage(deltas)
		if !errors.Is(err, store.ErrInvalidIP) || written != len(deltas) {
			t.Fatalf("RecordUsage: written %d, err %v; want all done and ErrInvalidIP", written, err)
		}
		rows, err := s.Usage("a")
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || rows[0].IP != "192.0.2.9" {
			t.Fatalf("usage rows: %+v, want only 192.0.2.9", rows)
		}
		for _, ip := range []string{"", "0.0.0.0", "::"} {
			if _, err := s.SetBlocked(admin, "a", []string{ip}, true); !errors.Is(err, store.ErrInvalidIP) {
				t.Errorf("block %q: %v, want ErrInvalidIP", ip, err)
			}
		}
	})
}

// TestValueLogGCAlongsideRestore: the value-log GC loop (here every
// millisecond) runs while restores swap the database under it, and Close
// stops it; the race detector watches the database handle.
func TestValueLogGCAlongsideRestore(t *testing.T) {
	c := newClock()
	dir := t.TempDir()
	s, err := storetest.OpenWith(storetest.Options{Dir: dir, Now: c.Now, ValueLogGCInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	populate(t, s, c)
	var backup bytes.Buffer
	if err := s.Backup(&backup); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := s.Restore(admin, bytes.NewReader(backup.Bytes()), true); err != nil {
			t.Fatal(err)
		}
		if toks, err := s.List(); err != nil || len(toks) != 3 {
			t.Fatalf("after a restore: %d tokens, %v", len(toks), err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not return: the GC loop holds the database")
	}
}

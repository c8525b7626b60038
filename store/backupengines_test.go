package store_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/storetest"
)

func backupOf(t *testing.T, s *store.Store) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := s.Backup(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestBackupAcrossEngines (the migration path): a backup of a Badger store
// restored into every engine of the table and backed up there is the same
// file, record for record and byte for byte (but the restore's own audit
// event); and that backup restored into Badger again, the same once more.
func TestBackupAcrossEngines(t *testing.T) {
	c := newClock()
	src := openMem(t, c)
	populate(t, src, c)
	first := backupOf(t, src)
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		dst := openOn(t, e, c)
		mustCreate(t, dst, "replaced-by-the-restore")
		if err := dst.Restore(admin, bytes.NewReader(first), true); err != nil {
			t.Fatalf("restore into %s: %v", e.Name, err)
		}
		second := backupOf(t, dst)
		if got := withoutLastEvent(t, second); got != string(first) {
			t.Fatalf("backup of %s after the restore:\n%s\nwant\n%s", e.Name, got, first)
		}
		back := openMem(t, c)
		if err := back.Restore(admin, bytes.NewReader(second), false); err != nil {
			t.Fatalf("restore into badger: %v", err)
		}
		if got := withoutLastEvent(t, backupOf(t, back)); got != string(second) {
			t.Fatalf("backup of badger after the restore:\n%s\nwant\n%s", got, second)
		}
	})
}

// TestBackupOfManyNodes: usage recorded through two nodes of one shared
// engine (each under keys of its own) is one record per (token, address) in
// a backup, counts added and first and last use the earliest and latest; the
// backup is the same through either node, and restored into Badger it backs
// up as the same file.
func TestBackupOfManyNodes(t *testing.T) {
	c := newClock()
	cluster := storetest.NewCluster(t, storetest.Badger().New(t), storetest.EtcdLimits())
	open := func(node string) *store.Store {
		s, err := store.New(cluster.Node(node), store.Options{Now: c.Now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	a, b := open("a"), open("b")
	tok := mustCreate(t, a, "shared-1").Token
	t0 := c.Now()
	for i, s := range []*store.Store{a, b, a} {
		at := t0.Add(time.Duration(i) * time.Minute)
		if _, err := s.RecordUsage([]store.UsageDelta{{TokenID: tok.ID, IP: "192.0.2.1", FirstUsedAt: at, LastUsedAt: at.Add(time.Second), Allowed: uint64(10 * (i + 1)), Denied: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	fromA, fromB := backupOf(t, a), backupOf(t, b)
	if !bytes.Equal(fromA, fromB) {
		t.Fatalf("backups through two nodes differ:\n%s\n%s", fromA, fromB)
	}
	usage := `{"type":"usage","token_id":"` + tok.ID + `","ip":"192.0.2.1","first_used_at":"2026-03-01T09:00:00Z","last_used_at":"2026-03-01T09:02:01Z","allowed":60,"denied":3}`
	hour := `{"type":"hour","token_id":"` + tok.ID + `","hour":"2026-03-01T09:00:00Z","allowed":60,"denied":3}`
	for _, want := range []string{usage, hour, `"last_used_at":"2026-03-01T09:02:01Z"}`} {
		if !strings.Contains(string(fromA), want+"\n") {
			t.Errorf("backup holds no line ending %s:\n%s", want, fromA)
		}
	}
	if n := strings.Count(string(fromA), `"type":"usage"`); n != 1 {
		t.Errorf("%d usage records, want 1 (merged)", n)
	}
	single := openMem(t, c)
	if err := single.Restore(admin, bytes.NewReader(fromA), false); err != nil {
		t.Fatal(err)
	}
	if got := withoutLastEvent(t, backupOf(t, single)); got != string(fromA) {
		t.Errorf("restored into badger, backs up as\n%s\nwant\n%s", got, fromA)
	}
}

// TestRestoreRefusesCraftedFile (issue 10): a crafted backup file (a newer
// version, a bad name, a control character in a description, a truncated
// line, …) is refused by Restore with its one line, on every engine, into a
// store with data (replace) and into an empty one, and changes nothing: a
// backup after is the same bytes as before.
func TestRestoreRefusesCraftedFile(t *testing.T) {
	golden, err := os.ReadFile("testdata/legacy-v2.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	g := string(golden)
	sub := func(old, new string) string {
		if !strings.Contains(g, old) {
			t.Fatalf("golden file holds no %q", old)
		}
		return strings.Replace(g, old, new, 1)
	}
	cases := []struct{ name, file, want string }{
		{"wrong version", sub(`"version":1}`, `"version":2}`),
			"backup: version 2 is newer than this apptokens reads (1)"},
		{"bad name", sub(`"name":"Feed-1"`, `"name":"Feed 1"`),
			`backup line 4: token b25a45533150c86b: name "Feed 1" may contain only letters, digits and dashes`},
		{"control character in a description", sub(`"description":"test token Feed-1"`, `"description":"test\u001b[2J"`),
			`backup line 4: token b25a45533150c86b: description may not contain control character U+001B`},
		{"truncated line", g[:len(g)-30],
			`backup line 35: the file ends inside this line (no newline after it): truncated`},
		{"usage of no token", sub(`{"type":"usage","token_id":"b25a45533150c86b"`, `{"type":"usage","token_id":"b25a45533150c86c"`),
			`backup line 12: usage of token "b25a45533150c86c": no token with that id before it`},
		{"unknown record", g + `{"type":"secret","token":"aptk_x"}` + "\n",
			`backup line 36: unknown record type "secret" (this apptokens knows policy, token, block, allow, warned, usage, hour, event)`},
	}
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		c := newClock()
		full := openOn(t, e, c)
		populate(t, full, c)
		empty := openOn(t, e, c)
		for _, tc := range cases {
			for _, target := range []struct {
				s       *store.Store
				replace bool
			}{{full, true}, {empty, false}} {
				before, snap := backupOf(t, target.s), takeSnapshot(t, target.s)
				err := target.s.Restore(admin, strings.NewReader(tc.file), target.replace)
				var be *store.BackupError
				if !errors.As(err, &be) || !errors.Is(err, store.ErrInvalidBackup) || err.Error() != tc.want {
					t.Errorf("%s (replace %v): Restore = %v\nwant %s", tc.name, target.replace, err, tc.want)
				}
				if after := backupOf(t, target.s); !bytes.Equal(before, after) {
					t.Errorf("%s (replace %v): the store changed:\n%s\nwas\n%s", tc.name, target.replace, after, before)
				}
				assertUnchanged(t, snap, takeSnapshot(t, target.s))
			}
		}
	})
}

// TestRestoreLegacyFixture: the previous release's backup in testdata
// restores, on every engine, into a store that answers exactly what the
// store it was made of answered (legacy-v2.expect.json), the restore's audit
// event on top.
func TestRestoreLegacyFixture(t *testing.T) {
	var x struct {
		Tokens []store.Token            `json:"tokens"`
		Usage  map[string][]store.Usage `json:"usage"`
		Series []struct {
			Token string            `json:"token"`
			IP    string            `json:"ip"`
			Hours []store.HourCount `json:"hours"`
		} `json:"series"`
		Audit         []store.Event `json:"audit"`
		InactiveAfter time.Duration `json:"inactive_after"`
	}
	raw, err := os.ReadFile("testdata/legacy-v2.expect.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &x); err != nil {
		t.Fatal(err)
	}
	old, err := os.ReadFile("testdata/legacy-v2.backup")
	if err != nil {
		t.Fatal(err)
	}
	storetest.Each(t, func(t *testing.T, e storetest.Engine) {
		c := newClock()
		c.Add(24 * time.Hour)
		s := openOn(t, e, c)
		if err := s.Restore(store.Actor{User: "carol"}, bytes.NewReader(old), false); err != nil {
			t.Fatalf("restore of the old backup: %v", err)
		}
		got := takeSnapshot(t, s)
		if !reflect.DeepEqual(got.tokens, x.Tokens) {
			t.Errorf("tokens:\n got %+v\nwant %+v", got.tokens, x.Tokens)
		}
		if !reflect.DeepEqual(got.usage, x.Usage) {
			t.Errorf("usage:\n got %+v\nwant %+v", got.usage, x.Usage)
		}
		if got.policy != x.InactiveAfter {
			t.Errorf("policy %v, want %v", got.policy, x.InactiveAfter)
		}
		if len(got.audit) != len(x.Audit)+1 || got.audit[0].Action != store.ActionRestore || !reflect.DeepEqual(got.audit[1:], x.Audit) {
			t.Errorf("audit:\n got %+v\nwant a restore and %+v", got.audit, x.Audit)
		}
		for _, sr := range x.Series {
			h, err := s.UsageSeries(sr.Token, sr.IP, time.Unix(0, 0))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(h, sr.Hours) {
				t.Errorf("series of %s %q: %+v, want %+v", sr.Token, sr.IP, h, sr.Hours)
			}
		}
	})
}

// TestBackupOfDamagedRecord: a record of the store that cannot be read (here
// a usage row that is not JSON) fails the backup with one line naming it,
// rather than leaving it out: a backup holds everything or is not made.
func TestBackupOfDamagedRecord(t *testing.T) {
	s := openMem(t, nil)
	tok := mustCreate(t, s, "damaged").Token
	if err := s.PutRaw(store.UsageKey(tok.ID, "192.0.2.1"), []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	err := s.Backup(&bytes.Buffer{})
	want := `backup: record "u/` + tok.ID + `/192.0.2.1": usage: invalid character 'n' looking for beginning of object key string`
	if err == nil || err.Error() != want || errors.Is(err, store.ErrInvalidBackup) {
		t.Errorf("Backup = %v\nwant %s", err, want)
	}
}

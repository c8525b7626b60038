package badger_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	bdb "github.com/dgraph-io/badger/v4"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/badger"
)

// legacyExpect is what the store that wrote testdata/legacy-v2.backup
// answered through its public API (List, Usage, UsageSeries, Audit,
// InactiveAfter) when it was made.
type legacyExpect struct {
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

// expectedLines are the records a backup file of that store holds, built
// from its answers (not from the backup code): what reading the old backup
// must give.
func (x legacyExpect) expectedLines(t *testing.T) []string {
	t.Helper()
	ts := func(tm time.Time) string {
		if tm.IsZero() {
			return "null"
		}
		return `"` + tm.UTC().Format(time.RFC3339Nano) + `"`
	}
	js := func(v any) string {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
		return strings.TrimSuffix(b.String(), "\n")
	}
	lines := []string{
		`{"format":"apptokens-backup","version":1}`,
		fmt.Sprintf(`{"type":"policy","inactive_after":%q}`, x.InactiveAfter.String()),
	}
	toks := slices.Clone(x.Tokens)
	slices.SortFunc(toks, func(a, b store.Token) int { return strings.Compare(a.ID, b.ID) })
	byName := map[string]string{}
	for _, tk := range toks {
		byName[tk.Name] = tk.ID
		lines = append(lines, fmt.Sprintf(`{"type":"token","id":%s,"name":%s,"description":%s,"access":%s,"active":%t,"digest":"%x","hint":%s,"created_at":%s,"updated_at":%s,"activated_at":%s,"last_used_at":%s}`,
			js(tk.ID), js(tk.Name), js(tk.Description), js(tk.Access), tk.Active, tk.Digest[:], js(tk.Hint),
			ts(tk.CreatedAt), ts(tk.UpdatedAt), ts(tk.ActivatedAt), ts(tk.LastUsedAt)))
	}
	var blocks, usage, hours []string
	for _, tk := range toks {
		rows := slices.Clone(x.Usage[tk.Name])
		slices.SortFunc(rows, func(a, b store.Usage) int { return strings.Compare(a.IP, b.IP) })
		for _, u := range rows {
			if u.Blocked {
				blocks = append(blocks, fmt.Sprintf(`{"type":"block","token_id":%s,"ip":%s}`, js(tk.ID), js(u.IP)))
			}
			usage = append(usage, fmt.Sprintf(`{"type":"usage","token_id":%s,"ip":%s,"first_used_at":%s,"last_used_at":%s,"allowed":%d,"denied":%d}`,
				js(tk.ID), js(u.IP), ts(u.FirstUsedAt), ts(u.LastUsedAt), u.Allowed, u.Denied))
		}
	}
	series := slices.Clone(x.Series)
	slices.SortStableFunc(series, func(a, b struct {
		Token string            `json:"token"`
		IP    string            `json:"ip"`
		Hours []store.HourCount `json:"hours"`
	}) int {
		if c := strings.Compare(byName[a.Token], byName[b.Token]); c != 0 {
			return c
		}
		return strings.Compare(a.IP, b.IP)
	})
	for _, s := range series {
		ip := ""
		if s.IP != "" {
			ip = `,"ip":` + js(s.IP)
		}
		for _, h := range s.Hours {
			hours = append(hours, fmt.Sprintf(`{"type":"hour","token_id":%s%s,"hour":%s,"allowed":%d,"denied":%d}`, js(byName[s.Token]), ip, ts(h.Hour), h.Allowed, h.Denied))
		}
	}
	lines = append(append(append(lines, blocks...), usage...), hours...)
	for i := len(x.Audit) - 1; i >= 0; i-- { // Audit is newest first
		e := x.Audit[i]
		lines = append(lines, fmt.Sprintf(`{"type":"event","time":%s,"actor":%s,"action":%s,"token":%s,"details":%s}`,
			ts(e.Time), js(e.Actor), js(e.Action), js(e.Token), js(e.Details)))
	}
	return lines
}

// TestReadLegacyBackupFixture: a backup made by the previous release (Badger's
// stream; testdata written by that release's code) reads as the records of
// everything that store answered when it was made: tokens with their latest
// use, blocks, usage, hourly history, audit trail and policy. The golden
// file is that backup as this release writes it.
func TestReadLegacyBackupFixture(t *testing.T) {
	var x legacyExpect
	raw, err := os.ReadFile("../testdata/legacy-v2.expect.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &x); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("../testdata/legacy-v2.backup")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := store.ReadBackup(f, badger.ReadLegacyBackup)
	if err != nil {
		t.Fatalf("ReadBackup of the old backup: %v", err)
	}
	var out bytes.Buffer
	if _, err := b.WriteTo(&out); err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	want := x.expectedLines(t)
	if !slices.Equal(got, want) {
		t.Errorf("old backup read as\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(want) < 30 {
		t.Errorf("the fixture has only %d records", len(want))
	}

	golden := "../testdata/legacy-v2.jsonl"
	if os.Getenv("APPTOKENS_UPDATE_GOLDEN") != "" {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	g, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(g, out.Bytes()) {
		t.Errorf("the old backup as a backup file differs from %s", golden)
	}
	// The file reads back as what it was written from, byte for byte.
	again, err := store.ReadBackup(bytes.NewReader(out.Bytes()), nil)
	if err != nil {
		t.Fatalf("ReadBackup of what it wrote: %v", err)
	}
	var out2 bytes.Buffer
	if _, err := again.WriteTo(&out2); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), out2.Bytes()) {
		t.Error("a backup file read and written again is not the same bytes")
	}
}

// fixtureKeys is every key and value of the old backup in testdata.
func fixtureKeys(t *testing.T) map[string][]byte {
	t.Helper()
	f, err := os.Open("../testdata/legacy-v2.backup")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	kv := map[string][]byte{}
	if err := badger.ReadLegacyBackup(f, func(k, v []byte) error {
		kv[string(k)] = v
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return kv
}

// oldBackup is the Badger stream of a database holding exactly kv, as the
// previous release's `backup` wrote it.
func oldBackup(t *testing.T, kv map[string][]byte) []byte {
	t.Helper()
	db, err := bdb.Open(bdb.DefaultOptions("").WithInMemory(true).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(txn *bdb.Txn) error {
		for k, v := range kv {
			if err := txn.Set([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := db.Backup(&buf, 0); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestReadLegacyBackupCrafted: an old backup is held to the same rules as a
// backup file, and to the old layout's own (every key a record, indexes that
// agree); a refusal is one line naming the record. Usage left behind by a
// deleted token is left out, and a backup of the layout before blocks had
// their own keys reads with its blocks.
func TestReadLegacyBackupCrafted(t *testing.T) {
	const feedID = "b25a45533150c86b"
	cases := []struct {
		name  string
		craft func(kv map[string][]byte) []byte // nil: as oldBackup(kv)
		want  string                            // the message; "" when read
		kind  error
		check func(t *testing.T, file string)
	}{
		{name: "as made"},
		{name: "a name with a space", craft: func(kv map[string][]byte) []byte {
			kv["t/"+feedID] = bytes.Replace(kv["t/"+feedID], []byte("Feed-1"), []byte("Fe d-1"), 1)
			kv["n/fe d-1"] = kv["n/feed-1"]
			delete(kv, "n/feed-1")
			return nil
		}, want: `backup (previous release's format): token ` + feedID + `: name "Fe d-1" may contain only letters, digits and dashes`, kind: store.ErrInvalidName},
		{name: "an escape in a description", craft: func(kv map[string][]byte) []byte {
			kv["t/"+feedID] = bytes.Replace(kv["t/"+feedID], []byte("test token Feed-1"), []byte("test token \x1b[2J-1"), 1)
			return nil
		}, want: `backup (previous release's format): token ` + feedID + `: description may not contain control character U+001B`, kind: store.ErrInvalidDescription},
		{name: "a record of no kind", craft: func(kv map[string][]byte) []byte {
			kv["x/payload"] = []byte("?")
			return nil
		}, want: `backup record "x/payload": is not an apptokens record`},
		{name: "a name index to nothing", craft: func(kv map[string][]byte) []byte {
			kv["n/ghost"] = []byte("00000000deadbeef")
			return nil
		}, want: `backup record "n/ghost": points at no token of that name`},
		{name: "usage of a deleted token", craft: func(kv map[string][]byte) []byte {
			kv["u/00000000deadbeef/192.0.2.9"] = []byte(`{"token_id":"00000000deadbeef","ip":"192.0.2.9","first_used_at":"2026-03-01T10:00:00Z","last_used_at":"2026-03-01T10:00:00Z","allowed":1,"denied":0,"blocked":false}`)
			kv["b/00000000deadbeef/192.0.2.9"] = nil
			return nil
		}, check: func(t *testing.T, file string) {
			if strings.Contains(file, "deadbeef") {
				t.Error("usage of a token not in the backup was kept")
			}
		}},
		{name: "a blocked flag in layout 2", craft: func(kv map[string][]byte) []byte {
			k := "u/" + feedID + "/2001:db8::7"
			kv[k] = bytes.Replace(kv[k], []byte(`"blocked":false`), []byte(`"blocked":true`), 1)
			return nil
		}, want: `backup record "u/` + feedID + `/2001:db8::7": holds a blocked flag (blocks are b/ records in this layout)`},
		{name: "layout 1: blocks in the usage rows", craft: func(kv map[string][]byte) []byte {
			delete(kv, "m/layout")
			for k := range kv {
				if strings.HasPrefix(k, "b/") {
					u := "u/" + k[2:]
					kv[u] = bytes.Replace(kv[u], []byte(`"blocked":false`), []byte(`"blocked":true`), 1)
					delete(kv, k)
				}
			}
			return nil
		}, check: func(t *testing.T, file string) {
			for _, b := range []string{
				`{"type":"block","token_id":"5a14a0003642ec34","ip":"2001:db8::1"}`,
				`{"type":"block","token_id":"b25a45533150c86b","ip":"192.0.2.1"}`,
				`{"type":"block","token_id":"b25a45533150c86b","ip":"203.0.113.99"}`,
			} {
				if !strings.Contains(file, b+"\n") {
					t.Errorf("block %s lost", b)
				}
			}
		}},
		{name: "truncated", craft: func(kv map[string][]byte) []byte {
			b := oldBackup(t, kv)
			return b[:len(b)-10]
		}, want: `backup: cannot read it as a backup of the previous release: truncated frame: `},
		{name: "a frame of 512 MB announced", craft: func(map[string][]byte) []byte {
			return append([]byte{0, 0, 0, 0x20, 0, 0, 0, 0}, "not that much"...)
		}, want: `backup: cannot read it as a backup of the previous release: frame of 536870912 bytes (at most 268435456)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			kv := fixtureKeys(t)
			var raw []byte
			if tc.craft != nil {
				raw = tc.craft(kv)
			}
			if raw == nil {
				raw = oldBackup(t, kv)
			}
			b, err := store.ReadBackup(bytes.NewReader(raw), badger.ReadLegacyBackup)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("ReadBackup: %v", err)
				}
				var out bytes.Buffer
				if _, err := b.WriteTo(&out); err != nil {
					t.Fatal(err)
				}
				if b.Tokens() != 4 {
					t.Errorf("%d tokens, want 4", b.Tokens())
				}
				if tc.check != nil {
					tc.check(t, out.String())
				}
				return
			}
			if err == nil {
				t.Fatal("ReadBackup accepted it")
			}
			if !errors.Is(err, store.ErrInvalidBackup) || (tc.kind != nil && !errors.Is(err, tc.kind)) {
				t.Errorf("error %v does not match ErrInvalidBackup and %v", err, tc.kind)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, tc.want) || strings.ContainsAny(msg, "\n\r\x1b") {
				t.Errorf("message\n got %q\nwant %q (one clean line)", msg, tc.want)
			}
		})
	}
}

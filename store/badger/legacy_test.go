package badger_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

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

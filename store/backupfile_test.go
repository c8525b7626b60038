package store

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// goldenBackup is a backup file made from the previous release's backup in
// testdata (store/badger's TestReadLegacyBackupFixture proves it is that
// backup's content): every record type, non-ASCII text, IPv6, nanoseconds.
func goldenBackup(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("testdata/legacy-v2.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	return strings.SplitAfter(string(b), "\n")[:bytes.Count(b, []byte("\n"))]
}

// lineOf is the number (from 1) of the first line of lines containing s.
func lineOf(t *testing.T, lines []string, s string) int {
	t.Helper()
	for i, l := range lines {
		if strings.Contains(l, s) {
			return i + 1
		}
	}
	t.Fatalf("no line holds %q", s)
	return 0
}

// edit returns the file with line n (from 1) replaced by the result of fn.
func edit(lines []string, n int, fn func(string) string) string {
	out := append([]string(nil), lines...)
	out[n-1] = fn(out[n-1])
	return strings.Join(out, "")
}

// TestReadBackupRefusesCrafted: a backup file that breaks the format or a
// data rule is refused whole, with one line that says where (the line) and
// what is wrong, and matches ErrInvalidBackup (and the rule's own sentinel).
func TestReadBackupRefusesCrafted(t *testing.T) {
	g := goldenBackup(t)
	all := strings.Join(g, "")
	odd := lineOf(t, g, `"name":"Odd-Chars"`) // the first token
	feed := lineOf(t, g, `"name":"Feed-1"`)
	use := lineOf(t, g, `"type":"usage"`)
	blk := lineOf(t, g, `"type":"block"`)
	hr := lineOf(t, g, `"type":"hour"`)
	ev := lineOf(t, g, `"type":"event"`)
	last := len(g)
	replace := func(n int, old, new string) string {
		return edit(g, n, func(l string) string {
			if !strings.Contains(l, old) {
				t.Fatalf("line %d %q holds no %q", n, l, old)
			}
			return strings.Replace(l, old, new, 1)
		})
	}
	long := `{"type":"event","time":"2026-03-01T12:00:00Z","actor":"a","action":"x","token":"","details":"` + strings.Repeat("x", MaxBackupLine) + "\"}\n"
	cases := []struct {
		name, file string
		want       string // the whole message
		kind       error  // matched too, when not nil
	}{
		{"empty file", "", "backup: the file is empty", nil},
		{"newer version", `{"format":"apptokens-backup","version":2}` + "\n" + strings.Join(g[1:], ""),
			"backup: version 2 is newer than this apptokens reads (1)", nil},
		{"version 0", `{"format":"apptokens-backup","version":0}` + "\n" + strings.Join(g[1:], ""),
			"backup line 1: version 0 is not a backup version", nil},
		{"other format", `{"format":"something-else","version":1}` + "\n" + strings.Join(g[1:], ""),
			`backup line 1: not an apptokens backup: the first line must be {"format":"apptokens-backup","version":1}`, nil},
		{"no header", strings.Join(g[1:], ""),
			`backup line 1: not an apptokens backup: the first line must be {"format":"apptokens-backup","version":1}`, nil},
		{"not a backup at all", "hello, I am not a backup at all",
			`backup line 1: not an apptokens backup: the first line must be {"format":"apptokens-backup","version":1}`, nil},
		{"bad name", replace(odd, `"name":"Odd-Chars"`, `"name":"x y"`),
			`backup line 3: token 5a14a0003642ec34: name "x y" may contain only letters, digits and dashes`, ErrInvalidName},
		{"escape in name", replace(odd, `"name":"Odd-Chars"`, `"name":"evil\u001b[2J"`),
			`backup line 3: token 5a14a0003642ec34: name "evil\x1b[2J" may contain only letters, digits and dashes`, ErrInvalidName},
		{"control character in a description", replace(feed, `"description":"test token Feed-1"`, `"description":"hi\u001b]0;owned\u0007"`),
			`backup line 4: token b25a45533150c86b: description may not contain control character U+001B`, ErrInvalidDescription},
		{"description too long", replace(feed, `"description":"test token Feed-1"`, `"description":"`+strings.Repeat("é", 1025)+`"`),
			`backup line 4: token b25a45533150c86b: description is 1025 characters long; at most 1024 allowed`, ErrInvalidDescription},
		{"no access", replace(feed, `"access":["third-party-feeds"]`, `"access":[]`),
			`backup line 4: token b25a45533150c86b: choose at least one access type (security-director, third-party-feeds)`, ErrInvalidAccess},
		{"unknown access", replace(feed, `"access":["third-party-feeds"]`, `"access":["root"]`),
			`backup line 4: token b25a45533150c86b: unknown access type "root" (use security-director or third-party-feeds)`, ErrInvalidAccess},
		{"names clash case-insensitively", replace(feed, `"name":"Feed-1"`, `"name":"odd-chars"`),
			`backup line 4: token b25a45533150c86b: name "odd-chars" is taken by token 5a14a0003642ec34 (names are unique, case ignored)`, ErrNameTaken},
		{"one secret, two tokens", replace(feed, "563fdf51da7dfac52a56c8a754613d93ddab1e56249d5a8378e51107bf5ad2ad", "625dcd073c81b64feb153b1a93c70636897286ec35fa39f089e8fa3fc61cbf05"),
			`backup line 4: token b25a45533150c86b: its secret's digest is token 5a14a0003642ec34's too`, nil},
		{"digest not hex", replace(feed, "563fdf51", "zz3fdf51"),
			`backup line 4: token "b25a45533150c86b": digest "zz3fdf51da7dfac52a56c8a754613d93ddab1e56249d5a8378e51107bf5ad2ad" is not 64 hex digits (the SHA-256 of the secret)`, nil},
		{"a secret instead of a hint", replace(feed, `"hint":"aptk_…RfhY"`, `"hint":"aptk_0123456789012345678901234567890123456789abcdef"`),
			`backup line 4: token b25a45533150c86b: hint "aptk_0123456789012345678901234567890123456789abcdef" is not a token hint (aptk_… and the secret's last 4 characters)`, nil},
		{"a secret field", replace(feed, `"hint"`, `"secret":"aptk_x","hint"`),
			`backup line 4: token record: unknown field "secret"`, nil},
		{"bad token id", replace(feed, `"id":"b25a45533150c86b"`, `"id":"b25a/x"`),
			`backup line 4: token id "b25a/x" is not a token id (1 to 64 letters, digits, dashes or underscores)`, nil},
		{"tokens out of order", replace(feed, `"id":"b25a45533150c86b"`, `"id":"0000"`),
			`backup line 4: token 0000 after token 5a14a0003642ec34: tokens go in ascending order of id, each once`, nil},
		{"missing field", replace(feed, `"active":true,`, ``),
			`backup line 4: token record: field "active" is missing`, nil},
		{"null field", replace(feed, `"name":"Feed-1"`, `"name":null`),
			`backup line 4: token record: field "name" is null`, nil},
		{"wrong kind", replace(feed, `"active":true`, `"active":"yes"`),
			`backup line 4: token record: field "active" is a JSON string, of the wrong kind`, nil},
		{"time before 1970", replace(feed, `"created_at":"2026-03-01T09:00:00Z"`, `"created_at":"1960-01-01T00:00:00Z"`),
			`backup line 4: token b25a45533150c86b: created_at 1960-01-01T00:00:00Z is not between 1970 and 2261`, nil},
		{"not a time", replace(feed, `"created_at":"2026-03-01T09:00:00Z"`, `"created_at":"yesterday"`),
			`backup line 4: token record: "yesterday" is not an RFC 3339 time`, nil},
		{"block of an unknown token", replace(blk, `"token_id":"5a14a0003642ec34"`, `"token_id":"5a14a0003642ec35"`),
			`backup line 7: block of token "5a14a0003642ec35": no token with that id before it`, nil},
		{"block of an address not written as it is kept", replace(blk, `"ip":"2001:db8::1"`, `"ip":"2001:DB8:0::1"`),
			`backup line 7: block of token 5a14a0003642ec34: "2001:DB8:0::1" is written "2001:db8::1" in a backup`, ErrInvalidIP},
		{"usage from no address", replace(use, `"ip":"192.0.2.1"`, `"ip":"not-an-ip"`),
			`backup line 10: usage of token 5a14a0003642ec34: "not-an-ip" is not an IP address`, ErrInvalidIP},
		{"usage twice", edit(g, use+1, func(string) string { return g[use-1] }),
			`backup line 11: usage of token 5a14a0003642ec34 from 192.0.2.1 out of order (after token 5a14a0003642ec34 from 192.0.2.1): usage goes in ascending order of token id, then address, each once`, nil},
		{"first use after last", replace(use, `"first_used_at":"2026-03-01T13:30:00Z"`, `"first_used_at":"2026-03-01T15:30:00Z"`),
			`backup line 10: usage of token 5a14a0003642ec34 from 192.0.2.1: first_used_at is not at or before last_used_at`, nil},
		{"hour not on the hour", replace(hr, `"hour":"2026-03-01T13:00:00Z"`, `"hour":"2026-03-01T13:30:00Z"`),
			`backup line 16: usage history of token 5a14a0003642ec34: 2026-03-01T13:30:00Z is not the start of an hour between 1970 and 2261`, nil},
		{"escape in audit actor", replace(ev, `"actor":"alice"`, `"actor":"mallory\u001b[31m"`),
			`backup line 25: audit event of 2026-03-01T09:00:00Z: actor holds control characters: "mallory\x1b[31m"`, nil},
		{"token after usage", strings.Join(g[:use], "") + g[feed-1] + strings.Join(g[use:], ""),
			`backup line 11: a token record after the usage records (records go in the order policy, token, block, allow, warned, usage, hour, event)`, nil},
		{"unknown record type", replace(2, `"type":"policy"`, `"type":"secret"`),
			`backup line 2: unknown record type "secret" (this apptokens knows policy, token, block, allow, warned, usage, hour, event)`, nil},
		{"no type", replace(2, `"type":"policy",`, ``),
			`backup line 2: a record without a "type"`, nil},
		{"policy not a duration", replace(2, `"240h0m0s"`, `"ten days"`),
			`backup line 2: policy record: inactive_after "ten days" is not a duration of 0 or more (such as 720h0m0s)`, nil},
		{"truncated last line", all[:len(all)-20],
			`backup line 35: the file ends inside this line (no newline after it): truncated`, nil},
		{"last line cut, newline kept", all[:len(all)-20] + "\n",
			`backup line 35: not a JSON object: unexpected end of JSON input`, nil},
		{"garbage line", edit(g, last, func(string) string { return "\x1b[2J oops\n" }),
			`backup line 35: not a JSON object: invalid character '\x1b' looking for beginning of value`, nil},
		{"empty line", all + "\n",
			`backup line 36: is empty`, nil},
		{"line too long", all + long,
			`backup line 36: longer than 1048576 bytes: not a backup's record`, nil},
		{"old format, no reader for it", "\x10\x00\x00\x00\x00\x00\x00\x00" + strings.Repeat("\x00", 16),
			`backup: not an apptokens backup of this format, and this program reads no older one`, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := ReadBackup(strings.NewReader(tc.file), nil)
			if err == nil {
				t.Fatalf("ReadBackup accepted it (%d tokens)", b.Tokens())
			}
			var be *BackupError
			if !errors.As(err, &be) || !errors.Is(err, ErrInvalidBackup) {
				t.Fatalf("error %v (%T) is not a *BackupError matching ErrInvalidBackup", err, err)
			}
			if tc.kind != nil && !errors.Is(err, tc.kind) {
				t.Errorf("error %v does not match %v", err, tc.kind)
			}
			if err.Error() != tc.want {
				t.Errorf("message\n got %q\nwant %q", err.Error(), tc.want)
			}
			if strings.ContainsFunc(err.Error(), func(r rune) bool { return isControl(r) }) {
				t.Errorf("message %q is not one clean line", err)
			}
		})
	}
}

// TestReadBackupAccepts: the golden file, and the same with the optional
// parts left out or written otherwise (no policy record: the default; access
// in another order; times with an offset), is read; what it writes back is
// the golden file's canonical form.
func TestReadBackupAccepts(t *testing.T) {
	g := goldenBackup(t)
	all := strings.Join(g, "")
	b, err := ReadBackup(strings.NewReader(all), nil)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := b.WriteTo(&out); err != nil {
		t.Fatal(err)
	}
	if out.String() != all {
		t.Fatalf("written back:\n%s\nwant\n%s", out.String(), all)
	}
	if b.Tokens() != 4 || b.inactiveAfter != 240*hour {
		t.Errorf("%d tokens, policy %v", b.Tokens(), b.inactiveAfter)
	}

	siem := lineOf(t, g, `"name":"soc-siem-export"`)
	odd := strings.Join(g[:1], "") + strings.Join(g[2:], "") // no policy
	odd = strings.Replace(odd, `"access":["security-director","third-party-feeds"]`, `"access":["third-party-feeds","security-director"]`, 1)
	odd = strings.Replace(odd, `"updated_at":"2026-03-01T11:00:00Z","activated_at":null,"last_used_at":null}`, `"updated_at":"2026-03-01T12:00:00+01:00","activated_at":null,"last_used_at":null}`, 1)
	b, err = ReadBackup(strings.NewReader(odd), nil)
	if err != nil {
		t.Fatal(err)
	}
	if b.inactiveAfter != DefaultInactiveAfter {
		t.Errorf("no policy record: policy %v, want the default", b.inactiveAfter)
	}
	out.Reset()
	if _, err := b.WriteTo(&out); err != nil {
		t.Fatal(err)
	}
	got := strings.SplitAfter(out.String(), "\n")
	if got[1] != `{"type":"policy","inactive_after":"720h0m0s"}`+"\n" || got[siem-1] != g[siem-1] {
		t.Errorf("written back as\n%s%s\nwant the default policy and\n%s", got[1], got[siem-1], g[siem-1])
	}
}

const hour = 3600 * 1e9

// mapWriter is a Writer into a map: the keys a restore would write.
type mapWriter map[string][]byte

func (m mapWriter) Set(k, v []byte) error { m[string(k)] = append([]byte(nil), v...); return nil }
func (m mapWriter) Delete(k []byte) error { delete(m, string(k)); return nil }

// TestBackupKeysRoundTrip: a backup written as the store's keys (a restore)
// and those keys gathered again (a backup of the store) is the same file,
// byte for byte.
func TestBackupKeysRoundTrip(t *testing.T) {
	all := strings.Join(goldenBackup(t), "")
	b, err := ReadBackup(strings.NewReader(all), nil)
	if err != nil {
		t.Fatal(err)
	}
	keys := mapWriter{}
	if err := b.writeKeys(keys); err != nil {
		t.Fatal(err)
	}
	k := newKeyCollector(false)
	for key, v := range keys {
		if err := k.add([]byte(key), v); err != nil {
			t.Fatal(err)
		}
	}
	again, err := k.file()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := again.WriteTo(&out); err != nil {
		t.Fatal(err)
	}
	if out.String() != all {
		t.Errorf("through the store's keys:\n%s\nwant\n%s", out.String(), all)
	}
}

// FuzzReadBackup: whatever the file, ReadBackup either refuses it with one
// clean line matching ErrInvalidBackup, or accepts it; what it accepted,
// written out, reads back and writes out as the same bytes.
func FuzzReadBackup(f *testing.F) {
	g, err := os.ReadFile("testdata/legacy-v2.jsonl")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(g)
	lines := bytes.SplitAfter(g, []byte("\n"))
	f.Add(bytes.Join(lines[:3], nil))
	f.Add(append(append([]byte(nil), lines[0]...), lines[len(lines)-2]...))
	f.Add([]byte(`{"format":"apptokens-backup","version":1}` + "\n" + `{"type":"hour","token_id":"a","hour":"2026-01-01T00:00:00Z","allowed":1,"denied":0}` + "\n"))
	f.Add([]byte("\x08\x00\x00\x00\x00\x00\x00\x00garbage!"))
	f.Fuzz(func(t *testing.T, file []byte) {
		b, err := ReadBackup(bytes.NewReader(file), nil)
		if err != nil {
			if !errors.Is(err, ErrInvalidBackup) || strings.ContainsFunc(err.Error(), isControl) {
				t.Fatalf("refusal %q is not one clean line matching ErrInvalidBackup", err)
			}
			return
		}
		var once, twice bytes.Buffer
		if _, err := b.WriteTo(&once); err != nil {
			t.Fatal(err)
		}
		again, err := ReadBackup(bytes.NewReader(once.Bytes()), nil)
		if err != nil {
			t.Fatalf("what it accepted, written out, is refused: %v\n%s", err, once.Bytes())
		}
		if _, err := again.WriteTo(&twice); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(once.Bytes(), twice.Bytes()) {
			t.Fatalf("written twice differs:\n%s\n%s", once.Bytes(), twice.Bytes())
		}
	})
}

// TestBackupMergesNodes: the keys of a shared engine, where each node keeps
// its own usage rows, last uses and hourly buckets (base/<node>), gather into
// the same backup as one node's: counts added, first use the earliest, last
// use the latest. An old backup (one process's keys) holds no such key.
func TestBackupMergesNodes(t *testing.T) {
	all := strings.Join(goldenBackup(t), "")
	b, err := ReadBackup(strings.NewReader(all), nil)
	if err != nil {
		t.Fatal(err)
	}
	one := mapWriter{}
	if err := b.writeKeys(one); err != nil {
		t.Fatal(err)
	}
	// Split every row over nodes n1 and n2 (and the plain key a restore
	// writes), in a way whose merge is the row again.
	many := mapWriter{}
	split := 0
	for key, v := range one {
		switch {
		case strings.HasPrefix(key, pfxUsage):
			var u Usage
			if err := strictJSON(v, &u); err != nil {
				t.Fatal(err)
			}
			if u.Allowed+u.Denied < 2 {
				many[key] = v
				continue
			}
			a, c := u, u
			a.Allowed, a.Denied = u.Allowed/2, u.Denied/2
			c.Allowed, c.Denied = u.Allowed-a.Allowed, u.Denied-a.Denied
			a.LastUsedAt = u.FirstUsedAt // n1 saw the first request only
			c.FirstUsedAt = u.LastUsedAt // n2 the last
			if err := setJSON(many, []byte(key+"/n1"), a); err != nil {
				t.Fatal(err)
			}
			if err := setJSON(many, []byte(key+"/n2"), c); err != nil {
				t.Fatal(err)
			}
			split++
		case strings.HasPrefix(key, pfxLastUsed):
			at, err := decodeLastUsed(v)
			if err != nil {
				t.Fatal(err)
			}
			many[key+"/n1"] = encodeLastUsed(at.Add(-time.Hour))
			many[key+"/n2"] = v
			split++
		case strings.HasPrefix(key, pfxHourToken), strings.HasPrefix(key, pfxHourIP):
			a, d, err := decodeHour(v)
			if err != nil {
				t.Fatal(err)
			}
			many[key] = encodeHour(a/2, d/2)
			many[key+"/n1"] = encodeHour(a-a/2, 0)
			many[key+"/n2"] = encodeHour(0, d-d/2)
			split++
		default:
			many[key] = v
		}
	}
	if split < 10 {
		t.Fatalf("only %d rows split", split)
	}
	k := newKeyCollector(false)
	for key, v := range many {
		if err := k.add([]byte(key), v); err != nil {
			t.Fatal(err)
		}
	}
	merged, err := k.file()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := merged.WriteTo(&out); err != nil {
		t.Fatal(err)
	}
	if out.String() != all {
		t.Errorf("many nodes' keys gathered as\n%s\nwant\n%s", out.String(), all)
	}

	legacy := newKeyCollector(true)
	for key, v := range many {
		if strings.HasSuffix(key, "/n1") {
			err := legacy.add([]byte(key), v)
			if !errors.Is(err, ErrInvalidBackup) {
				t.Errorf("old backup with node key %q: %v, want it refused", key, err)
			}
		}
	}
}

package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apptokens/apptokens/internal/secret"
	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/storetest"
)

// run executes one command line against the database dir, like the binary does.
func run(t *testing.T, dir string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	root := NewRoot(Env{
		Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb,
		Actor: store.Actor{User: "tester"},
		Open: func(d string) (*store.Store, func(), error) {
			st, err := storetest.OpenWith(storetest.Options{Dir: d})
			if err != nil {
				return nil, nil, err
			}
			return st, func() { st.Close() }, nil
		},
	})
	root.SetArgs(append([]string{"--db", dir}, args...))
	err = root.Execute()
	return out.String(), errb.String(), err
}

func mustRun(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, _, err := run(t, dir, args...)
	if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return out
}

var tokenLine = regexp.MustCompile(`^aptk_[0-9A-Za-z]{46}\n$`)

func TestCreatePrintsOnlyTheToken(t *testing.T) {
	dir := t.TempDir()
	out, errOut, err := run(t, dir, "create", "--name", "soc-export", "--description", "SIEM", "--access", "security-director,third-party-feeds")
	if err != nil {
		t.Fatal(err)
	}
	if !tokenLine.MatchString(out) {
		t.Fatalf("stdout = %q, want the token alone on one line", out)
	}
	if errOut != "" {
		t.Fatalf("stderr = %q, want nothing", errOut)
	}
	tok, err := secret.Parse(strings.TrimSpace(out))
	if err != nil {
		t.Fatal(err)
	}
	// The secret appears in no later output.
	for _, args := range [][]string{{"list"}, {"list", "--json"}, {"audit"}, {"audit", "--json"}, {"usage", "soc-export", "--json"}} {
		o, e, err := run(t, dir, args...)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(o+e, tok.Reveal()) || strings.Contains(o+e, tok.Reveal()[5:45]) {
			t.Fatalf("%v printed the secret", args)
		}
	}
}

func TestListJSONShape(t *testing.T) {
	dir := t.TempDir()
	out := mustRun(t, dir, "list", "--json")
	if strings.TrimSpace(out) != "[]" {
		t.Fatalf("empty list --json = %q, want []", out)
	}
	tok := strings.TrimSpace(mustRun(t, dir, "create", "--name", "Feed-1", "--access", "third-party-feeds", "--description", "line one\nline two"))
	mustRun(t, dir, "create", "--name", "ops", "--access", "third-party-feeds,security-director")
	mustRun(t, dir, "deactivate", "ops")

	var rows []map[string]any
	if err := json.Unmarshal([]byte(mustRun(t, dir, "list", "--json")), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 {
		t.Fatalf("got %d rows", len(rows))
	}
	var keys []string
	for k := range rows[0] {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if got := strings.Join(keys, ","); got != "access,allowed_networks,created_at,description,expires_at,hint,last_used_at,name,rotating_until,state" {
		t.Fatalf("keys = %s", got)
	}
	r := rows[0]
	if r["name"] != "Feed-1" || r["state"] != "active" || r["description"] != "line one\nline two" || r["last_used_at"] != nil {
		t.Fatalf("row = %v", r)
	}
	if r["hint"] != "aptk_…"+tok[len(tok)-4:] {
		t.Fatalf("hint = %v", r["hint"])
	}
	if at, err := time.Parse(time.RFC3339, r["created_at"].(string)); err != nil || !strings.HasSuffix(r["created_at"].(string), "Z") || at.Nanosecond() != 0 {
		t.Fatalf("created_at %q: want RFC 3339 UTC to the second (%v)", r["created_at"], err)
	}
	if rows[1]["state"] != "inactive" {
		t.Fatalf("ops state = %v", rows[1]["state"])
	}
	acc := rows[1]["access"].([]any)
	if len(acc) != 2 || acc[0] != "security-director" || acc[1] != "third-party-feeds" {
		t.Fatalf("access = %v", acc)
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, dir, "create", "--name", "keep", "--access", "security-director")
	before := mustRun(t, dir, "list", "--json")
	auditBefore := mustRun(t, dir, "audit", "--json")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"create", "--name", "my token", "--access", "security-director"}, `name "my token" may contain only letters, digits and dashes`},
		{[]string{"create", "--name", "KEEP", "--access", "security-director"}, `name "KEEP" is already taken`},
		{[]string{"create", "--name", "x", "--access", "admin"}, `unknown access type "admin"`},
		{[]string{"create", "--name", "x", "--access", ""}, `choose at least one access type`},
		{[]string{"create", "--name", strings.Repeat("a", 33), "--access", "security-director"}, `at most 32`},
		{[]string{"create", "--name", "x", "--access", "security-director", "--description", "evil\x1b[2J"}, `control character`},
		{[]string{"create", "--name", "x", "--access", "security-director", "--description", strings.Repeat("é", 1025)}, `at most 1024`},
		{[]string{"edit", "keep", "--access", "nope"}, `unknown access type "nope"`},
		{[]string{"edit", "missing", "--description", "x"}, `no token named "missing"`},
		{[]string{"deactivate", "keep", "missing"}, `no token named "missing"`},
		{[]string{"delete", "keep", "missing"}, `no token named "missing"`},
		{[]string{"block", "keep", "1.2.3.4", "not-an-ip"}, `"not-an-ip" is not an IP address`},
		{[]string{"usage", "missing"}, `no token named "missing"`},
		{[]string{"seed"}, `say what to seed`},
		// Issue 11: lifecycle commands and flags.
		{[]string{"create", "--name", "x", "--access", "security-director", "--expires", "2020-01-01"}, `--expires "2020-01-01": expires must be in the future`},
		{[]string{"create", "--name", "x", "--access", "security-director", "--expires", "soon"}, `--expires: expires "soon": want never, a duration`},
		{[]string{"edit", "keep", "--expires", "-5d"}, `--expires: expires "-5d": want never`},
		{[]string{"edit", "missing", "--expires", "never"}, `no token named "missing"`},
		{[]string{"rotate", "keep", "--grace", "-1h"}, `grace "-1h": want a duration such as 24h`},
		{[]string{"rotate", "keep", "--grace", "banana"}, `grace "banana": want a duration such as 24h`},
		{[]string{"rotate", "missing"}, `no token named "missing"`},
		{[]string{"allow", "keep", "10.0.0.1/8"}, `10.0.0.1/8`},
		{[]string{"allow", "keep", "10.0.0.0/8", "banana"}, `"banana"`},
		{[]string{"allow", "missing", "10.0.0.0/8"}, `no token named "missing"`},
		{[]string{"disallow", "keep", "not-a-range"}, `"not-a-range"`},
		{[]string{"block", "keep", "203.0.113.7/24"}, `203.0.113.7/24`},
		{[]string{"whois", "aptk_junk"}, `not an apptokens token: token must be 51 characters long`},
		{[]string{"whois", "aptk_" + strings.Repeat("A", 46)}, `not an apptokens token: token checksum does not match`},
		{[]string{"whois", unknownSecret(t)}, `no token has this secret`},
		{[]string{"list", "--expiring", "banana"}, `--expiring "banana": want a window such as 7d`},
		{[]string{"list", "--expiring", "0"}, `--expiring "0": want a window such as 7d`},
	}
	for _, c := range cases {
		_, _, err := run(t, dir, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err = %v, want it to say %q", c.args, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: error is not one line: %q", c.args, err)
		}
	}
	if after := mustRun(t, dir, "list", "--json"); after != before {
		t.Fatalf("refused commands changed the tokens:\n%s\n%s", before, after)
	}
	if after := mustRun(t, dir, "audit", "--json"); after != auditBefore {
		t.Fatalf("refused commands wrote audit events")
	}
	if u := mustRun(t, dir, "usage", "keep", "--json"); strings.TrimSpace(u) != "[]" {
		t.Fatalf("refused block changed usage: %s", u)
	}
}

// unknownSecret is a well-formed token that no store has.
func unknownSecret(t *testing.T) string {
	t.Helper()
	tok, err := secret.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return tok.Reveal()
}

func TestLifecycle(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, dir, "create", "--name", "a", "--access", "security-director")
	mustRun(t, dir, "create", "--name", "b", "--access", "security-director")
	if out := mustRun(t, dir, "deactivate", "a", "b"); out != "2 tokens deactivated\n" {
		t.Fatalf("deactivate: %q", out)
	}
	if out := mustRun(t, dir, "activate", "a"); out != "1 token activated\n" {
		t.Fatalf("activate: %q", out)
	}
	mustRun(t, dir, "edit", "a", "--description", "new text", "--access", "third-party-feeds")
	if out := mustRun(t, dir, "block", "a", "10.0.0.1", "::ffff:10.0.0.2"); out != "2 IP addresses blocked for a\n" {
		t.Fatalf("block: %q", out)
	}
	mustRun(t, dir, "unblock", "a", "10.0.0.2")
	var usage []map[string]any
	if err := json.Unmarshal([]byte(mustRun(t, dir, "usage", "a", "--json")), &usage); err != nil {
		t.Fatal(err)
	}
	if len(usage) != 2 {
		t.Fatalf("usage = %v", usage)
	}
	blocked := map[string]bool{}
	for _, u := range usage {
		blocked[u["ip"].(string)] = u["blocked"].(bool)
		if u["first_used_at"] != nil {
			t.Fatalf("a pre-blocked IP was never used: %v", u)
		}
		for _, k := range []string{"ip", "first_used_at", "last_used_at", "allowed", "denied", "blocked"} {
			if _, ok := u[k]; !ok {
				t.Fatalf("usage row lacks %q: %v", k, u)
			}
		}
	}
	if !blocked["10.0.0.1"] || blocked["10.0.0.2"] {
		t.Fatalf("blocked = %v", blocked)
	}
	var rows []map[string]any
	_ = json.Unmarshal([]byte(mustRun(t, dir, "list", "--json")), &rows)
	if rows[0]["description"] != "new text" || rows[0]["state"] != "active" || rows[1]["state"] != "inactive" {
		t.Fatalf("rows = %v", rows)
	}
	mustRun(t, dir, "delete", "b")
	var evs []store.Event
	if err := json.Unmarshal([]byte(mustRun(t, dir, "audit", "--json")), &evs); err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range evs {
		if e.Actor != "tester" {
			t.Fatalf("actor = %q", e.Actor)
		}
		actions = append(actions, e.Action+":"+e.Token)
	}
	want := "delete:b unblock:a block:a edit:a activate:a deactivate:b deactivate:a create:b create:a"
	if got := strings.Join(actions, " "); got != want {
		t.Fatalf("audit = %s\nwant    %s", got, want)
	}
}

// TestLockedDatabaseNamesItsHolder: a command refused by the lock says who holds
// the database: another local apptokens with its PID and no SSH command (issue
// 9 fault 11: it printed "ssh -p PORT HOST"), or serve with the SSH command.
func TestLockedDatabaseNamesItsHolder(t *testing.T) {
	dir := t.TempDir()
	st, err := storetest.OpenWith(storetest.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	refused := func() error {
		t.Helper()
		done := make(chan error, 1)
		go func() {
			_, _, err := run(t, dir, "list", "--json")
			done <- err
		}()
		select {
		case err := <-done:
			if !errors.Is(err, store.ErrLocked) {
				t.Fatalf("err = %v, want ErrLocked", err)
			}
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("a command on a locked database hung")
			return nil
		}
	}

	err = refused()
	want := fmt.Sprintf("database %s is in use by another apptokens (PID %d); quit it and try again", dir, os.Getpid())
	if err.Error() != want {
		t.Fatalf("held by a local apptokens:\n got %q\nwant %q", err, want)
	}

	if err := st.Announce("127.0.0.1:23234"); err != nil {
		t.Fatal(err)
	}
	err = refused()
	want = fmt.Sprintf("database %s is in use by apptokens serve (PID %d, SSH on 127.0.0.1:23234); run the command over SSH instead: ssh -p 23234 127.0.0.1", dir, os.Getpid())
	if !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("held by serve:\n got %q\nwant %q…", err, want)
	}
}

func TestBackupRestore(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	mustRun(t, src, "seed", "--demo")
	mustRun(t, src, "create", "--name", "extra", "--access", "security-director")
	file := filepath.Join(t.TempDir(), "backup.bin")
	mustRun(t, src, "backup", file)
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v", fi, err)
	}
	if out := mustRun(t, dst, "restore", file); out != "restored 13 tokens\n" {
		t.Fatalf("restore: %q", out)
	}
	if a, b := mustRun(t, src, "list", "--json"), mustRun(t, dst, "list", "--json"); a != b {
		t.Fatalf("restored tokens differ")
	}
	if a, b := mustRun(t, src, "usage", "soc-siem-export", "--json"), mustRun(t, dst, "usage", "soc-siem-export", "--json"); a != b {
		t.Fatalf("restored usage differs")
	}
	if _, _, err := run(t, dst, "restore", file); !errors.Is(err, store.ErrNotEmpty) {
		t.Fatalf("restore over tokens: err = %v, want ErrNotEmpty", err)
	}
}

func TestSeedDemo(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, dir, "seed", "--demo")
	var rows []map[string]any
	_ = json.Unmarshal([]byte(mustRun(t, dir, "list", "--json")), &rows)
	if len(rows) != 12 {
		t.Fatalf("demo has %d tokens, want 12", len(rows))
	}
	states := map[any]int{}
	for _, r := range rows {
		states[r["state"]]++
	}
	if states["inactive"] == 0 || states["active"] == 0 {
		t.Fatalf("states = %v", states)
	}
	out := mustRun(t, dir, "usage", "soc-siem-export")
	if !strings.Contains(out, "Blocked") || !strings.Contains(out, "Allowed") {
		t.Fatalf("usage:\n%s", out)
	}
	// A second run says what happened and what to do, in one line.
	_, _, err := run(t, dir, "seed", "--demo")
	if !errors.Is(err, store.ErrNameTaken) {
		t.Fatalf("second seed --demo: %v", err)
	}
	if want := `demo data already present: token "soc-siem-export" exists; seed into an empty database (--db DIR)`; err.Error() != want {
		t.Fatalf("second seed --demo says %q\nwant %q", err, want)
	}
	var again []map[string]any
	_ = json.Unmarshal([]byte(mustRun(t, dir, "list", "--json")), &again)
	if len(again) != 12 {
		t.Fatalf("after the refused second seed: %d tokens, want 12", len(again))
	}
}

// TestSeedTimesInOrder: no generated token or usage row is used before it was
// created, nor last used before first used (issue 9: 4,759 of 20,000 were).
func TestSeedTimesInOrder(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, dir, "seed", "--tokens", "3000", "--ips", "2")
	var rows []struct {
		Name       string     `json:"name"`
		CreatedAt  time.Time  `json:"created_at"`
		LastUsedAt *time.Time `json:"last_used_at"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, dir, "list", "--json")), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3000 {
		t.Fatalf("%d tokens", len(rows))
	}
	bad := 0
	for _, r := range rows {
		if r.LastUsedAt == nil || r.LastUsedAt.Before(r.CreatedAt) {
			bad++
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d seeded tokens last used before they were created (or never)", bad, len(rows))
	}
	for _, name := range []string{"load-000001", "load-001439", "load-002999"} {
		var usage []struct {
			First time.Time `json:"first_used_at"`
			Last  time.Time `json:"last_used_at"`
		}
		if err := json.Unmarshal([]byte(mustRun(t, dir, "usage", name, "--json")), &usage); err != nil {
			t.Fatal(err)
		}
		for _, u := range usage {
			if u.Last.Before(u.First) {
				t.Fatalf("%s: last used %v before first used %v", name, u.Last, u.First)
			}
		}
	}
	// Seeding the same names again says so in one line.
	_, _, err := run(t, dir, "seed", "--tokens", "10")
	if err == nil || err.Error() != `generated tokens already present: token "load-000001" exists; seed into an empty database (--db DIR)` {
		t.Fatalf("second seed: %v", err)
	}
}

// TestDeleteRepeatedNames: a name given twice, in any case, is one token (issue 8:
// `delete a A` failed with "not found" and deleted nothing).
func TestDeleteRepeatedNames(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, dir, "create", "--name", "a", "--access", "security-director")
	mustRun(t, dir, "create", "--name", "b", "--access", "security-director")
	if out := mustRun(t, dir, "deactivate", "a", "A", "a"); out != "1 token deactivated\n" {
		t.Fatalf("deactivate a A a: %q", out)
	}
	if out := mustRun(t, dir, "delete", "a", "A"); out != "1 token deleted\n" {
		t.Fatalf("delete a A: %q", out)
	}
	var rows []map[string]any
	_ = json.Unmarshal([]byte(mustRun(t, dir, "list", "--json")), &rows)
	if len(rows) != 1 || rows[0]["name"] != "b" {
		t.Fatalf("after delete a A: %v", rows)
	}
}

func TestSeedLoad(t *testing.T) {
	dir := t.TempDir()
	if out := mustRun(t, dir, "seed", "--tokens", "300", "--ips", "3"); out != "seeded 300 tokens with 3 IP addresses each\n" {
		t.Fatalf("seed: %q", out)
	}
	var rows []map[string]any
	_ = json.Unmarshal([]byte(mustRun(t, dir, "list", "--json")), &rows)
	if len(rows) != 300 || rows[0]["name"] != "load-000001" {
		t.Fatalf("seeded %d tokens, first %v", len(rows), rows[0]["name"])
	}
	var usage []map[string]any
	_ = json.Unmarshal([]byte(mustRun(t, dir, "usage", "load-000300", "--json")), &usage)
	if len(usage) != 3 {
		t.Fatalf("usage rows = %d", len(usage))
	}
	// More addresses than one octet holds are all distinct.
	mustRun(t, dir, "delete", "load-000001")
	out := mustRun(t, dir, "seed", "--tokens", "1", "--ips", "600")
	if !strings.Contains(out, "600 IP addresses") {
		t.Fatalf("seed: %q", out)
	}
	usage = nil
	_ = json.Unmarshal([]byte(mustRun(t, dir, "usage", "load-000001", "--json")), &usage)
	if len(usage) != 600 {
		t.Fatalf("600 IPs seeded, %d usage rows", len(usage))
	}
}

func TestSSHHint(t *testing.T) {
	got, _ := sshHint("0.0.0.0:2222", []string{"--db", "/x", "create", "--name", "a b", "--access=security-director"})
	want := "ssh -p 2222 localhost create --name 'a b' --access=security-director"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if got, _ := sshHint("127.0.0.1:23234", []string{"--db=/x"}); got != "ssh -p 23234 127.0.0.1" {
		t.Fatalf("hint for the TUI: %s", got)
	}
	if got, ok := sshHint("", []string{"list"}); ok {
		t.Fatalf("hint without an address: %q", got)
	}
	// --store names the local directory as --db does: the server has its own.
	got, _ = sshHint("127.0.0.1:23234", []string{"--store", "/x", "deactivate", "--store=/y", "feed"})
	if want := "ssh -p 23234 127.0.0.1 deactivate feed"; got != want {
		t.Fatalf("hint with --store:\ngot  %s\nwant %s", got, want)
	}
}

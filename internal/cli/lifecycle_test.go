package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/apptokens/apptokens/internal/secret"
	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/storetest"
)

// runAt executes one command line against dir on the clock now, with stdin.
func runAt(t *testing.T, dir string, now func() time.Time, stdin string, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	root := NewRoot(Env{
		Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb, Actor: store.Actor{User: "tester"},
		Open: func(d string) (*store.Store, func(), error) {
			st, err := storetest.OpenWith(storetest.Options{Dir: d, Now: now})
			if err != nil {
				return nil, nil, err
			}
			return st, func() { st.Close() }, nil
		},
	})
	root.SetArgs(append([]string{"--db", dir}, args...))
	err := root.Execute()
	return out.String(), err
}

// listJSON is `list --json` decoded.
func listJSON(t *testing.T, dir string, now func() time.Time, args ...string) []map[string]any {
	t.Helper()
	out, err := runAt(t, dir, now, "", append([]string{"list", "--json"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return rows
}

func rowOf(t *testing.T, rows []map[string]any, name string) map[string]any {
	t.Helper()
	for _, r := range rows {
		if r["name"] == name {
			return r
		}
	}
	t.Fatalf("no row %s in %v", name, rows)
	return nil
}

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func TestCreateAndEditExpires(t *testing.T) {
	dir := t.TempDir()
	now := t0
	clock := func() time.Time { return now }
	must := func(args ...string) string {
		t.Helper()
		out, err := runAt(t, dir, clock, "", args...)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return out
	}
	if out := must("create", "--name", "q", "--access", "security-director", "--expires", "90d"); !tokenLine.MatchString(out) {
		t.Fatalf("create --expires printed %q, want the token alone", out)
	}
	must("create", "--name", "d", "--access", "security-director", "--expires", "2027-01-31")
	must("create", "--name", "n", "--access", "security-director")
	rows := listJSON(t, dir, clock)
	for name, want := range map[string]any{"q": "2027-02-25T12:00:00Z", "d": "2027-01-31T00:00:00Z", "n": nil} {
		if got := rowOf(t, rows, name)["expires_at"]; got != want {
			t.Errorf("%s: expires_at %v, want %v", name, got, want)
		}
	}
	text := must("list")
	if !strings.Contains(lineWith(text, "q "), "in 90 days") || !strings.Contains(lineWith(text, "n "), "never") || !strings.Contains(text, "EXPIRES") {
		t.Fatalf("text list:\n%s", text)
	}

	// Past its expiry: Expired in text and JSON; edit gives a new date.
	now = t0.Add(91 * 24 * time.Hour)
	if r := rowOf(t, listJSON(t, dir, clock), "q"); r["state"] != "expired" {
		t.Fatalf("past its expiry: state %v", r["state"])
	}
	if l := lineWith(must("list"), "q "); !strings.Contains(l, "Expired") || !strings.Contains(l, "expired 2027-02-25 12:00") {
		t.Fatalf("text row %q", l)
	}
	must("edit", "q", "--expires", "30d")
	if r := rowOf(t, listJSON(t, dir, clock), "q"); r["state"] == "expired" || r["expires_at"] != "2027-03-28T12:00:00Z" {
		t.Fatalf("after edit --expires 30d: %v", r)
	}
	must("edit", "q", "--expires", "never")
	if r := rowOf(t, listJSON(t, dir, clock), "q"); r["expires_at"] != nil {
		t.Fatalf("after edit --expires never: %v", r)
	}
}

// list --expiring lists the tokens that stop working within the window, by
// expiry or by inactivity, and no others.
func TestListExpiring(t *testing.T) {
	dir := t.TempDir()
	now := t0
	clock := func() time.Time { return now }
	run := func(args ...string) string {
		t.Helper()
		out, err := runAt(t, dir, clock, "", args...)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return out
	}
	if out := run("list", "--expiring", "7d"); out != "No token stops working within 7d.\n" {
		t.Fatalf("empty: %q", out)
	}
	run("create", "--name", "soon", "--access", "security-director", "--expires", "3d")
	run("create", "--name", "later", "--access", "security-director", "--expires", "20d")
	now = t0.Add(-25 * 24 * time.Hour)
	run("create", "--name", "idle", "--access", "security-director") // inactive at t0+5d
	run("create", "--name", "off", "--access", "security-director")
	run("deactivate", "off")
	now = t0
	names := func(rows []map[string]any) string {
		var n []string
		for _, r := range rows {
			n = append(n, r["name"].(string))
		}
		return strings.Join(n, ",")
	}
	if got := names(listJSON(t, dir, clock, "--expiring", "7d")); got != "idle,soon" {
		t.Errorf("--expiring 7d: %s, want idle,soon", got)
	}
	if got := names(listJSON(t, dir, clock, "--expiring", "48h")); got != "" {
		t.Errorf("--expiring 48h: %s, want none", got)
	}
	if got := names(listJSON(t, dir, clock, "--expiring", "30d")); got != "idle,later,soon" {
		t.Errorf("--expiring 30d: %s, want idle,later,soon", got)
	}
	text := run("list", "--expiring", "7d")
	if !strings.Contains(text, "soon") || !strings.Contains(text, "idle") || strings.Contains(text, "later") || strings.Contains(text, "off") {
		t.Errorf("text --expiring 7d:\n%s", text)
	}
}

// rotate prints the new secret alone; the old one keeps working until the
// grace window ends; list says so; whois tells the two apart.
func TestRotate(t *testing.T) {
	dir := t.TempDir()
	now := t0
	clock := func() time.Time { return now }
	old, err := runAt(t, dir, clock, "", "create", "--name", "feed", "--access", "third-party-feeds")
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := runAt(t, dir, clock, "", "rotate", "feed", "--grace", "2h")
	if err != nil {
		t.Fatal(err)
	}
	if !tokenLine.MatchString(fresh) || fresh == old {
		t.Fatalf("rotate printed %q, want a new token alone", fresh)
	}
	r := rowOf(t, listJSON(t, dir, clock), "feed")
	if r["rotating_until"] != "2026-11-27T14:00:00Z" || r["hint"] != secret.HintOf(strings.TrimSpace(fresh)) {
		t.Fatalf("after rotate: %v", r)
	}
	text, _ := runAt(t, dir, clock, "", "list")
	if !strings.Contains(lineWith(text, "feed"), "Active, rotating, old secret until 14:00") {
		t.Fatalf("text list:\n%s", text)
	}
	out, err := runAt(t, dir, clock, old, "whois", "-")
	if err != nil || !strings.Contains(out, "secret:   old (the token was rotated); it works until 2026-11-27 14:00 UTC") || !strings.Contains(out, "name:     feed") {
		t.Fatalf("whois old: %v\n%s", err, out)
	}
	out, err = runAt(t, dir, clock, "", "whois", strings.TrimSpace(fresh))
	if err != nil || !strings.Contains(out, "secret:   current") || !strings.Contains(out, "access:   third-party-feeds") {
		t.Fatalf("whois new: %v\n%s", err, out)
	}
	// Nothing printed or audited holds either secret.
	for _, args := range [][]string{{"list"}, {"list", "--json"}, {"audit"}, {"audit", "--json"}} {
		o, _ := runAt(t, dir, clock, "", args...)
		for _, s := range []string{old, fresh} {
			if strings.Contains(o, strings.TrimSpace(s)) || strings.Contains(o, strings.TrimSpace(s)[5:45]) {
				t.Fatalf("%v printed a secret", args)
			}
		}
		if o2, _ := runAt(t, dir, clock, strings.TrimSpace(fresh), "whois", "-"); strings.Contains(o2, strings.TrimSpace(fresh)[5:45]) {
			t.Fatal("whois printed the secret")
		}
	}
	// After the grace window: no longer rotating.
	now = t0.Add(2 * time.Hour)
	if r := rowOf(t, listJSON(t, dir, clock), "feed"); r["rotating_until"] != nil {
		t.Fatalf("after the grace window: rotating_until %v", r["rotating_until"])
	}
	// --grace 0: the old secret is refused at once.
	prev := fresh
	if _, err := runAt(t, dir, clock, "", "rotate", "feed", "--grace", "0"); err != nil {
		t.Fatal(err)
	}
	if out, err := runAt(t, dir, clock, prev, "whois", "-"); err == nil && !strings.Contains(out, "refused since") {
		t.Fatalf("grace 0: the previous secret still works:\n%s", out)
	}
	if r := rowOf(t, listJSON(t, dir, clock), "feed"); r["rotating_until"] != nil {
		t.Fatalf("grace 0: rotating_until %v", r["rotating_until"])
	}
}

func TestAllowAndBlockRanges(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, dir, "create", "--name", "a", "--access", "security-director")
	if out := mustRun(t, dir, "allow", "a", "10.0.0.0/8", "2001:db8::/32", "::ffff:192.0.2.1"); out != "3 networks added to the allow-list of a\n" {
		t.Fatalf("allow: %q", out)
	}
	r := rowOf(t, listJSON(t, dir, nil), "a")
	nets, _ := json.Marshal(r["allowed_networks"])
	if string(nets) != `["10.0.0.0/8","192.0.2.1","2001:db8::/32"]` {
		t.Fatalf("allowed_networks %s", nets)
	}
	if out := mustRun(t, dir, "disallow", "a", "10.0.0.0/8"); out != "1 network removed from the allow-list of a\n" {
		t.Fatalf("disallow: %q", out)
	}
	if out := mustRun(t, dir, "block", "a", "203.0.113.0/24", "198.51.100.7"); out != "2 addresses or ranges blocked for a\n" {
		t.Fatalf("block: %q", out)
	}
	// The blocked address is a row; the range is a rule (in the audit trail).
	if u := mustRun(t, dir, "usage", "a"); !strings.Contains(lineWith(u, "198.51.100.7"), "Blocked") {
		t.Fatalf("usage:\n%s", u)
	}
	if a := mustRun(t, dir, "audit"); !strings.Contains(a, "203.0.113.0/24") {
		t.Fatalf("audit:\n%s", a)
	}
	if out := mustRun(t, dir, "unblock", "a", "203.0.113.0/24"); out != "1 address or range unblocked for a\n" {
		t.Fatalf("unblock: %q", out)
	}
}

// whois reads the token from stdin with -: one line, surrounding blanks
// dropped; an empty stdin says so.
func TestWhoisStdin(t *testing.T) {
	dir := t.TempDir()
	tok := strings.TrimSpace(mustRun(t, dir, "create", "--name", "w", "--access", "security-director"))
	for _, in := range []string{tok, tok + "\n", "  " + tok + "\r\n", tok + "\nsecond line\n"} {
		out, err := runAt(t, dir, nil, in, "whois", "-")
		if err != nil || !strings.Contains(out, "name:     w") {
			t.Errorf("stdin %q: %v\n%s", in, err, out)
		}
	}
	if _, err := runAt(t, dir, nil, "", "whois", "-"); err == nil || !strings.Contains(err.Error(), "no token on stdin") {
		t.Errorf("empty stdin: %v", err)
	}
	if _, err := runAt(t, dir, nil, strings.Repeat("a", 10000), "whois", "-"); err == nil || strings.Contains(err.Error(), "aaaa") {
		t.Errorf("a long line: %v", err)
	}
}

// The SSH hint of a whois refused by a held database never repeats the secret.
func TestSSHHintHidesSecret(t *testing.T) {
	tok, _ := secret.Generate()
	hint, ok := sshHint("127.0.0.1:23234", []string{"--db", "x", "whois", tok.Reveal()})
	if !ok || strings.Contains(hint, tok.Reveal()) || hint != "ssh -p 23234 127.0.0.1 whois -" {
		t.Fatalf("hint %q", hint)
	}
}

// lineWith is the first line of s containing sub.
func lineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}

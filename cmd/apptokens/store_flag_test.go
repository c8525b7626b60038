package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/apptokens/apptokens/store/etcd/etcdtest"
)

// Issue 10, item 5: --store (env APPTOKENS_STORE, config.toml's store) is a
// database directory, as --db, or an etcd cluster.

func listNames(t *testing.T, out string) []string {
	t.Helper()
	var toks []struct{ Name string }
	if err := json.Unmarshal([]byte(out), &toks); err != nil {
		t.Fatalf("list --json: %v: %q", err, out)
	}
	var names []string
	for _, tok := range toks {
		names = append(names, tok.Name)
	}
	return names
}

func TestStoreIsADirectoryAsDB(t *testing.T) {
	home := t.TempDir()
	dir := filepath.Join(home, "tokens")
	if _, errOut, code := runWith(t, home, nil, "--store", dir, "create", "--name", "by-flag", "--access", "security-director"); code != 0 {
		t.Fatalf("create with --store DIR: %s", errOut)
	}
	if _, errOut, code := runWith(t, home, []string{"APPTOKENS_STORE=" + dir}, "create", "--name", "by-env", "--access", "security-director"); code != 0 {
		t.Fatalf("create with APPTOKENS_STORE=DIR: %s", errOut)
	}
	// The same database through --db: --store is the directory, not a copy.
	out, errOut, code := runWith(t, home, nil, "--db", dir, "list", "--json")
	if got := listNames(t, out); code != 0 || strings.Join(got, ",") != "by-env,by-flag" {
		t.Fatalf("list --db on the --store directory: %v (%s)", got, errOut)
	}
	// config.toml's top-level store, shown by config show with its source;
	// the environment wins over the file, a flag over both.
	cfgDir := filepath.Join(home, "config", "apptokens")
	if err := os.MkdirAll(cfgDir, 0o700); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(cfgDir, "config.toml")
	if err := os.WriteFile(file, []byte("store = \""+dir+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, _ = runWith(t, home, nil, "list", "--json")
	if got := listNames(t, out); len(got) != 2 {
		t.Fatalf("list with store in config.toml: %v", got)
	}
	out, _, _ = runWith(t, home, []string{"APPTOKENS_STORE=etcd://127.0.0.1:1/x"}, "config", "show")
	for key, want := range map[string]string{
		"store":       regexp.QuoteMeta("etcd://127.0.0.1:1/x") + `\s+env APPTOKENS_STORE`,
		"etcd_cacert": `\s*default`,
		"etcd_cert":   `\s*default`,
		"etcd_key":    `\s*default`,
	} {
		if !regexp.MustCompile(`(?m)^` + key + `\s+` + want + `$`).MatchString(out) {
			t.Errorf("config show: no line %s %s in\n%s", key, want, out)
		}
	}
}

// Bad input is one line of error, and opens nothing.
func TestStoreRefusesBadLocations(t *testing.T) {
	home := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--store", "http://127.0.0.1:2379/x", "list"}, `apptokens: --store "http://127.0.0.1:2379/x": want a database directory or etcd://host:2379[,host:2379…]/prefix`},
		{[]string{"--store", "etcd:///x", "list"}, `apptokens: --store: etcd URL "etcd:///x": no host:port`},
		{[]string{"--store", "etcd://127.0.0.1:99999/x", "list"}, `bad port "99999"`},
		{[]string{"--store", filepath.Join(home, "db"), "--etcd-cacert", "/ca.pem", "list"}, "--etcd-cacert, --etcd-cert and --etcd-key are for an etcd:// store"},
		{[]string{"--store", "etcd://127.0.0.1:2379/x", "--etcd-cert", "/c.pem", "list"}, "--etcd-cert and --etcd-key go together"},
		{[]string{"--store", "etcd://127.0.0.1:2379/x", "--etcd-cacert", filepath.Join(home, "missing.pem"), "list"}, "etcd TLS: "},
		{[]string{"--db", filepath.Join(home, "db"), "serve", "--node", "a b", "--ssh", "127.0.0.1:0", "--http", "127.0.0.1:0"}, `apptokens: --node "a b": want 1 to 64 letters, digits and . _ : -`},
	} {
		_, errOut, code := runWith(t, home, nil, c.args...)
		if code == 0 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want one line with %q", c.args, code, errOut, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(home, "db")); err == nil {
		t.Error("a refused command created the database directory")
	}
}

// With etcd there is no lock: while serve runs on the cluster, every local
// command works on it, and its changes reach the gate.
func TestEtcdStoreCommandsWorkWhileServeRuns(t *testing.T) {
	requireTool(t, "ssh")
	c := etcdtest.Start(t, 1)
	url := etcdURL(c, "/local-commands/")
	s := startNode(t, url, "gate")
	home := t.TempDir()
	env := []string{"APPTOKENS_STORE=" + url}
	out, errOut, code := runWith(t, home, env, "create", "--name", "local", "--access", "security-director")
	if code != 0 {
		t.Fatalf("local create on etcd while serve runs: exit %d: %s", code, errOut)
	}
	sec := strings.TrimSpace(out)
	within(t, propagation, "the local create verifying at the gate", func() bool { return authStatus(s.httpAddr, "/auth", sec) == 200 })
	if _, errOut, code := runWith(t, home, env, "deactivate", "local"); code != 0 {
		t.Fatalf("local deactivate: %s", errOut)
	}
	within(t, propagation, "the local deactivation refused by the gate", func() bool { return authStatus(s.httpAddr, "/auth", sec) == 401 })
	// And what serve's SSH does is there for local commands.
	createOver(t, s, "remote")
	out, errOut, _ = runWith(t, home, env, "list", "--json")
	if got := listNames(t, out); strings.Join(got, ",") != "local,remote" {
		t.Fatalf("local list on etcd: %v (%s)", got, errOut)
	}
	out, _, _ = runWith(t, home, env, "audit", "--json")
	if !strings.Contains(out, `"action": "deactivate"`) {
		t.Errorf("the audit on etcd lacks the local deactivation:\n%s", out)
	}
}

// Issue 10, item 7: the TUI on an etcd that has lost its quorum says, in its
// status line, which store refused the change; it goes on, and works again
// when the quorum is back.
func TestTUIOnEtcdWithoutQuorumSaysSo(t *testing.T) {
	requireTool(t, "tmux")
	c := etcdtest.Start(t, 1)
	url := etcdURL(c, "/tui/")
	home := t.TempDir()
	env := append(cleanEnv(home), "APPTOKENS_STORE="+url)
	if _, errOut, code := runWith(t, home, []string{"APPTOKENS_STORE=" + url}, "create", "--name", "feed", "--access", "security-director"); code != 0 {
		t.Fatal(errOut)
	}
	tm := newTmux(t, 140, 20, env, binPath)
	tm.waitFor(15*time.Second, "Application Tokens", "feed", "Active")
	c.Stop(0)
	tm.send("d")
	tm.waitFor(5*time.Second, "Deactivate 1 token? (feed)")
	tm.send("y")
	tm.waitFor(10*time.Second, "etcd at "+c.Endpoints()[0]+" unavailable")
	c.Restart(0)
	tm.send("d")
	tm.waitFor(5*time.Second, "Deactivate 1 token? (feed)")
	tm.send("y")
	tm.waitFor(15*time.Second, "1 token deactivated")
}

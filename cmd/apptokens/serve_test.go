package main

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/apptokens/apptokens/internal/secret"
)

func TestSSHCommandsRunAsTheKeysOwner(t *testing.T) {
	s := startServe(t)
	out, errOut, code := s.ssh("list", "--json")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("list --json: code %d, out %q, err %q", code, out, errOut)
	}
	out, errOut, code = s.ssh("create", "--name", "ssh-made", "--access", "security-director", "--description", "'made over ssh'")
	if code != 0 {
		t.Fatalf("create: code %d: %s", code, errOut)
	}
	if _, err := secret.Parse(strings.TrimSpace(out)); err != nil {
		t.Fatalf("create printed %q: %v", out, err)
	}
	_, errOut, code = s.ssh("create", "--name", "'bad name'", "--access", "security-director")
	if code == 0 || !strings.Contains(errOut, "may contain only letters, digits and dashes") {
		t.Fatalf("bad create: code %d, stderr %q", code, errOut)
	}
	out, _, _ = s.ssh("audit", "--json")
	var evs []struct{ Actor, Action, Token string }
	if err := json.Unmarshal([]byte(out), &evs); err != nil {
		t.Fatalf("audit --json: %v\n%s", err, out)
	}
	want := "admin (" + gossh.FingerprintSHA256(s.admin.signer.PublicKey()) + ")"
	if len(evs) != 1 || evs[0].Actor != want || evs[0].Action != "create" {
		t.Fatalf("audit = %+v, want one create by %s", evs, want)
	}
}

func TestSSHPTYGetsTheTUI(t *testing.T) {
	s := startServe(t)
	s.ssh("create", "--name", "visible-token", "--access", "third-party-feeds")
	tm := newTmux(t, 100, 30, nil, append([]string{"ssh", "-tt"}, s.sshArgs(s.admin, "admin")...)...)
	tm.waitFor(15*time.Second, "Application Tokens", "visible-token", "Active")
	tm.send("q")
	eventually(t, 10*time.Second, "the SSH session to end after q", func() bool {
		return !strings.Contains(tm.screen(), "Application Tokens")
	})
}

func TestSSHRefusesOtherKeysPasswordsAndNone(t *testing.T) {
	s := startServe(t)
	stranger := newClientKey(t, s.home, "stranger_key")
	if _, errOut, code := s.sshAs(stranger, "admin", "list"); code == 0 || !strings.Contains(errOut, "Permission denied") {
		t.Fatalf("unknown key: code %d, stderr %q", code, errOut)
	}
	cmd := []string{"-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password,keyboard-interactive"}
	c := execSSH(s.sshArgs(s.admin, "admin", cmd...), "list")
	if out, err := c.CombinedOutput(); err == nil || !strings.Contains(string(out), "Permission denied") {
		t.Fatalf("password auth: err %v, out %q", err, out)
	}
	// "none" authentication: a client that offers no method at all.
	conf := &gossh.ClientConfig{User: "admin", HostKeyCallback: gossh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second}
	if conn, err := gossh.Dial("tcp", s.sshAddr, conf); err == nil {
		conn.Close()
		t.Fatal("none authentication was accepted")
	}
	// The file is read again when it changes: the stranger becomes an admin.
	f, err := os.OpenFile(s.authKeys, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(stranger.public + "\n")
	f.Close()
	if out, errOut, code := s.sshAs(stranger, "second", "list", "--json"); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("after adding the key: code %d, stderr %q", code, errOut)
	}
}

func TestSSHHostKeyKeptAcrossRestart(t *testing.T) {
	s := startServe(t)
	first := hostKeyOf(t, s)
	fi, err := os.Stat(s.hostKey)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("host key file: %v, %v", fi, err)
	}
	s.stop()
	s.start()
	if second := hostKeyOf(t, s); second != first {
		t.Fatalf("host key changed across restart: %s then %s", first, second)
	}
}

func hostKeyOf(t *testing.T, s *server) string {
	t.Helper()
	var got string
	conf := &gossh.ClientConfig{
		User: "admin", Auth: []gossh.AuthMethod{gossh.PublicKeys(s.admin.signer)}, Timeout: 10 * time.Second,
		HostKeyCallback: func(_ string, _ net.Addr, key gossh.PublicKey) error {
			got = gossh.FingerprintSHA256(key)
			return nil
		},
	}
	conn, err := gossh.Dial("tcp", s.sshAddr, conf)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if !strings.HasPrefix(got, "SHA256:") {
		t.Fatalf("host key fingerprint %q", got)
	}
	return got
}

func TestServeRefusesToStartWithoutUsableKey(t *testing.T) {
	home := t.TempDir()
	keys := home + "/authorized_keys"
	os.WriteFile(keys, []byte("# nobody yet\nnot a key\n"), 0o600)
	_, errOut, code := runBin(t, home+"/db", "serve", "--ssh", "127.0.0.1:0", "--http", "127.0.0.1:0",
		"--authorized-keys", keys, "--host-key", home+"/hk")
	if code == 0 || !strings.Contains(errOut, "no usable public key in "+keys) {
		t.Fatalf("code %d, stderr %q", code, errOut)
	}
	_, errOut, code = runBin(t, home+"/db", "serve", "--ssh", "127.0.0.1:0", "--http", "127.0.0.1:0",
		"--authorized-keys", home+"/missing", "--host-key", home+"/hk")
	if code == 0 || !strings.Contains(errOut, "does not exist") {
		t.Fatalf("missing file: code %d, stderr %q", code, errOut)
	}
}

func TestLocalCommandsRefusedWhileServing(t *testing.T) {
	s := startServe(t)
	start := time.Now()
	_, errOut, code := runBin(t, s.db, "list", "--json")
	if code == 0 {
		t.Fatal("a local command ran while serve holds the database")
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("the refusal took %s", time.Since(start))
	}
	want := "is in use by apptokens serve (PID " + strconv.Itoa(s.cmd.Process.Pid) + ", SSH on " + s.sshAddr +
		"); run the command over SSH instead: ssh -p " + s.sshPort + " 127.0.0.1 list --json"
	if !strings.Contains(errOut, want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Fatalf("stderr %q, want one line naming %q", errOut, want)
	}
}

func TestTwoAdminsSeeEachOthersChanges(t *testing.T) {
	s := startServe(t)
	second := newClientKey(t, s.home, "second_key")
	f, _ := os.OpenFile(s.authKeys, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(second.public + "\n")
	f.Close()
	s.ssh("create", "--name", "shared-token", "--access", "security-director")

	tm := newTmux(t, 110, 30, nil, append([]string{"ssh", "-tt"}, s.sshArgs(s.admin, "admin")...)...)
	tm.waitFor(15*time.Second, "Application Tokens", "shared-token")

	if _, errOut, code := s.sshAs(second, "bob", "create", "--name", "bobs-token", "--access", "third-party-feeds"); code != 0 {
		t.Fatal(errOut)
	}
	// The contract says within a second; the bound leaves room for a loaded CI
	// machine under -race, while a TUI that polls slowly or not at all fails.
	tm.waitFor(3*time.Second, "bobs-token")
	if _, errOut, code := s.sshAs(second, "bob", "deactivate", "shared-token"); code != 0 {
		t.Fatal(errOut)
	}
	eventually(t, 3*time.Second, "shared-token to show Inactive", func() bool {
		for _, line := range strings.Split(tm.screen(), "\n") {
			if strings.Contains(line, "shared-token") && strings.Contains(line, "Inactive") {
				return true
			}
		}
		return false
	})
}

func TestTwoSessionsCreateSameNameOneWins(t *testing.T) {
	s := startServe(t)
	var wg sync.WaitGroup
	codes := make([]int, 4)
	for i := range codes {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			name := "race-Token"
			if i%2 == 1 {
				name = "RACE-token"
			}
			_, _, codes[i] = s.ssh("create", "--name", name, "--access", "security-director")
		}(i)
	}
	wg.Wait()
	wins := 0
	for _, c := range codes {
		if c == 0 {
			wins++
		}
	}
	if wins != 1 {
		t.Fatalf("exit codes %v: want exactly one success", codes)
	}
	out, _, _ := s.ssh("list", "--json")
	if strings.Count(out, `"name"`) != 1 {
		t.Fatalf("list after the race:\n%s", out)
	}
}

func TestServeStopsCleanlyOnSIGTERM(t *testing.T) {
	s := startServe(t)
	tm := newTmux(t, 100, 30, nil, append([]string{"ssh", "-tt"}, s.sshArgs(s.admin, "admin")...)...)
	tm.waitFor(15*time.Second, "Application Tokens")
	start := time.Now()
	s.stop()
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("stop took %s", d)
	}
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("serve exit code %d:\n%s", code, s.logs.String())
	}
	if b, err := os.ReadFile(s.db + "/apptokens.lock"); err != nil || len(b) != 0 {
		t.Fatalf("words left behind in the lock file: %q %v", b, err)
	}
	// The database is free again for local commands.
	if _, errOut, code := runBin(t, s.db, "list"); code != 0 {
		t.Fatalf("local list after stop: %s", errOut)
	}
}

// gateGet sends one request to the gate with a bearer token.
func gateGet(t *testing.T, addr, path, token string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestGateThroughServe(t *testing.T) {
	s := startServe(t)
	out, errOut, code := s.ssh("create", "--name", "api-client", "--access", "third-party-feeds")
	if code != 0 {
		t.Fatal(errOut)
	}
	tok := strings.TrimSpace(out)
	if r := gateGet(t, s.httpAddr, "/healthz", ""); r.StatusCode != 200 {
		t.Fatalf("/healthz: %d", r.StatusCode)
	}
	r := gateGet(t, s.httpAddr, "/auth/third-party-feeds/v1/feeds", tok)
	if r.StatusCode != 200 || r.Header.Get("X-Token-Name") != "api-client" {
		t.Fatalf("valid token: %d %v", r.StatusCode, r.Header)
	}
	if r := gateGet(t, s.httpAddr, "/auth/security-director", tok); r.StatusCode != 403 || r.Header.Get("X-Apptokens-Reason") != "insufficient_access" {
		t.Fatalf("wrong access: %d %v", r.StatusCode, r.Header)
	}
	eventually(t, 3*time.Second, "usage of 127.0.0.1 over SSH", func() bool {
		out, _, _ := s.ssh("usage", "api-client", "--json")
		return strings.Contains(out, `"ip": "127.0.0.1"`) && strings.Contains(out, `"allowed": 1`)
	})
	if _, errOut, code := s.ssh("deactivate", "api-client"); code != 0 {
		t.Fatal(errOut)
	}
	r = gateGet(t, s.httpAddr, "/auth", tok)
	if r.StatusCode != 401 || r.Header.Get("X-Apptokens-Reason") != "inactive_token" {
		t.Fatalf("deactivated through SSH, next request: %d %v", r.StatusCode, r.Header)
	}
	s.ssh("activate", "api-client")
	s.ssh("block", "api-client", "127.0.0.1")
	if r := gateGet(t, s.httpAddr, "/auth", tok); r.StatusCode != 403 || r.Header.Get("X-Apptokens-Reason") != "ip_blocked" {
		t.Fatalf("blocked IP: %d %v", r.StatusCode, r.Header)
	}
	if strings.Contains(s.logs.String(), tok) || strings.Contains(s.logs.String(), tok[5:45]) {
		t.Fatal("the token appears in serve's logs")
	}
}

func TestSSHHonoursAuthorizedKeysOptions(t *testing.T) {
	s := startServe(t)
	s.ssh("create", "--name", "seen-by-reader", "--access", "security-director")
	reader := newClientKey(t, s.home, "reader_key")
	elsewhere := newClientKey(t, s.home, "elsewhere_key")
	f, _ := os.OpenFile(s.authKeys, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`command="list --json",restrict ` + reader.public + "\n")
	f.WriteString(`from="192.0.2.0/24" ` + elsewhere.public + "\n")
	f.Close()

	// The forced command runs whatever the client asks for.
	out, errOut, code := s.sshAs(reader, "reader", "create", "--name", "sneaky", "--access", "security-director")
	if code != 0 || !strings.Contains(out, `"name": "seen-by-reader"`) {
		t.Fatalf("forced command: code %d, out %q, err %q", code, out, errOut)
	}
	if out, _, _ := s.ssh("list", "--json"); strings.Contains(out, "sneaky") {
		t.Fatal("a key with a forced command created a token")
	}
	// restrict (no PTY): the TUI is refused, with a word on why.
	tty := execSSH(append([]string{"-tt"}, s.sshArgs(reader, "reader")...))
	if out, err := tty.CombinedOutput(); err != nil || !strings.Contains(string(out), `"name": "seen-by-reader"`) {
		t.Fatalf("forced command with a PTY: err %v, out %q", err, out)
	}
	commandsOnly := newClientKey(t, s.home, "commands_only_key")
	f, _ = os.OpenFile(s.authKeys, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`restrict ` + commandsOnly.public + "\n")
	f.Close()
	tty = execSSH(append([]string{"-tt"}, s.sshArgs(commandsOnly, "ops")...))
	if out, err := tty.CombinedOutput(); err == nil || !strings.Contains(string(out), "may run commands only") {
		t.Fatalf("restrict key with a PTY: err %v, out %q", err, out)
	}
	if out, _, code := s.sshAs(commandsOnly, "ops", "list", "--json"); code != 0 || !strings.Contains(out, "seen-by-reader") {
		t.Fatalf("restrict key running a command: code %d", code)
	}
	// A key allowed only from elsewhere is refused from 127.0.0.1.
	if _, errOut, code := s.sshAs(elsewhere, "admin", "list"); code == 0 || !strings.Contains(errOut, "Permission denied") {
		t.Fatalf("from= not honoured: code %d, stderr %q", code, errOut)
	}
	// Each key acts under its own fingerprint.
	bob := newClientKey(t, s.home, "bob_key")
	f, _ = os.OpenFile(s.authKeys, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(bob.public + "\n")
	f.Close()
	s.sshAs(bob, "bob", "deactivate", "seen-by-reader")
	out, _, _ = s.ssh("audit", "--json")
	want := `"actor": "bob (` + gossh.FingerprintSHA256(bob.signer.PublicKey()) + `)"`
	if !strings.Contains(out, want) {
		t.Fatalf("audit does not name bob's key %s:\n%s", want, out)
	}
}

// TestSSHIdentityIsTheKeyThatSigned reproduces the CVE-2024-45337 pattern with the
// real client: it offers admin key A, which the server accepts, but cannot sign
// with it (only A's public half is given), then signs with key B. The session must
// act as B (B's fingerprint in the audit, B's forced command), never as A.
func TestSSHIdentityIsTheKeyThatSigned(t *testing.T) {
	s := startServe(t)
	b := newClientKey(t, s.home, "b_key")
	f, _ := os.OpenFile(s.authKeys, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`command="list --json" ` + b.public + "\n")
	f.Close()
	aPub := s.home + "/a_only.pub"
	if err := os.WriteFile(aPub, []byte(s.admin.public+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-F", "/dev/null", "-p", s.sshPort, "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
		"-o", "LogLevel=ERROR", "-i", aPub, "-i", b.path, "admin@127.0.0.1",
		"create", "--name", "made-as-a", "--access", "security-director"}
	out, err := execSSH(args).Output()
	if err != nil {
		t.Fatalf("ssh: %v", err)
	}
	if strings.HasPrefix(string(out), "aptk_") || !strings.HasPrefix(strings.TrimSpace(string(out)), "[") {
		t.Fatalf("the session acted as key A (the one offered first), not B: %q", out)
	}
	if out, _, _ := s.ssh("list", "--json"); strings.Contains(out, "made-as-a") {
		t.Fatal("a token was created with the rights of the key that never signed")
	}
}

// TestServeRefusesTrustedProxyWithHostBits: --trusted-proxy 10.0.0.1/8 was
// masked to 10.0.0.0/8 in silence, trusting 16 million addresses where one may
// have been meant, while authorized_keys from= refuses the same text. Both read
// it with one parser now, and serve refuses it in one line, before it opens
// the database (issue 8, fault 12).
func TestServeRefusesTrustedProxyWithHostBits(t *testing.T) {
	home := t.TempDir()
	db := filepath.Join(home, "db")
	_, errOut, code := runBin(t, db, "serve", "--ssh", "127.0.0.1:0", "--http", "127.0.0.1:0",
		"--host-key", filepath.Join(home, "hk"), "--trusted-proxy", "127.0.0.1/32", "--trusted-proxy", "10.0.0.1/8")
	want := `apptokens: --trusted-proxy "10.0.0.1/8": host bits set: write 10.0.0.0/8 for the network, or 10.0.0.1/32 for the one address` + "\n"
	if code == 0 || errOut != want {
		t.Fatalf("code %d, stderr %q; want non-zero and %q", code, errOut, want)
	}
	if _, err := os.Stat(db); !os.IsNotExist(err) {
		t.Errorf("the database directory was created: %v", err)
	}
}

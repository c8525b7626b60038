package main

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"github.com/apptokens/apptokens/internal/secret"
)

// sshWithStdin runs a command over the real ssh client as the admin, with
// stdin.
func (s *server) sshWithStdin(stdin string, args ...string) (string, string, int) {
	s.t.Helper()
	cmd := execSSH(s.sshArgs(s.admin, "admin"), args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		s.t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// Issue 11: rotate and whois over SSH; whois - reads the found secret from
// stdin (never on a command line, where the server's logs and ps would see
// it), says which token it is, and stores nothing of it.
func TestSSHRotateAndWhoisFromStdin(t *testing.T) {
	s := startServe(t)
	old, errOut, code := s.ssh("create", "--name", "leaky", "--access", "third-party-feeds")
	if code != 0 {
		t.Fatalf("create: %d %s", code, errOut)
	}
	old = strings.TrimSpace(old)
	fresh, errOut, code := s.ssh("rotate", "leaky", "--grace", "1h")
	fresh = strings.TrimSpace(fresh)
	if code != 0 {
		t.Fatalf("rotate: %d %s", code, errOut)
	}
	if _, err := secret.Parse(fresh); err != nil || fresh == old {
		t.Fatalf("rotate printed %q (%v)", fresh, err)
	}
	out, errOut, code := s.sshWithStdin(old+"\n", "whois", "-")
	if code != 0 || !strings.Contains(out, "name:     leaky") || !strings.Contains(out, "access:   third-party-feeds") ||
		!strings.Contains(out, "old (the token was rotated); it works until") {
		t.Fatalf("whois - (old secret): %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = s.sshWithStdin(fresh+"\n", "whois", "-")
	if code != 0 || !strings.Contains(out, "secret:   current") {
		t.Fatalf("whois - (new secret): %d\n%s%s", code, out, errOut)
	}
	other, _ := secret.Generate()
	_, errOut, code = s.sshWithStdin(other.Reveal()+"\n", "whois", "-")
	if code == 0 || strings.TrimSpace(errOut) != "apptokens: no token has this secret" {
		t.Fatalf("whois - (unknown secret): %d %q", code, errOut)
	}
	_, errOut, code = s.sshWithStdin("aptk_nonsense\n", "whois", "-")
	if code == 0 || !strings.Contains(errOut, "not an apptokens token") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Fatalf("whois - (junk): %d %q", code, errOut)
	}
	// Neither secret is in the audit trail or the server's log.
	audit, _, _ := s.ssh("audit", "--json")
	for _, sec := range []string{old, fresh, other.Reveal()} {
		if strings.Contains(audit, sec[5:45]) || strings.Contains(s.logs.String(), sec[5:45]) {
			t.Fatalf("a secret is in the audit trail or the log")
		}
	}
	if !strings.Contains(audit, `"action": "rotate"`) {
		t.Fatalf("no rotate event:\n%s", audit)
	}
}

// serve --delete-after is stored as --inactive-after is: given, it sets the
// store's policy, which stays when serve starts again without it; a bad
// value is one line and nothing starts.
func TestServeDeleteAfter(t *testing.T) {
	s := startServe(t, "--delete-after", "10d")
	if !strings.Contains(s.logs.String(), "delete_after=240h0m0s") {
		t.Fatalf("serve --delete-after 10d:\n%s", s.logs.String())
	}
	s.stop()
	s.start()
	if !strings.Contains(s.logs.String(), "delete_after=240h0m0s") {
		t.Fatalf("the policy was not kept across a restart without the flag:\n%s", s.logs.String())
	}
	s.stop()
	s.start("--delete-after", "0")
	if !strings.Contains(s.logs.String(), "delete_after=0s") {
		t.Fatalf("serve --delete-after 0:\n%s", s.logs.String())
	}
	s.stop()
	_, errOut, code := runBin(t, s.db, "serve", "--delete-after", "soon", "--ssh", "127.0.0.1:0", "--http", "127.0.0.1:0",
		"--host-key", s.hostKey, "--authorized-keys", s.authKeys)
	if code == 0 || strings.TrimSpace(errOut) != `apptokens: --delete-after "soon": want a duration such as 30d or 720h` {
		t.Fatalf("bad --delete-after: %d %q", code, errOut)
	}
}

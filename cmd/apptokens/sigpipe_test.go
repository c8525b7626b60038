package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServeLogsIntoABrokenPipe (issue 8 fault 11): `serve 2>&1 | tee log` and
// Ctrl-C: tee dies first, and serve's next log line meets a broken pipe. serve
// must not die of SIGPIPE: it ends the open SSH session politely (the client's
// terminal leaves the alternate screen, the session exits 0) and exits 0.
func TestServeLogsIntoABrokenPipe(t *testing.T) {
	s := newServerOn(t, filepath.Join(t.TempDir(), "db"))
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binPath, "--db", s.db, "serve", "--ssh", "127.0.0.1:0", "--http", "127.0.0.1:0",
		"--host-key", s.hostKey, "--authorized-keys", s.authKeys)
	cmd.Env = cleanEnv(s.home)
	cmd.Stderr = pw // fd 2 is the pipe itself, as under a shell's |
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		if m := startedRe.FindStringSubmatch(sc.Text()); m != nil {
			s.sshAddr = m[1]
			s.sshPort = s.sshAddr[strings.LastIndex(s.sshAddr, ":")+1:]
			break
		}
	}
	if s.sshPort == "" {
		t.Fatal("serve did not start")
	}

	// An admin in the TUI, over the real ssh client in a real terminal.
	exited := filepath.Join(t.TempDir(), "ssh-exit-status")
	tm := newTmux(t, 100, 30, nil, exitStatusTo(exited, append([]string{"ssh", "-tt"}, s.sshArgs(s.admin, "admin")...)...)...)
	tm.waitFor(15*time.Second, "Application Tokens")

	pr.Close() // tee is gone
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop within 15 s of SIGINT")
	}
	if ws := cmd.ProcessState.Sys().(syscall.WaitStatus); ws.Signaled() || ws.ExitStatus() != 0 {
		t.Fatalf("serve with its log pipe broken ended with %v, want exit 0", cmd.ProcessState)
	}
	pane := func(format string) string {
		return strings.TrimSpace(runCmd(t, "tmux", "-L", tm.sock, "display-message", "-p", "-t", "main", format))
	}
	if st := waitExitStatus(t, exited, 15*time.Second); st != "0" {
		t.Fatalf("the SSH session ended with status %s, want 0 (a polite end):\n%s", st, tm.screen())
	}
	if pane("#{alternate_on}") != "0" {
		t.Fatalf("the admin's terminal was left in the alternate screen:\n%s", tm.screen())
	}
}

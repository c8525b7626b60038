package main

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestStaleServeAddressNotBelieved (issue 8 fault 10, issue 9 fault 11): after
// kill -9 of serve, a local TUI opens the database; a local command is then
// refused with the TUI named by its PID, never with an SSH command to serve's
// dead port (or a placeholder one).
func TestStaleServeAddressNotBelieved(t *testing.T) {
	s := startServe(t)
	deadPort := s.sshPort
	s.kill9()

	tm := newTmux(t, 100, 30, cleanEnv(t.TempDir()), binPath, "--db", s.db)
	tm.waitFor(15*time.Second, "Application Tokens")

	_, errOut, code := runBin(t, s.db, "list")
	if code == 0 {
		t.Fatal("list ran while the TUI holds the database")
	}
	if strings.Contains(errOut, "ssh") || strings.Contains(errOut, deadPort) || strings.Contains(errOut, "PORT") {
		t.Fatalf("stderr %q suggests SSH while a local TUI holds the database", errOut)
	}
	m := regexp.MustCompile(`^apptokens: database ` + regexp.QuoteMeta(s.db) +
		` is in use by another apptokens \(PID (\d+)\); quit it and try again\n$`).FindStringSubmatch(errOut)
	if m == nil {
		t.Fatalf("stderr %q, want one line naming another apptokens and its PID", errOut)
	}
	pid, _ := strconv.Atoi(m[1])
	cmdline, err := os.ReadFile("/proc/" + m[1] + "/cmdline")
	if err != nil || pid == s.cmd.Process.Pid || !strings.HasPrefix(string(cmdline), binPath+"\x00--db\x00") {
		t.Fatalf("PID %d is not the TUI (%q, %v)", pid, cmdline, err)
	}
}

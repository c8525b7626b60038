package main

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// tmuxTerm is a real terminal: a tmux server on its own socket, running one
// command in a window of a fixed size. It is stopped through its socket.
type tmuxTerm struct {
	t    *testing.T
	sock string
}

func newTmux(t *testing.T, width, height int, env []string, command ...string) *tmuxTerm {
	t.Helper()
	requireTool(t, "tmux")
	var b [6]byte
	_, _ = rand.Read(b[:])
	m := &tmuxTerm{t: t, sock: "apptokens-test-" + hex.EncodeToString(b[:])}
	args := []string{"-L", m.sock, "-f", "/dev/null", "new-session", "-d", "-s", "main",
		"-x", strconv.Itoa(width), "-y", strconv.Itoa(height)}
	for _, kv := range env {
		args = append(args, "-e", kv)
	}
	args = append(args, strings.Join(quoteAll(command), " "))
	newSession := exec.Command("tmux", args...)
	// The pane is a terminal, whatever runs the tests: termenv takes any CI
	// variable to mean "no terminal" and would draw without colour, so the
	// tmux server (whose environment every pane inherits) gets none.
	newSession.Env = withoutCI(os.Environ())
	if out, err := newSession.CombinedOutput(); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	// Keep the pane after the command exits, so its last screen can be read.
	_ = exec.Command("tmux", "-L", m.sock, "set-option", "-t", "main", "remain-on-exit", "on").Run()
	t.Cleanup(func() {
		// The pane's program may hold the database: the next test must not
		// start before it has exited (killing the server only signals it).
		out, _ := exec.Command("tmux", "-L", m.sock, "display-message", "-p", "-t", "main", "#{pane_pid}").Output()
		_ = exec.Command("tmux", "-L", m.sock, "kill-server").Run()
		if pid, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && pid > 0 {
			waitGone(pid, 20*time.Second)
		}
	})
	return m
}

// waitGone waits until the process pid has exited (gone, or a zombie: its
// files are closed), at most for d.
func waitGone(pid int, d time.Duration) {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return
		}
		// pid (comm) state …: the state follows the last ')'.
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && i+2 < len(b) && b[i+2] == 'Z' {
			return
		}
	}
}

func quoteAll(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return out
}

// send types keys (tmux key names such as Enter, Space, Escape, Down, or text),
// then leaves the program time to redraw.
func (m *tmuxTerm) send(keys ...string) {
	m.t.Helper()
	for _, k := range keys {
		if out, err := exec.Command("tmux", "-L", m.sock, "send-keys", "-t", "main", k).CombinedOutput(); err != nil {
			m.t.Fatalf("tmux send-keys %q: %v\n%s", k, err, out)
		}
		time.Sleep(150 * time.Millisecond)
	}
}

// typeText types literal text.
func (m *tmuxTerm) typeText(text string) {
	m.t.Helper()
	if out, err := exec.Command("tmux", "-L", m.sock, "send-keys", "-t", "main", "-l", "--", text).CombinedOutput(); err != nil {
		m.t.Fatalf("tmux send-keys -l: %v\n%s", err, out)
	}
	time.Sleep(150 * time.Millisecond)
}

func (m *tmuxTerm) screen() string {
	m.t.Helper()
	out, err := exec.Command("tmux", "-L", m.sock, "capture-pane", "-p", "-t", "main").CombinedOutput()
	if err != nil {
		m.t.Fatalf("tmux capture-pane: %v\n%s", err, out)
	}
	return string(out)
}

// waitFor waits until the screen shows every text, and returns it.
func (m *tmuxTerm) waitFor(timeout time.Duration, texts ...string) string {
	m.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := m.screen()
		ok := true
		for _, x := range texts {
			if !strings.Contains(s, x) {
				ok = false
				break
			}
		}
		if ok {
			return s
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("screen never showed %q within %s; last screen:\n%s", texts, timeout, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitGone waits until the screen no longer shows text.
func (m *tmuxTerm) waitGone(timeout time.Duration, text string) string {
	m.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := m.screen()
		if !strings.Contains(s, text) {
			return s
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("screen still shows %q after %s:\n%s", text, timeout, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// runCmd runs a command and returns its combined output, failing the test on error.
func runCmd(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// withoutCI is env without the CI variable.
func withoutCI(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, "CI=") {
			out = append(out, kv)
		}
	}
	return out
}

// exitStatusTo is command run by sh, which writes the command's exit status
// to file when it ends. Tests learn how a command in a pane ended from it:
// tmux's pane_dead can come before tmux has reaped the process, and its
// pane_dead_status then stays empty now and then (1 run in 4 under -race);
// what the command printed last can be lost from the pane too.
func exitStatusTo(file string, command ...string) []string {
	return append([]string{"sh", "-c", `f=$0; "$@"; echo $? >"$f.tmp" && mv "$f.tmp" "$f"`, file}, command...)
}

// waitExitStatus waits for the file that exitStatusTo writes and returns the
// status in it.
func waitExitStatus(t *testing.T, file string, timeout time.Duration) string {
	t.Helper()
	var status string
	eventually(t, timeout, "the command in the pane to end", func() bool {
		b, err := os.ReadFile(file)
		status = strings.TrimSpace(string(b))
		return err == nil
	})
	return status
}

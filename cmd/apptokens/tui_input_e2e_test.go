package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cursorLine is the screen line under the table cursor.
func cursorLine(screen string) string {
	for _, l := range strings.Split(screen, "\n") {
		if strings.HasPrefix(l, "> ") {
			return l
		}
	}
	return ""
}

// tableRows are the screen lines of table rows, in order.
func tableRows(screen string) []string {
	var rows []string
	for _, l := range strings.Split(screen, "\n") {
		if strings.HasPrefix(l, "> [") || strings.HasPrefix(l, "  [") {
			rows = append(rows, l)
		}
	}
	return rows
}

// pasteBracketed pastes text into the pane as a terminal paste does (tmux
// wraps it in bracketed-paste marks when the program asked for them).
func (m *tmuxTerm) pasteBracketed(text string) {
	m.t.Helper()
	runCmd(m.t, "tmux", "-L", m.sock, "set-buffer", "-b", "e2e", "--", text)
	runCmd(m.t, "tmux", "-L", m.sock, "paste-buffer", "-p", "-d", "-b", "e2e", "-t", "main")
	time.Sleep(150 * time.Millisecond)
}

// display is a tmux format evaluated for the pane.
func (m *tmuxTerm) display(format string) string {
	m.t.Helper()
	return strings.TrimSpace(runCmd(m.t, "tmux", "-L", m.sock, "display-message", "-p", "-t", "main", format))
}

// TestTUIBurstsEndToEnd types with `tmux send-keys -l`, which writes each
// string to the terminal at once: the binary reads it in one read, as it does
// fast typing, key repeat over SSH, or a paste without bracketed paste.
// Issue 9, faults 1, 2 and 3.
func TestTUIBurstsEndToEnd(t *testing.T) {
	requireTool(t, "tmux")
	db := filepath.Join(t.TempDir(), "db")
	if _, errOut, code := runBin(t, db, "seed", "--demo"); code != 0 {
		t.Fatal(errOut)
	}
	tm := newTmux(t, 120, 30, cleanEnv(t.TempDir()), binPath, "--db", db)
	screen := tm.waitFor(15*time.Second, "Application Tokens", "soc-siem-export")
	rows := tableRows(screen)
	if len(rows) < 4 {
		t.Fatalf("too few rows:\n%s", screen)
	}

	// jjj in one read moves three rows.
	tm.typeText("jjj")
	eventually(t, 5*time.Second, "the cursor on the fourth row", func() bool {
		return strings.TrimPrefix(cursorLine(tm.screen()), ">") == strings.TrimPrefix(rows[3], " ")
	})

	// "/soc-siem⏎" filters, and enter keeps the filter (it opened usage).
	tm.typeText("/soc-siem\r")
	screen = tm.waitFor(5*time.Second, "/soc-siem", "esc clears")
	if !strings.Contains(screen, "Application Tokens") || strings.Contains(screen, "IP address") {
		t.Fatalf("the burst did not filter:\n%s", screen)
	}
	tm.send("Escape")
	tm.waitFor(5*time.Second, "/ filter")

	// n and the name in one read; the description as a burst with key names
	// in it; a 46-character name pasted (bracketed) is kept and refused.
	tm.typeText("nburst-e2e")
	tm.waitFor(5*time.Second, "Create Application Token", "burst-e2e")
	tm.send("C-u")
	tm.pasteBracketed(strings.Repeat("a", 46))
	tm.waitFor(5*time.Second, "name is 46 characters long; at most 32")
	tm.send("C-s")
	tm.waitFor(5*time.Second, "name is 46 characters long; at most 32")
	tm.send("C-u")
	tm.typeText("burst-e2e")
	tm.send("Tab")
	const desc = "runs up to the end of day, then goes home"
	tm.typeText(desc)
	tm.send("Tab", "Space", "C-s")
	screen = tm.waitFor(10*time.Second, "will not be shown again")
	tok := tokenOnScreen.FindString(screen)
	if tok == "" {
		t.Fatalf("no token on the reveal:\n%s", screen)
	}

	// ctrl+c on the reveal asks, as closing does; n keeps it.
	tm.send("C-c")
	screen = tm.waitFor(5*time.Second, "You will not be able to see this token again")
	if !strings.Contains(screen, tok) {
		t.Fatalf("ctrl+c hid the token:\n%s", screen)
	}
	tm.send("n")
	tm.waitGone(5*time.Second, "You will not be able to see this token again")
	tm.send("C-c")
	tm.waitFor(5*time.Second, "You will not be able to see this token again")
	tm.send("y")
	eventually(t, 10*time.Second, "the TUI to quit", func() bool { return tm.display("#{pane_dead}") == "1" })

	out, errOut, code := runBin(t, db, "list", "--json")
	if code != 0 {
		t.Fatal(errOut)
	}
	var list []struct{ Name, Description string }
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, tk := range list {
		if tk.Name == "burst-e2e" {
			found = true
			if tk.Description != desc {
				t.Errorf("description %q, want %q", tk.Description, desc)
			}
		}
		if len(tk.Name) > 32 || strings.HasPrefix(tk.Name, "aaaa") {
			t.Errorf("a long name was created: %q", tk.Name)
		}
	}
	if !found {
		t.Fatalf("burst-e2e not created:\n%s", out)
	}
}

// programPID is the PID of the apptokens process in the pane (tmux may start
// it under a shell).
func (m *tmuxTerm) programPID() int {
	m.t.Helper()
	pid, err := strconv.Atoi(m.display("#{pane_pid}"))
	if err != nil {
		m.t.Fatal(err)
	}
	for range 10 {
		if exe, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe"); filepath.Base(exe) == filepath.Base(binPath) {
			return pid
		}
		children, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(pid) + "/children")
		f := strings.Fields(string(children))
		if err != nil || len(f) == 0 {
			break
		}
		pid, _ = strconv.Atoi(f[0])
	}
	m.t.Fatalf("no apptokens process in the pane")
	return 0
}

// TestTUISignalsRestoreTheTerminal ends the TUI with SIGHUP (a closed window,
// a dropped link) and SIGQUIT: the terminal must be left as it was found, with
// the main screen, the cursor shown and mouse reporting off, as SIGTERM and
// SIGINT leave it. Issue 9, fault 10.
func TestTUISignalsRestoreTheTerminal(t *testing.T) {
	requireTool(t, "tmux")
	db := filepath.Join(t.TempDir(), "db")
	if _, errOut, code := runBin(t, db, "seed", "--demo"); code != 0 {
		t.Fatal(errOut)
	}
	const state = "#{alternate_on} #{cursor_flag} #{mouse_any_flag}#{mouse_button_flag}#{mouse_standard_flag}#{mouse_sgr_flag}"
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			// A shell stays in the pane after the program, as it would for a
			// user: the state it finds is the one to check.
			tm := newTmux(t, 100, 30, cleanEnv(t.TempDir()), "sh", "-c", `"$0" --db "$1"; exec sleep 600`, binPath, db)
			tm.waitFor(15*time.Second, "Application Tokens", "soc-siem-export")
			if got := tm.display(state); got != "1 0 1101" {
				t.Fatalf("while running: %q, want alternate screen, hidden cursor, mouse on", got)
			}
			pid := tm.programPID()
			if err := syscall.Kill(pid, sig); err != nil {
				t.Fatal(err)
			}
			eventually(t, 10*time.Second, "the TUI to end", func() bool {
				exe, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
				return filepath.Base(exe) != filepath.Base(binPath)
			})
			// tmux reads what the program wrote last a moment after it ends.
			const want = "0 1 0000" // main screen, cursor shown, no mouse mode
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				got := tm.display(state)
				if got == want {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after %v the terminal is %q (alternate screen, cursor, mouse flags), want %q", sig, got, want)
				}
			}
		})
	}
}

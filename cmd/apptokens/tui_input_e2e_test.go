package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/muesli/termenv"
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
	exited := filepath.Join(t.TempDir(), "tui-exit-status")
	tm := newTmux(t, 120, 30, cleanEnv(t.TempDir()), exitStatusTo(exited, binPath, "--db", db)...)
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
	tm.send("Tab", "Tab", "Space", "C-s") // past Expires (empty: never) to Security Director
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
	if st := waitExitStatus(t, exited, 10*time.Second); st != "0" { // the TUI has quit and let the database go
		t.Fatalf("the TUI ended with status %s after ctrl+c and y", st)
	}

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

// screenEscapes is the pane with its colours and attributes as escape sequences.
func (m *tmuxTerm) screenEscapes() string {
	m.t.Helper()
	return runCmd(m.t, "tmux", "-L", m.sock, "capture-pane", "-e", "-p", "-t", "main")
}

// TestTUIBackgroundUnderTmux runs the binary under tmux (TERM tmux-256color,
// where termenv never asks the terminal and took every background for dark):
// COLORFGBG says the background when set, else tmux is asked (OSC 11; it
// answers with the pane's background), so a light terminal gets the light
// palette's heading colour. Issue 9, fault 5.
func TestTUIBackgroundUnderTmux(t *testing.T) {
	requireTool(t, "tmux")
	db := filepath.Join(t.TempDir(), "db")
	if _, errOut, code := runBin(t, db, "seed", "--demo"); code != 0 {
		t.Fatal(errOut)
	}
	// The heading's colour (styles: accent) on light and dark backgrounds.
	light := termenv.ANSI256.Color("#5A3FC0").Sequence(false)
	dark := termenv.ANSI256.Color("#A78BFA").Sequence(false)
	for _, tc := range []struct{ name, fgbg, paneBg, want, not string }{
		{"COLORFGBG=0;15", "0;15", "", light, dark},
		{"COLORFGBG=15;0", "15;0", "", dark, light},
		{"white pane", "", "#ffffff", light, dark},
		{"black pane", "", "#000000", dark, light},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The program waits for a line, so that the pane's colour is set
			// before it asks.
			tm := newTmux(t, 100, 30, cleanEnv(t.TempDir()), "sh", "-c",
				`read go; exec env TERM=tmux-256color COLORTERM= NO_COLOR= COLORFGBG="$2" "$0" --db "$1"`, binPath, db, tc.fgbg)
			if tc.paneBg != "" {
				runCmd(t, "tmux", "-L", tm.sock, "set-option", "-w", "-t", "main", "window-style", "bg="+tc.paneBg)
			}
			tm.send("Enter")
			tm.waitFor(15*time.Second, "Application Tokens")
			l := lineWith(tm.screenEscapes(), "Application Tokens")
			if !strings.Contains(l, "\x1b["+tc.want+"m") && !strings.Contains(l, ";"+tc.want+"m") {
				t.Fatalf("%s: the heading is not in %q:\n%q", tc.name, tc.want, l)
			}
			if strings.Contains(l, tc.not+"m") {
				t.Fatalf("%s: the heading is in the other palette's %q:\n%q", tc.name, tc.not, l)
			}
		})
	}
}

// TestTUICursorWithoutColour: with NO_COLOR or TERM=dumb the text cursor and
// the table cursor stay visible in reverse video (not a colour), and no
// colour is drawn. Issue 9, fault 5.
func TestTUICursorWithoutColour(t *testing.T) {
	requireTool(t, "tmux")
	db := filepath.Join(t.TempDir(), "db")
	if _, errOut, code := runBin(t, db, "seed", "--demo"); code != 0 {
		t.Fatal(errOut)
	}
	for _, env := range []string{"NO_COLOR=1", "TERM=dumb"} {
		t.Run(env, func(t *testing.T) {
			tm := newTmux(t, 100, 30, cleanEnv(t.TempDir()), "env", "TERM=tmux-256color", env, binPath, "--db", db)
			tm.waitFor(15*time.Second, "Application Tokens", "soc-siem-export")
			screen := tm.screenEscapes()
			if strings.Contains(screen, "38;5;") || strings.Contains(screen, "38;2;") {
				t.Fatalf("%s: colours drawn:\n%q", env, screen)
			}
			if l := lineWith(screen, "> [ ]"); !strings.Contains(l, "\x1b[7m") && !strings.Contains(l, ";7m") {
				t.Fatalf("%s: the table cursor row is not in reverse video:\n%q", env, l)
			}
			tm.send("n")
			tm.waitFor(5*time.Second, "Create Application Token")
			tm.typeText("abc")
			l := lineWith(tm.screenEscapes(), "abc")
			if !strings.Contains(l, "abc\x1b[7m") && !strings.Contains(l, "abc\x1b[0m\x1b[7m") && !regexp.MustCompile(`abc(\x1b\[[0-9;]*m)*\x1b\[[0-9;]*7m `).MatchString(l) {
				t.Fatalf("%s: no reverse-video cursor after the typed text:\n%q", env, l)
			}
		})
	}
}

// TestSSHTUIBurstsAndCtrlC: over SSH, where key repeat and typing arrive in
// bursts most, every character lands where it was meant, and ctrl+c on the
// reveal asks before the secret is gone. Issue 9, faults 1 and 2.
func TestSSHTUIBurstsAndCtrlC(t *testing.T) {
	requireTool(t, "tmux")
	requireTool(t, "ssh")
	s := startServe(t)
	for _, n := range []string{"alpha", "bravo", "charlie", "delta"} {
		if _, errOut, code := s.ssh("create", "--name", n, "--access", "third-party-feeds"); code != 0 {
			t.Fatal(errOut)
		}
	}
	tm := newTmux(t, 110, 30, nil, append([]string{"ssh", "-tt"}, s.sshArgs(s.admin, "admin")...)...)
	tm.waitFor(15*time.Second, "Application Tokens", "delta")
	tm.typeText("jj")
	eventually(t, 5*time.Second, "the cursor on charlie", func() bool {
		return strings.Contains(cursorLine(tm.screen()), "charlie")
	})
	tm.typeText("nover-ssh")
	tm.waitFor(5*time.Second, "Create Application Token", "over-ssh")
	tm.send("Tab")
	const desc = "goes up to the end, then home"
	tm.typeText(desc)
	tm.send("Tab", "Tab", "Space", "C-s") // past Expires (empty: never) to Security Director
	screen := tm.waitFor(10*time.Second, "will not be shown again")
	tok := tokenOnScreen.FindString(screen)
	tm.send("C-c")
	screen = tm.waitFor(5*time.Second, "You will not be able to see this token again")
	if tok == "" || !strings.Contains(screen, tok) {
		t.Fatalf("ctrl+c over SSH hid the token:\n%s", screen)
	}
	tm.send("y")
	eventually(t, 10*time.Second, "the SSH session to end", func() bool {
		return !strings.Contains(tm.screen(), "Application Tokens")
	})
	out, errOut, code := s.ssh("list", "--json")
	if code != 0 {
		t.Fatal(errOut)
	}
	if !strings.Contains(out, `"description": "`+desc+`"`) {
		t.Fatalf("over-ssh not created with its description:\n%s", out)
	}
}

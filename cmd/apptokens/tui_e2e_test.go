package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var tokenOnScreen = regexp.MustCompile(`aptk_[0-9A-Za-z]{46}`)

// lineWith returns the first screen line that contains s.
func lineWith(screen, s string) string {
	for _, l := range strings.Split(screen, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// TestTUIEndToEnd drives the real binary in tmux (100x30) on a seeded temp
// database with the contract's keys: create, reveal, close, deactivate, open
// usage, block.
func TestTUIEndToEnd(t *testing.T) {
	requireTool(t, "tmux")
	db := filepath.Join(t.TempDir(), "db")
	if _, errOut, code := runBin(t, db, "seed", "--demo"); code != 0 {
		t.Fatal(errOut)
	}
	home := t.TempDir()
	tm := newTmux(t, 100, 30, cleanEnv(home), binPath, "--db", db)
	tm.waitFor(15*time.Second, "Application Tokens", "soc-siem-export")

	// Create, with a rule error corrected live.
	tm.send("n")
	tm.waitFor(5*time.Second, "Name", "Description", "Security Director", "Third Party Feeds")
	tm.typeText("e2e token")
	tm.waitFor(5*time.Second, "may contain only letters, digits and dashes")
	tm.send("BSpace", "BSpace", "BSpace", "BSpace", "BSpace", "BSpace")
	tm.typeText("-token")
	tm.waitGone(5*time.Second, "may contain only letters")
	tm.send("Tab")
	tm.typeText("made by the end-to-end test")
	tm.send("Tab", "Space", "C-s")

	// The one-time reveal.
	screen := tm.waitFor(10*time.Second, "will not be shown again")
	tok := tokenOnScreen.FindString(screen)
	if tok == "" {
		t.Fatalf("no whole token on the reveal screen:\n%s", screen)
	}
	tm.send("c")
	tm.waitFor(5*time.Second, "Copied to the clipboard")
	tm.send("Enter")
	tm.waitFor(5*time.Second, "You will not be able to see this token again")
	tm.send("y")
	screen = tm.waitFor(10*time.Second, "e2e-token")
	if strings.Contains(screen, tok) || strings.Contains(screen, tok[5:45]) {
		t.Fatalf("the token is still on screen after closing the reveal:\n%s", screen)
	}
	if l := lineWith(screen, "] e2e-token"); !strings.Contains(l, "Active") {
		t.Fatalf("new token row: %q", l)
	}

	// Deactivate it: filter to it, d, confirm with y.
	tm.send("/")
	tm.typeText("e2e-token")
	tm.send("Enter", "d")
	tm.waitFor(5*time.Second, "Deactivate 1 token", "Clients using it will be refused")
	tm.send("y")
	tm.waitGone(5*time.Second, "Clients using it will be refused")
	if l := lineWith(tm.screen(), "] e2e-token"); !strings.Contains(l, "Inactive") {
		t.Fatalf("after deactivation: %q\n%s", l, tm.screen())
	}
	tm.send("Escape")

	// Open a token's usage and block an IP.
	tm.send("/")
	tm.typeText("soc-siem-export")
	tm.send("Enter", "Enter")
	tm.waitFor(5*time.Second, "10.20.1.15", "203.0.113.77")
	if l := lineWith(tm.screen(), "10.20.1.15"); !strings.Contains(l, "Allowed") {
		t.Fatalf("usage row before block: %q", l)
	}
	// Rows are newest first: 10.20.1.15 is the first.
	tm.send("b")
	eventually(t, 5*time.Second, "10.20.1.15 to show Blocked", func() bool {
		return strings.Contains(lineWith(tm.screen(), "10.20.1.15"), "Blocked")
	})
	tm.send("Escape", "q")

	// What the TUI did is in the database, and the secret is not.
	out, _, _ := runBin(t, db, "usage", "soc-siem-export", "--json")
	if !strings.Contains(out, `"ip": "10.20.1.15"`) || strings.Count(out, `"blocked": true`) != 2 {
		t.Fatalf("usage after the TUI:\n%s", out)
	}
	out, _, _ = runBin(t, db, "list", "--json")
	if !strings.Contains(out, `"name": "e2e-token"`) || strings.Contains(out, tok) {
		t.Fatalf("list after the TUI:\n%s", out)
	}
}

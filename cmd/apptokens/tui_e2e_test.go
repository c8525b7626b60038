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
// usage, block; and a rotation (issue 11).
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
	tm.send("Tab", "Tab", "Space", "C-s") // past Expires (empty: never) to Security Director

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

	// Rotate it (issue 11): r asks the grace window, enter takes 24h, and the
	// new secret is revealed once, like a new token's.
	tm.send("r")
	tm.waitFor(5*time.Second, "Rotate token e2e-token", "the old secret works until")
	tm.send("Enter")
	screen = tm.waitFor(10*time.Second, "Token e2e-token rotated", "will not be shown again")
	rotated := tokenOnScreen.FindString(screen)
	if rotated == "" || rotated == tok {
		t.Fatalf("no new token on the reveal screen:\n%s", screen)
	}
	tm.send("Enter")
	tm.waitFor(5*time.Second, "You will not be able to see this token again")
	tm.send("y")
	screen = tm.waitGone(10*time.Second, "will not be shown again")
	if strings.Contains(screen, rotated) || strings.Contains(screen, rotated[5:45]) {
		t.Fatalf("the new token is still on screen after closing the reveal:\n%s", screen)
	}
	if l := lineWith(screen, "] e2e-token"); !strings.Contains(l, "Active, rotating") {
		t.Fatalf("rotated token row: %q\n%s", l, screen)
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
	if !strings.Contains(out, `"name": "e2e-token"`) || strings.Contains(out, tok) || strings.Contains(out, rotated) {
		t.Fatalf("list after the TUI:\n%s", out)
	}
	// The old secret is the token's old one until the grace end, the new one
	// its current one.
	if out, errOut, code := runBin(t, db, "whois", tok); code != 0 || !strings.Contains(out, "name:     e2e-token") || !strings.Contains(out, "old (the token was rotated); it works until") {
		t.Fatalf("whois old secret: %d %s%s", code, out, errOut)
	}
	if out, errOut, code := runBin(t, db, "whois", rotated); code != 0 || !strings.Contains(out, "secret:   current") {
		t.Fatalf("whois new secret: %d %s%s", code, out, errOut)
	}
}

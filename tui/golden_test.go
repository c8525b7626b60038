package tui

import (
	tea "github.com/charmbracelet/bubbletea"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/exp/golden"

	"github.com/apptokens/apptokens/internal/secret"
	"github.com/apptokens/apptokens/store"
)

// tokenRE finds a revealed token on screen.
var tokenRE = regexp.MustCompile(`aptk_[0-9A-Za-z]{46}`)

// TestView compares ansi.Strip(View()) with testdata/TestView/*.golden
// (go test ./tui -run TestView -update rewrites them).
func TestView(t *testing.T) {
	tests := []struct {
		name  string
		w, h  int
		empty bool
		more  func(t *testing.T, st *store.Store) // more seed data
		do    func(t *testing.T, d *driver)
	}{
		{name: "empty", w: 100, h: 20, empty: true},
		{name: "populated", w: 130, h: 20},
		{name: "selection", w: 130, h: 20, do: func(t *testing.T, d *driver) {
			d.keys(keySpace, keyDown, keyDown, keySpace)
		}},
		{name: "sorted_by_created_filtered", w: 130, h: 20, do: func(t *testing.T, d *driver) {
			d.keys(runes("s"), runes("/"))
			d.typ("s")
		}},
		{name: "deactivate_confirm", w: 100, h: 20, do: func(t *testing.T, d *driver) {
			d.keys(keySpace, keyDown, keySpace, runes("d"))
		}},
		{name: "delete_confirm", w: 100, h: 20, do: func(t *testing.T, d *driver) {
			d.keys(keyDown, runes("x"))
			d.typ("feeds")
			d.keys(keyEnter)
		}},
		{name: "form_empty", w: 100, h: 24, do: func(t *testing.T, d *driver) {
			d.keys(runes("n"))
		}},
		{name: "form_error_required", w: 100, h: 24, do: func(t *testing.T, d *driver) {
			d.keys(runes("n"), keyCtrlS)
		}},
		{name: "form_error_name_characters", w: 100, h: 24, do: func(t *testing.T, d *driver) {
			d.keys(runes("n"))
			d.typ("my token")
			d.keys(keyTab)
			d.typ("two\nlines")
		}},
		{name: "form_error_name_taken", w: 100, h: 24, do: func(t *testing.T, d *driver) {
			d.keys(runes("n"))
			d.typ("Feeds-Sync")
			d.keys(keyTab, keyTab, keyTab, keySpace, keyCtrlS)
		}},
		{name: "form_error_access", w: 100, h: 24, do: func(t *testing.T, d *driver) {
			d.keys(runes("+"))
			d.typ("ci-runner")
			d.keys(keyTab, keyTab, keyTab, keySpace, keySpace)
		}},
		{name: "form_error_description", w: 100, h: 24, do: func(t *testing.T, d *driver) {
			d.keys(runes("n"))
			d.typ("ci-runner")
			d.keys(keyTab)
			// One character over the limit, pasted: refused beside the field.
			d.keys(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(strings.Repeat("é", 1025)), Paste: true})
		}},
		{name: "form_edit", w: 100, h: 24, do: func(t *testing.T, d *driver) {
			d.keys(keyDown, runes("e"))
		}},
		{name: "reveal", w: 100, h: 20, do: createToken},
		{name: "reveal_closing", w: 100, h: 20, do: func(t *testing.T, d *driver) {
			createToken(t, d)
			d.keys(keyEnter)
		}},
		{name: "reveal_narrow", w: 50, h: 20, do: createToken},
		{name: "usage_blocked_ip", w: 100, h: 20, do: func(t *testing.T, d *driver) {
			d.keys(keyDown, keyEnter)
		}},
		{name: "usage_ipv6", w: 100, h: 20, more: seedIPv6, do: func(t *testing.T, d *driver) {
			d.keys(keyDown, keyEnter)
		}},
		{name: "audit", w: 100, h: 20, do: func(t *testing.T, d *driver) {
			d.keys(runes("L"))
		}},
		{name: "full_help", w: 100, h: 20, do: func(t *testing.T, d *driver) {
			d.keys(runes("?"))
		}},
		// Issue 9, fault 6: the flexible columns (description, actor,
		// details) take what the fixed ones leave; the hint shows when there
		// is room; cut text and hidden second lines end in "…".
		{name: "wide_120", w: 120, h: 12, more: seedSSHActor},
		{name: "wide_200", w: 200, h: 12, more: seedSSHActor},
		{name: "wide_120_audit", w: 120, h: 12, more: seedSSHActor, do: func(t *testing.T, d *driver) {
			d.keys(runes("L"))
		}},
		{name: "wide_200_audit", w: 200, h: 12, more: seedSSHActor, do: func(t *testing.T, d *driver) {
			d.keys(runes("L"))
		}},
		// Issue 9, fault 7: i opens the details of the token under the cursor.
		{name: "detail", w: 100, h: 24, more: seedSSHActor, do: func(t *testing.T, d *driver) {
			d.keys(keyDown, keyDown, runes("i"))
		}},
		{name: "narrow_60x15", w: 60, h: 15},
		{name: "narrow_60x15_form", w: 60, h: 15, do: func(t *testing.T, d *driver) {
			d.keys(runes("n"))
			d.typ("bad name")
		}},
		{name: "narrow_60x15_usage", w: 60, h: 15, do: func(t *testing.T, d *driver) {
			d.keys(keyDown, keyEnter)
		}},
		{name: "narrow_60x15_usage_ipv6", w: 60, h: 15, more: seedIPv6, do: func(t *testing.T, d *driver) {
			d.keys(keyDown, keyEnter)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, c := newStore(t)
			if !tt.empty {
				seedDemo(t, st, c)
			}
			if tt.more != nil {
				tt.more(t, st)
			}
			d := drive(t, newModel(st, c, nil), tt.w, tt.h)
			if tt.do != nil {
				tt.do(t, d)
			}
			requireView(t, d, tt.w, tt.h)
		})
	}
}

// requireView compares the driver's screen, w×h, with the test's golden
// file: revealed tokens and hints (random) masked.
func requireView(t *testing.T, d *driver, w, h int) {
	t.Helper()
	view := d.view()
	if got := strings.Count(view, "\n") + 1; got != h {
		t.Errorf("view has %d lines, want %d", got, h)
	}
	for i, l := range strings.Split(view, "\n") {
		if n := len([]rune(l)); n > w {
			t.Errorf("line %d is %d wide, more than %d: %q", i, n, w, l)
		}
	}
	if tok := tokenRE.FindString(view); tok != "" {
		if _, err := secret.Parse(tok); err != nil {
			t.Errorf("revealed token %q does not parse: %v", tok, err)
		}
		view = strings.ReplaceAll(view, tok, "aptk_"+strings.Repeat("X", secret.Len-len(secret.Prefix)))
	}
	// Hints come from random secrets.
	view = hintRE.ReplaceAllString(view, "aptk_…XXXX")
	golden.RequireEqual(t, []byte(view))
}

// hintRE finds a token's hint on screen.
var hintRE = regexp.MustCompile(`aptk_…[0-9A-Za-z]{4}`)

// sshFingerprint is an OpenSSH key fingerprint as the audit trail records it.
const sshFingerprint = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"

// seedSSHActor adds a token with a long description made over SSH.
func seedSSHActor(t *testing.T, st *store.Store) {
	t.Helper()
	_, err := st.Create(store.Actor{User: "alice", Fingerprint: sshFingerprint}, store.NewToken{
		Name:        "partner-api",
		Description: "Partner API for the EU region: pulls indicators every 5 minutes and pushes verdicts back to the partner's SOC",
		Access:      []store.Access{store.AccessThirdPartyFeeds},
	})
	if err != nil {
		t.Fatal(err)
	}
}

// longIPv6 is as long as an IPv6 address gets (39 characters).
const longIPv6 = "fd12:3456:789a:bcde:f012:3456:789a:bcde"

// seedIPv6 adds two IPv6 clients of feeds-sync and blocks the longest.
func seedIPv6(t *testing.T, st *store.Store) {
	t.Helper()
	feeds, err := st.Get("feeds-sync")
	if err != nil {
		t.Fatal(err)
	}
	at := testNow.Add(-30 * time.Minute)
	_, err = st.RecordUsage([]store.UsageDelta{
		{TokenID: feeds.ID, IP: longIPv6, FirstUsedAt: at.Add(-time.Hour), LastUsedAt: at, Allowed: 12, Denied: 1},
		{TokenID: feeds.ID, IP: "2001:db8::7", FirstUsedAt: at.Add(-2 * time.Hour), LastUsedAt: at.Add(-time.Minute), Allowed: 3},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.SetBlocked(tester, "feeds-sync", []string{longIPv6}, true); err != nil {
		t.Fatal(err)
	}
}

// createToken fills the form and submits it.
func createToken(t *testing.T, d *driver) {
	t.Helper()
	d.keys(runes("n"))
	d.typ("ci-runner")
	d.keys(keyTab)
	d.typ("Builds and deploys")
	d.keys(keyTab, keyTab, keySpace, keyTab, keySpace, keyCtrlS)
	if !strings.Contains(d.view(), "will not be shown again") {
		t.Fatalf("no reveal after create:\n%s", d.view())
	}
}

package tui

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/exp/teatest"

	"github.com/apptokens/apptokens/internal/secret"
	"github.com/apptokens/apptokens/store"
)

// seedLifecycle adds, beside seedDemo's tokens, one token in each lifecycle
// case the table shows (issue 11): expiring within 7 days (marked), expired,
// rotating, expiring in 12 days, becoming inactive within 7 days (marked).
// The clock is left at testNow.
func seedLifecycle(t testing.TB, st *store.Store, c *clock) {
	t.Helper()
	day := 24 * time.Hour
	create := func(at time.Time, name string, expires time.Time) store.Created {
		t.Helper()
		c.Set(at)
		cr, err := st.Create(tester, store.NewToken{Name: name, Access: []store.Access{store.AccessSecurityDirector}, ExpiresAt: expires, Description: "lifecycle: " + name})
		if err != nil {
			t.Fatal(err)
		}
		return cr
	}
	create(testNow.Add(-time.Hour), "ci-deploy", testNow.Add(3*day))
	create(testNow.Add(-10*day), "old-vendor", testNow.Add(-day))
	create(testNow.Add(-2*day), "quarterly", testNow.Add(12*day))
	create(testNow.Add(-25*day), "soon-idle", time.Time{})
	create(testNow.Add(-5*day), "partner-feed", time.Time{})
	c.Set(testNow.Add(-time.Hour))
	if _, err := st.Rotate(tester, "partner-feed", 3*time.Hour); err != nil {
		t.Fatal(err)
	}
	c.Set(testNow)
}

// TestViewLifecycle compares the screens of issue 11 with
// testdata/TestViewLifecycle/*.golden: the Expires column and the Expired
// state, the 7-day marks, days to deletion, the rotation note, the form's
// Expires field, the rotation prompt and reveal, and the usage screen's
// network rules.
func TestViewLifecycle(t *testing.T) {
	tests := []struct {
		name string
		w, h int
		do   func(t *testing.T, d *driver)
	}{
		{name: "tokens_130", w: 130, h: 14},
		{name: "tokens_200", w: 200, h: 14},
		{name: "tokens_80", w: 80, h: 14},
		{name: "tokens_100", w: 100, h: 14},
		{name: "form_expires_span", w: 100, h: 26, do: func(t *testing.T, d *driver) {
			d.keys(runes("n"))
			d.typ("ci-runner")
			d.keys(keyTab, keyTab)
			d.typ("30d")
		}},
		{name: "form_expires_error", w: 100, h: 26, do: func(t *testing.T, d *driver) {
			d.keys(runes("n"))
			d.typ("ci-runner")
			d.keys(keyTab, keyTab)
			d.typ("2026-11-01")
		}},
		{name: "form_edit_expired", w: 100, h: 26, do: func(t *testing.T, d *driver) {
			d.keys(runes("/"))
			d.typ("old-vendor")
			d.keys(keyEnter, runes("e"))
		}},
		{name: "rotate_prompt", w: 100, h: 20, do: func(t *testing.T, d *driver) {
			d.keys(runes("r"))
		}},
		{name: "rotate_prompt_error", w: 100, h: 20, do: func(t *testing.T, d *driver) {
			d.keys(runes("r"), keyBackspace, keyBackspace, keyBackspace)
			d.typ("banana")
			d.keys(keyEnter) // refused: the prompt stays
		}},
		{name: "rotate_reveal", w: 100, h: 20, do: func(t *testing.T, d *driver) {
			d.keys(runes("r"), keyEnter)
		}},
		{name: "detail_rotating", w: 100, h: 20, do: func(t *testing.T, d *driver) {
			d.keys(runes("/"))
			d.typ("partner-feed")
			d.keys(keyEnter, runes("i"))
		}},
		{name: "detail_expired", w: 100, h: 20, do: func(t *testing.T, d *driver) {
			d.keys(runes("/"))
			d.typ("old-vendor")
			d.keys(keyEnter, runes("i"))
		}},
		{name: "usage_rules", w: 100, h: 24, do: func(t *testing.T, d *driver) {
			d.keys(runes("/"))
			d.typ("feeds-sync")
			d.keys(keyEnter, keyEnter)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, c := newStore(t)
			seedDemo(t, st, c)
			seedLifecycle(t, st, c)
			if _, err := st.SetAllowed(tester, "feeds-sync", []string{"10.0.0.0/8", "2001:db8::/32"}, true); err != nil {
				t.Fatal(err)
			}
			if _, err := st.SetBlocked(tester, "feeds-sync", []string{"192.0.2.0/24"}, true); err != nil {
				t.Fatal(err)
			}
			d := drive(t, newModel(st, c, nil), tt.w, tt.h)
			if tt.do != nil {
				tt.do(t, d)
			}
			requireView(t, d, tt.w, tt.h)
		})
	}
}

// The rules of the table, asserted apart from the layout: what a user reads.
func TestLifecycleCells(t *testing.T) {
	st, c := newStore(t)
	seedDemo(t, st, c)
	seedLifecycle(t, st, c)
	d := drive(t, newModel(st, c, nil), 200, 20)
	v := d.view()
	for name, want := range map[string][]string{
		"ci-deploy":      {"Active", "⚠ in 3 days"},
		"old-vendor":     {"Expired", "2026-11-26", "deleted in 80 d"},
		"quarterly":      {"Active", "in 12 days"},
		"soon-idle":      {"Active", "⚠ 5 days", "never"},
		"partner-feed":   {"Active, rotating, old secret until 14:00"},
		"billing-export": {"Inactive", "deleted in 50 d"},
	} {
		row := lineWith(v, name)
		for _, w := range want {
			if !strings.Contains(row, w) {
				t.Errorf("%s: row %q does not say %q", name, row, w)
			}
		}
	}
	if row := lineWith(v, "quarterly"); strings.Contains(row, "⚠") {
		t.Errorf("a token 12 days from its expiry is marked: %q", row)
	}
	// Once the grace window ends, the note goes (the sweep clears the old
	// secret; the table stops saying it before that).
	c.Set(testNow.Add(2*time.Hour + time.Second))
	d.send(nil)
	if row := lineWith(d.view(), "partner-feed"); strings.Contains(row, "rotating") {
		t.Errorf("after the grace window the row still says rotating: %q", row)
	}
}

// TestFlowRotateRevealsNewSecret rotates a token in a running program: r asks
// the grace window, enter takes the default (24h), and the reveal shows the
// new secret exactly as it shows a new token's; the store then knows the new
// secret as current and the old one as still valid until the grace ends.
func TestFlowRotateRevealsNewSecret(t *testing.T) {
	st, c := newStore(t)
	old, err := st.Create(tester, store.NewToken{Name: "feeds", Access: []store.Access{store.AccessThirdPartyFeeds}})
	if err != nil {
		t.Fatal(err)
	}
	var clip bytes.Buffer
	// Wide enough for the whole rotation note beside the other columns.
	tm := teatest.NewTestModel(t, newModel(st, c, &clip), teatest.WithInitialTermSize(160, 30))
	waitFor(t, tm, "feeds", "Active")

	tm.Type("r")
	waitFor(t, tm, "Rotate token feeds", "the old secret works until 2026-11-28 12:00 UTC")
	send(tm, keyEnter)
	out := waitFor(t, tm, "Token feeds rotated", "The old secret works until 2026-11-28 12:00 UTC", "it will not be shown again")
	found := tokenRE.Find(out)
	if found == nil {
		t.Fatalf("no token in the reveal:\n%s", out)
	}
	fresh, err := secret.Parse(string(found))
	if err != nil {
		t.Fatal(err)
	}
	if fresh.Reveal() == old.Secret.Reveal() {
		t.Fatal("the reveal shows the old secret")
	}
	tok, isOld, err := st.Whois(fresh.Digest())
	if err != nil || isOld || tok.ID != old.Token.ID {
		t.Fatalf("whois(new) = %s old=%v, %v; want feeds, current", tok.Name, isOld, err)
	}
	tok, isOld, err = st.Whois(old.Secret.Digest())
	if err != nil || !isOld || tok.ID != old.Token.ID {
		t.Fatalf("whois(old) = %s old=%v, %v; want feeds, old", tok.Name, isOld, err)
	}
	end := testNow.Add(24 * time.Hour)
	if !tok.OldValidAt(end.Add(-time.Second)) || tok.OldValidAt(end) {
		t.Fatalf("old secret valid until %s, want until %s", tok.OldValidUntil, end)
	}
	// c copies the new secret; enter, y closes as after create.
	tm.Type("c")
	waitFor(t, tm, "Copied to the clipboard")
	if !bytes.Contains(clip.Bytes(), []byte("\x1b]52;c;")) {
		t.Fatal("no OSC 52 copy")
	}
	send(tm, keyEnter)
	waitFor(t, tm, "Close? You will not be able to see this token again.")
	tm.Type("y")
	waitFor(t, tm, "Token feeds rotated; its secret is no longer shown anywhere", "Active, rotating, old secret until tomorrow 12:00")
	finish(t, tm)
}

// A grace window typed wrong is refused beside the field; 0 stops the old
// secret at once.
func TestRotateGraceZero(t *testing.T) {
	st, c := newStore(t)
	old, err := st.Create(tester, store.NewToken{Name: "feeds", Access: []store.Access{store.AccessThirdPartyFeeds}})
	if err != nil {
		t.Fatal(err)
	}
	d := drive(t, newModel(st, c, nil), 100, 24)
	d.keys(runes("r"), keyBackspace, keyBackspace, keyBackspace)
	d.typ("-1h")
	d.keys(keyEnter)
	if v := d.view(); !strings.Contains(v, `grace "-1h": want a duration`) || !strings.Contains(v, "Rotate token feeds") {
		t.Fatalf("a negative grace is not refused in the prompt:\n%s", v)
	}
	if tok, _ := st.Get("feeds"); !tok.RotatedAt.IsZero() {
		t.Fatal("a refused grace rotated the token")
	}
	d.keys(keyBackspace, keyBackspace, keyBackspace)
	d.typ("0")
	d.keys(keyEnter)
	if v := d.view(); !strings.Contains(v, "The old secret no longer works") {
		t.Fatalf("no reveal after grace 0:\n%s", v)
	}
	if tok, isOld, err := st.Whois(old.Secret.Digest()); err == nil && (!isOld || tok.OldValidAt(testNow)) {
		t.Fatalf("grace 0: the old secret still works (%s old=%v)", tok.Name, isOld)
	}
}

// The form's Expires field reaches the store: a span on create, a new date
// on edit brings an expired token back, and an emptied field is never.
func TestFormExpires(t *testing.T) {
	st, c := newStore(t)
	d := drive(t, newModel(st, c, nil), 100, 30)
	d.keys(runes("n"))
	d.typ("ci-runner")
	d.keys(keyTab, keyTab)
	d.typ("2d")
	d.keys(keyTab, keySpace, keyCtrlS)
	tok, err := st.Get("ci-runner")
	if err != nil || !tok.ExpiresAt.Equal(testNow.Add(2*24*time.Hour)) {
		t.Fatalf("created with expiry %s (%v), want %s", tok.ExpiresAt, err, testNow.Add(2*24*time.Hour))
	}
	d.keys(runes("y")) // the reveal: enter was not pressed, y does nothing
	d.keys(keyEnter, runes("y"))

	// Past its expiry the token is Expired; edit gives it a new date.
	c.Set(testNow.Add(3 * 24 * time.Hour))
	d.send(nil)
	if row := lineWith(d.view(), "ci-runner"); !strings.Contains(row, "Expired") {
		t.Fatalf("past its expiry: %q", row)
	}
	d.keys(runes("e"), keyTab)
	// A date in the past is refused beside the field, nothing saved.
	for range len(tok.ExpiresAt.UTC().Format(time.RFC3339)) {
		d.keys(keyBackspace)
	}
	d.typ("2026-11-29")
	d.keys(keyCtrlS)
	if v := d.view(); !strings.Contains(v, "expires must be in the future") {
		t.Fatalf("a past date is not refused beside the field:\n%s", v)
	}
	for range len("2026-11-29") {
		d.keys(keyBackspace)
	}
	d.typ("2027-06-01")
	d.keys(keyCtrlS)
	tok, _ = st.Get("ci-runner")
	if want := time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC); !tok.ExpiresAt.Equal(want) {
		t.Fatalf("edited expiry %s, want %s", tok.ExpiresAt, want)
	}
	if row := lineWith(d.view(), "ci-runner"); !strings.Contains(row, "Active") {
		t.Fatalf("a new date does not bring the token back: %q", row)
	}
	// Emptied: never.
	d.keys(runes("e"), keyTab)
	for range len(tok.ExpiresAt.UTC().Format(time.RFC3339)) {
		d.keys(keyBackspace)
	}
	d.keys(keyCtrlS)
	if tok, _ = st.Get("ci-runner"); !tok.ExpiresAt.IsZero() {
		t.Fatalf("emptied Expires field stored %s, want never", tok.ExpiresAt)
	}
}

// + and - change the allow-list, U unblocks a range (which B blocked) — on
// the token the screen shows.
func TestUsageNetworkRules(t *testing.T) {
	st, c := newStore(t)
	seedDemo(t, st, c)
	d := drive(t, newModel(st, c, nil), 120, 30)
	d.keys(keyDown, keyEnter) // feeds-sync
	d.keys(runes("+"))
	d.typ("10.0.0.1/8")
	d.keys(keyEnter)
	if v := d.view(); !strings.Contains(v, "host bits") || !strings.Contains(v, "Allow a range for feeds-sync") {
		t.Fatalf("a range with host bits is not refused live:\n%s", v)
	}
	for range len("10.0.0.1/8") {
		d.keys(keyBackspace)
	}
	d.typ("10.0.0.0/8")
	d.keys(keyEnter)
	v := d.view()
	if !strings.Contains(v, "1 range added to the allow-list of feeds-sync") || !strings.Contains(lineWith(v, "Allowed networks"), "10.0.0.0/8") {
		t.Fatalf("+ did not allow the range:\n%s", v)
	}
	if tok, _ := st.Get("feeds-sync"); len(tok.Allowed) != 1 || tok.Allowed[0] != "10.0.0.0/8" {
		t.Fatalf("stored allow-list %v", tok.Allowed)
	}
	d.keys(runes("B"))
	d.typ("192.0.2.0/24")
	d.keys(keyEnter)
	if v := d.view(); !strings.Contains(lineWith(v, "Blocked ranges"), "192.0.2.0/24") {
		t.Fatalf("B did not block the range:\n%s", v)
	}
	d.keys(runes("U"))
	d.typ("192.0.2.0/24")
	d.keys(keyEnter)
	if v := d.view(); !strings.Contains(lineWith(v, "Blocked ranges"), "none") {
		t.Fatalf("U did not unblock the range:\n%s", v)
	}
	d.keys(runes("-")) // the one range is offered
	d.keys(keyEnter)
	if v := d.view(); !strings.Contains(lineWith(v, "Allowed networks"), "any address") {
		t.Fatalf("- did not remove the range:\n%s", v)
	}
	if tok, _ := st.Get("feeds-sync"); len(tok.Allowed) != 0 {
		t.Fatalf("stored allow-list %v, want none", tok.Allowed)
	}
}

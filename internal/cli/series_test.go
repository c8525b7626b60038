package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/storetest"
)

// usedFrom records requests of the named token in dir's store: per address,
// the times ago and counts given.
func usedFrom(t *testing.T, dir, name string, uses []struct {
	ip              string
	ago             time.Duration
	allowed, denied uint64
}) {
	t.Helper()
	st, err := storetest.OpenWith(storetest.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tok, err := st.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, u := range uses {
		at := now.Add(-u.ago)
		if _, err := st.RecordUsage([]store.UsageDelta{{TokenID: tok.ID, IP: u.ip, FirstUsedAt: at, LastUsedAt: at, Allowed: u.allowed, Denied: u.denied}}); err != nil {
			t.Fatal(err)
		}
	}
}

type seriesOut struct {
	Addresses []map[string]any `json:"addresses"`
	Series    []struct {
		Hour    string `json:"hour"`
		Allowed uint64 `json:"allowed"`
		Denied  uint64 `json:"denied"`
	} `json:"series"`
}

// TestUsageSeriesJSON: `usage NAME --json --series W` prints DESIGN's object:
// the usual address rows and every hour of the window, oldest first, in RFC
// 3339 UTC; --ip narrows both to one address.
func TestUsageSeriesJSON(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, dir, "create", "--name", "charted", "--access", "security-director")
	usedFrom(t, dir, "charted", []struct {
		ip              string
		ago             time.Duration
		allowed, denied uint64
	}{
		{"192.0.2.1", 90 * time.Minute, 5, 1},
		{"192.0.2.1", 3 * time.Hour, 2, 0},
		{"2001:db8::9", 3 * time.Hour, 0, 7},
		{"192.0.2.1", 48 * time.Hour, 11, 0},
	})

	decode := func(args ...string) seriesOut {
		t.Helper()
		out := mustRun(t, dir, args...)
		var raw map[string]json.RawMessage
		if err := json.Unmarshal([]byte(out), &raw); err != nil {
			t.Fatalf("%v: not a JSON object: %v\n%s", args, err, out)
		}
		if len(raw) != 2 || raw["addresses"] == nil || raw["series"] == nil {
			t.Fatalf("%v: keys of %s, want addresses and series", args, out)
		}
		var so seriesOut
		if err := json.Unmarshal([]byte(out), &so); err != nil {
			t.Fatal(err)
		}
		return so
	}
	sums := func(so seriesOut) (a, d uint64) {
		for _, h := range so.Series {
			a += h.Allowed
			d += h.Denied
		}
		return a, d
	}

	day := decode("usage", "charted", "--json", "--series", "24h")
	if len(day.Series) != 24 {
		t.Fatalf("24h series has %d hours, want 24", len(day.Series))
	}
	var prev time.Time
	for i, h := range day.Series {
		at, err := time.Parse(time.RFC3339, h.Hour)
		if err != nil || !strings.HasSuffix(h.Hour, ":00:00Z") {
			t.Fatalf("hour %q is not an RFC 3339 UTC hour", h.Hour)
		}
		if i > 0 && !at.Equal(prev.Add(time.Hour)) {
			t.Fatalf("hour %d is %s after %s: want consecutive hours", i, at, prev)
		}
		prev = at
	}
	if now := time.Now().UTC().Truncate(time.Hour); prev.After(now) || prev.Before(now.Add(-time.Hour)) {
		t.Errorf("last hour %s, want the current hour %s", prev, now)
	}
	if a, d := sums(day); a != 7 || d != 8 {
		t.Errorf("24h series adds up to %d allowed, %d denied; want 7 and 8 (the use 2 days ago is outside)", a, d)
	}
	if len(day.Addresses) != 2 || day.Addresses[0]["ip"] == nil || day.Addresses[0]["first_used_at"] == nil {
		t.Errorf("addresses = %v, want the 2 usual rows", day.Addresses)
	}
	week := decode("usage", "charted", "--json", "--series", "7d")
	if a, d := sums(week); len(week.Series) != 7*24 || a != 18 || d != 8 {
		t.Errorf("7d series: %d hours, %d allowed, %d denied; want 168, 18, 8", len(week.Series), a, d)
	}
	if month := decode("usage", "charted", "--json", "--series", "30d"); len(month.Series) != 30*24 {
		t.Errorf("30d series: %d hours, want 720", len(month.Series))
	}

	one := decode("usage", "charted", "--json", "--series", "7d", "--ip", "2001:DB8:0::9")
	if len(one.Addresses) != 1 || one.Addresses[0]["ip"] != "2001:db8::9" {
		t.Errorf("--ip addresses = %v, want 2001:db8::9 alone", one.Addresses)
	}
	if a, d := sums(one); a != 0 || d != 7 {
		t.Errorf("--ip series adds up to %d/%d, want 0/7", a, d)
	}
	// --ip without --series: the usual array, one row.
	var rows []map[string]any
	if err := json.Unmarshal([]byte(mustRun(t, dir, "usage", "charted", "--json", "--ip", "192.0.2.1")), &rows); err != nil || len(rows) != 1 || rows[0]["ip"] != "192.0.2.1" {
		t.Errorf("--ip rows = %v (%v), want 192.0.2.1 alone", rows, err)
	}

	text := mustRun(t, dir, "usage", "charted", "--series", "24h", "--ip", "192.0.2.1")
	if !strings.Contains(text, "HOUR (UTC)") || strings.Count(text, "\n") != 2+1+1+24 || strings.Contains(text, "2001:db8::9") {
		t.Errorf("text --series --ip:\n%s\nwant the one address row, a blank line and 24 hours", text)
	}
	if text := mustRun(t, dir, "usage", "charted", "--ip", "198.51.100.1"); !strings.Contains(text, "No requests with this token from 198.51.100.1 yet.") {
		t.Errorf("unseen --ip: %q", text)
	}
}

// TestUsageSeriesBadValues: a bad --series or --ip is one line of error,
// before anything is read.
func TestUsageSeriesBadValues(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, dir, "create", "--name", "charted", "--access", "security-director")
	for _, args := range [][]string{
		{"usage", "charted", "--series", "5d"},
		{"usage", "charted", "--json", "--series", "24"},
		{"usage", "charted", "--series", "24H"},
		{"usage", "charted", "--ip", "192.0.2.300"},
		{"usage", "charted", "--ip", "0.0.0.0"},
		{"usage", "ghost", "--series", "24h"},
	} {
		out, _, err := run(t, dir, args...)
		if err == nil || strings.Contains(err.Error(), "\n") || out != "" {
			t.Errorf("%v: err %v, out %q; want one line of error and no output", args, err, out)
		}
	}
	_, _, err := run(t, dir, "usage", "charted", "--series", "5d")
	if err == nil || !strings.Contains(err.Error(), "--series") || !strings.Contains(err.Error(), "24h, 7d or 30d") {
		t.Errorf("bad --series error: %v", err)
	}
}

// TestSeedDemoHasHistory: the demo data has hourly history for the charts, for
// each address at most its totals, with the working hours busier.
func TestSeedDemoHasHistory(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, dir, "seed", "--demo")
	withHistory := 0
	for _, name := range []string{"soc-siem-export", "grafana-dashboards", "legacy-soar", "threatfeed-sync", "soar-playbooks", "edr-connector"} {
		var so seriesOut
		if err := json.Unmarshal([]byte(mustRun(t, dir, "usage", name, "--json", "--series", "30d")), &so); err != nil {
			t.Fatal(err)
		}
		for _, a := range so.Addresses {
			ip := a["ip"].(string)
			var one seriesOut
			if err := json.Unmarshal([]byte(mustRun(t, dir, "usage", name, "--json", "--series", "30d", "--ip", ip)), &one); err != nil {
				t.Fatal(err)
			}
			var sa, sd uint64
			for _, h := range one.Series {
				sa, sd = sa+h.Allowed, sd+h.Denied
			}
			if sa > uint64(a["allowed"].(float64)) || sd > uint64(a["denied"].(float64)) {
				t.Errorf("%s %s: history %d/%d exceeds the totals %v/%v", name, ip, sa, sd, a["allowed"], a["denied"])
			}
			if sa+sd > 0 {
				withHistory++
			}
		}
	}
	if withHistory < 5 {
		t.Errorf("%d demo addresses have history, want most of those used in the last 30 days", withHistory)
	}
	var day seriesOut
	if err := json.Unmarshal([]byte(mustRun(t, dir, "usage", "grafana-dashboards", "--json", "--series", "7d")), &day); err != nil {
		t.Fatal(err)
	}
	var work, night uint64
	for _, h := range day.Series {
		at, _ := time.Parse(time.RFC3339, h.Hour)
		if at.Hour() >= 7 && at.Hour() < 19 {
			work += h.Allowed
		} else {
			night += h.Allowed
		}
	}
	if night == 0 || work < 2*night {
		t.Errorf("grafana-dashboards last 7 days: %d in working hours, %d outside; want both, working hours busier", work, night)
	}
}

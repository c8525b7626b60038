package cli

import (
	"bytes"
	"encoding/json"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/storetest"
)

// runAs executes one command line against dir as actor.
func runAs(t *testing.T, dir string, actor store.Actor, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	root := NewRoot(Env{
		Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Actor: actor,
		Open: func(d string) (*store.Store, func(), error) {
			st, err := storetest.OpenWith(storetest.Options{Dir: d})
			if err != nil {
				return nil, nil, err
			}
			return st, func() { st.Close() }, nil
		},
	})
	root.SetArgs(append([]string{"--db", dir}, args...))
	if err := root.Execute(); err != nil {
		t.Fatalf("%v: %v (stderr %q)", args, err, errb.String())
	}
	return out.String()
}

// columnAt is the terminal column (in cells) where the first occurrence of
// word starts in line, or -1.
func columnAt(line, word string) int {
	i := strings.Index(line, word)
	if i < 0 {
		return -1
	}
	return ansi.StringWidth(line[:i])
}

// TestAuditColumnsAlignWithWideActors: text tables pad by terminal cells, so
// an actor written in CJK (two cells a character) does not shift the columns
// after it (issue 8, fault 12).
func TestAuditColumnsAlignWithWideActors(t *testing.T) {
	dir := t.TempDir()
	runAs(t, dir, store.Actor{User: "王小明"}, "create", "--name", "from-cjk", "--access", "security-director")
	runAs(t, dir, store.Actor{User: "ops"}, "create", "--name", "from-ascii", "--access", "security-director")
	runAs(t, dir, store.Actor{User: "Zoë-ｆｕｌｌ"}, "deactivate", "from-ascii")
	out := runAs(t, dir, store.Actor{User: "ops"}, "audit")
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("audit:\n%s", out)
	}
	want := columnAt(lines[0], "ACTION")
	for _, l := range lines[1:] {
		var col int
		for _, action := range []string{"create", "deactivate"} {
			if c := columnAt(l, "  "+action); c >= 0 {
				col = c + 2
			}
		}
		if col != want {
			t.Errorf("the action starts at column %d, the ACTION title at %d:\n%s", col, want, out)
		}
	}
}

// TestTextOutputInUTC: list, usage and audit show times in UTC, as JSON and
// the TUI do, whatever the local time zone, and their column titles say so
// (issue 9, fault 12).
func TestTextOutputInUTC(t *testing.T) {
	local := time.Local
	time.Local = time.FixedZone("UTC+5:30", 5*3600+1800)
	t.Cleanup(func() { time.Local = local })
	dir := t.TempDir()
	admin := store.Actor{User: "ops"}
	runAs(t, dir, admin, "create", "--name", "api-1", "--access", "security-director")

	var toks []struct {
		CreatedAt time.Time `json:"created_at"`
	}
	if err := json.Unmarshal([]byte(runAs(t, dir, admin, "list", "--json")), &toks); err != nil || len(toks) != 1 {
		t.Fatalf("list --json: %v %+v", err, toks)
	}
	list := runAs(t, dir, admin, "list")
	if !strings.Contains(list, "CREATED (UTC)") || !strings.Contains(list, toks[0].CreatedAt.UTC().Format("2006-01-02 15:04")) {
		t.Errorf("list does not show the creation time %s in UTC:\n%s", toks[0].CreatedAt, list)
	}

	var evs []struct {
		Time time.Time `json:"time"`
	}
	if err := json.Unmarshal([]byte(runAs(t, dir, admin, "audit", "--json")), &evs); err != nil || len(evs) != 1 {
		t.Fatalf("audit --json: %v %+v", err, evs)
	}
	audit := runAs(t, dir, admin, "audit")
	if !strings.Contains(audit, "TIME (UTC)") || !strings.Contains(audit, evs[0].Time.UTC().Format("2006-01-02 15:04:05")) {
		t.Errorf("audit does not show the event time %s in UTC:\n%s", evs[0].Time, audit)
	}

	st, err := storetest.OpenWith(storetest.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := st.Get("api-1")
	if err != nil {
		t.Fatal(err)
	}
	used := time.Date(2026, 3, 1, 23, 30, 0, 0, time.UTC) // 2026-03-02 05:00 in the local zone
	if _, err := st.RecordUsage([]store.UsageDelta{{TokenID: tok.ID, IP: "192.0.2.7", FirstUsedAt: used, LastUsedAt: used, Allowed: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	usage := runAs(t, dir, admin, "usage", "api-1")
	if !strings.Contains(usage, "FIRST USED (UTC)") || strings.Count(usage, "2026-03-01 23:30") != 2 {
		t.Errorf("usage does not show 2026-03-01 23:30 UTC twice:\n%s", usage)
	}
}

// TestVersion: --version names the build from its build information.
func TestVersion(t *testing.T) {
	for _, tc := range []struct {
		info debug.BuildInfo
		want string
	}{
		{debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.2.3"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "4f39737a1b2c3d4e5f60718293a4b5c6d7e8f901"}, {Key: "vcs.time", Value: "2026-11-30T19:00:00Z"}, {Key: "vcs.modified", Value: "false"},
		}}, "v1.2.3 (revision 4f39737a1b2c, committed 2026-11-30T19:00:00Z, go1.26.0)"},
		{debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "4f39737a1b2c3d4e"}, {Key: "vcs.modified", Value: "true"},
		}}, "(devel) (revision 4f39737a1b2c-modified, go1.26.0)"},
		{debug.BuildInfo{GoVersion: "go1.26.0"}, "(devel) (go1.26.0)"},
	} {
		if got := versionOf(&tc.info); got != tc.want {
			t.Errorf("versionOf = %q, want %q", got, tc.want)
		}
	}
	out := runAs(t, t.TempDir(), store.Actor{User: "ops"}, "--version")
	if out != "apptokens "+Version()+"\n" || !strings.Contains(out, runtime.Version()) {
		t.Errorf("--version printed %q", out)
	}
}

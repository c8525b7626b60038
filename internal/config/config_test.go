package config

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// flags are a top level with --db (env APPTOKENS_DB) and a [serve] table.
type flags struct {
	top, serve  *pflag.FlagSet
	db, ssh     string
	grace       time.Duration
	proxies     []string
	maxSessions int
	passAuthz   bool
	tui         TUI
	tuiFlags    *pflag.FlagSet
}

func newFlags() *flags {
	f := &flags{top: pflag.NewFlagSet("top", pflag.ContinueOnError), serve: pflag.NewFlagSet("serve", pflag.ContinueOnError)}
	f.top.StringVar(&f.db, "db", "/default/db", "")
	f.serve.StringVar(&f.ssh, "ssh", "127.0.0.1:23234", "")
	f.serve.DurationVar(&f.grace, "ssh-login-grace", 30*time.Second, "")
	f.serve.StringArrayVar(&f.proxies, "trusted-proxy", nil, "")
	f.serve.IntVar(&f.maxSessions, "max-ssh-sessions-per-conn", 4, "")
	f.serve.BoolVar(&f.passAuthz, "pass-authorization", false, "")
	f.tuiFlags = TUIFlags(&f.tui)
	return f
}

func (f *flags) tables() []Table {
	return []Table{
		{Flags: f.top, Env: map[string]string{"db": "APPTOKENS_DB"}},
		{Flags: f.tuiFlags},
		{Name: "serve", Flags: f.serve},
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), FileName)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func sourceOf(list []Setting, key string) (value, source string) {
	for _, s := range list {
		if s.Key == key {
			return s.Value, s.Source
		}
	}
	return "", "missing"
}

// default < file < env < flag, for a setting that has all four.
func TestPrecedence(t *testing.T) {
	const file = "# settings\ndb = \"/file/db\"\n\n[serve]\nssh = \"127.0.0.1:2222\"\n"
	cases := []struct {
		name      string
		file      bool
		env, flag string
		wantDB    string
		wantSrc   string
	}{
		{"default", false, "", "", "/default/db", "default"},
		{"file over default", true, "", "", "/file/db", "file PATH:2"},
		{"env over file", true, "/env/db", "", "/env/db", "env APPTOKENS_DB"},
		{"flag over env", true, "/env/db", "/flag/db", "/flag/db", "flag"},
		{"flag over file", true, "", "/flag/db", "/flag/db", "flag"},
		{"env over default", false, "/env/db", "", "/env/db", "env APPTOKENS_DB"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFlags()
			path := filepath.Join(t.TempDir(), FileName) // absent
			if c.file {
				path = writeFile(t, file)
			}
			if c.flag != "" {
				if err := f.top.Parse([]string{"--db", c.flag}); err != nil {
					t.Fatal(err)
				}
			}
			env := map[string]string{"APPTOKENS_DB": c.env}
			list, err := Apply(path, false, f.tables(), func(k string) string { return env[k] })
			if err != nil {
				t.Fatal(err)
			}
			want := strings.ReplaceAll(c.wantSrc, "PATH", path)
			if v, src := sourceOf(list, "db"); f.db != c.wantDB || v != c.wantDB || src != want {
				t.Errorf("db = %q (shown %q from %q), want %q from %q", f.db, v, src, c.wantDB, want)
			}
			wantSSH, wantSrc := "127.0.0.1:23234", "default"
			if c.file {
				wantSSH, wantSrc = "127.0.0.1:2222", "file "+path+":5"
			}
			if v, src := sourceOf(list, "serve.ssh"); f.ssh != wantSSH || v != wantSSH || src != wantSrc {
				t.Errorf("serve.ssh = %q (shown %q from %q), want %q from %q", f.ssh, v, src, wantSSH, wantSrc)
			}
		})
	}
}

// Every kind of flag takes its value from the file, and a value set by the
// file counts as given (serve asks Changed of --inactive-after).
func TestFileValues(t *testing.T) {
	f := newFlags()
	path := writeFile(t, `theme = "light"
columns = ["name", "last_used", "state"]
chart_window = "7d"

[serve]
ssh_login_grace = "45s"
trusted_proxy = ["10.0.0.0/8", "192.168.0.0/16"]
max_ssh_sessions_per_conn = 2
pass_authorization = true
`)
	list, err := Apply(path, true, f.tables(), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if f.tui.Theme != "light" || strings.Join(f.tui.Columns, ",") != "name,last_used,state" || f.tui.ChartWindow != "7d" || f.tui.Window() != 7*24*time.Hour {
		t.Errorf("tui settings %+v", f.tui)
	}
	if f.grace != 45*time.Second || strings.Join(f.proxies, " ") != "10.0.0.0/8 192.168.0.0/16" || f.maxSessions != 2 || !f.passAuthz {
		t.Errorf("serve flags: grace %v proxies %v sessions %d pass %v", f.grace, f.proxies, f.maxSessions, f.passAuthz)
	}
	if !f.serve.Changed("ssh-login-grace") || f.serve.Changed("ssh") {
		t.Error("a flag set by the file must count as given, and only those")
	}
	for key, line := range map[string]int{"theme": 1, "columns": 2, "serve.ssh_login_grace": 6, "serve.trusted_proxy": 7, "serve.pass_authorization": 9} {
		if _, src := sourceOf(list, key); src != "file "+path+":"+strconv.Itoa(line) {
			t.Errorf("%s from %q, want line %d", key, src, line)
		}
	}
}

// An unknown key or a bad value is one line naming the file, the line and the
// key, and no flag changes.
func TestFileErrors(t *testing.T) {
	cases := []struct {
		name, content string
		line          int
		key           string
		is            error
	}{
		{"unknown top-level key", "theme = \"dark\"\nthem = \"dark\"\n", 2, "them", ErrUnknownKey},
		{"unknown serve key", "[serve]\nssh = \"127.0.0.1:1\"\n\nssh_port = 22\n", 4, "serve.ssh_port", ErrUnknownKey},
		{"unknown table", "[server]\nssh = \"x\"\n", 2, "server.ssh", ErrUnknownKey},
		{"dotted unknown", "theme = \"dark\"\nserve.nope = 1\n", 2, "serve.nope", ErrUnknownKey},
		{"bad theme", "\n\ntheme = \"blue\"\n", 3, "theme", ErrBadValue},
		{"bad duration", "[serve]\nssh_login_grace = \"soon\"\n", 2, "serve.ssh_login_grace", ErrBadValue},
		{"duration without unit", "[serve]\nssh_login_grace = 30\n", 2, "serve.ssh_login_grace", ErrBadValue},
		{"int from string", "[serve]\nmax_ssh_sessions_per_conn = \"four\"\n", 2, "serve.max_ssh_sessions_per_conn", ErrBadValue},
		{"list for a single value", "[serve]\nssh = [\"a\", \"b\"]\n", 2, "serve.ssh", ErrBadValue},
		{"unknown column", "columns = [\"name\", \"colour\"]\n", 1, "columns", ErrBadValue},
		{"column twice", "columns = [\"name\", \"name\"]\n", 1, "columns", ErrBadValue},
		{"bad window", "chart_window = \"1y\"\n", 1, "chart_window", ErrBadValue},
		{"inline table key", "serve = { ssh = \"a\", bogus = 1 }\n", 1, "serve.bogus", ErrUnknownKey},
		{"syntax", "theme = \"dark\"\n[serve\n", 2, "", ErrSyntax},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFlags()
			path := writeFile(t, c.content)
			_, err := Apply(path, true, f.tables(), func(string) string { return "" })
			var e *Error
			if !errors.As(err, &e) || !errors.Is(err, c.is) {
				t.Fatalf("err = %v, want an *Error wrapping %v", err, c.is)
			}
			if e.File != path || e.Line != c.line || c.key != "" && e.Key != c.key {
				t.Errorf("%q names %s:%d key %q, want line %d key %q", err, e.File, e.Line, e.Key, c.line, c.key)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") || !strings.HasPrefix(msg, path+":"+strconv.Itoa(c.line)+":") || !strings.Contains(msg, c.key) {
				t.Errorf("error line %q", msg)
			}
			if f.ssh != "127.0.0.1:23234" || f.tui.Theme != "auto" || f.grace != 30*time.Second {
				t.Error("a flag changed although the file was refused")
			}
		})
	}
}

// A missing file is fine unless it was asked for (--config).
func TestMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	if _, err := Apply(path, false, newFlags().tables(), os.Getenv); err != nil {
		t.Errorf("absent default file: %v", err)
	}
	if _, err := Apply(path, true, newFlags().tables(), os.Getenv); err == nil {
		t.Error("an absent --config file was taken for empty")
	}
}

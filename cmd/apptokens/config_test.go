package main

import (
	"io"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// runWith runs the binary with a home of its own, extra environment and args.
func runWith(t *testing.T, home string, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(cleanEnv(home), env...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// `config show` prints each setting with where its value came from: the
// file in $XDG_CONFIG_HOME/apptokens with its line, the environment, a flag,
// or the default; --config reads another file.
func TestConfigShow(t *testing.T) {
	home := t.TempDir()
	dir := filepath.Join(home, "config", "apptokens")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "config.toml")
	content := "theme = \"none\"\ncolumns = [\"name\", \"state\"]\n\n[serve]\nssh_login_grace = \"10s\"\nmetrics = \"127.0.0.1:9100\"\n"
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runWith(t, home, []string{"APPTOKENS_DB=" + filepath.Join(home, "envdb")}, "config", "show")
	if code != 0 {
		t.Fatal(errOut)
	}
	for key, want := range map[string]string{
		"theme":                 `none\s+file ` + regexp.QuoteMeta(file) + `:1`,
		"columns":               `name,state\s+file ` + regexp.QuoteMeta(file) + `:2`,
		"serve.ssh_login_grace": `10s\s+file ` + regexp.QuoteMeta(file) + `:5`,
		"serve.metrics":         `127\.0\.0\.1:9100\s+file ` + regexp.QuoteMeta(file) + `:6`,
		"serve.ssh":             `127\.0\.0\.1:23234\s+default`,
		"chart_window":          `24h\s+default`,
		"db":                    regexp.QuoteMeta(filepath.Join(home, "envdb")) + `\s+env APPTOKENS_DB`,
	} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + `\s+` + want + `$`).MatchString(out) {
			t.Errorf("config show: no line %s %s in\n%s", key, want, out)
		}
	}
	// A flag wins over the environment.
	out, _, _ = runWith(t, home, []string{"APPTOKENS_DB=/env"}, "--db", filepath.Join(home, "flagdb"), "config", "show")
	if !regexp.MustCompile(`(?m)^db\s+` + regexp.QuoteMeta(filepath.Join(home, "flagdb")) + `\s+flag$`).MatchString(out) {
		t.Errorf("--db not shown as from the flag:\n%s", out)
	}

	// A bad file: one line naming file, line and key, for every command.
	bad := filepath.Join(home, "bad.toml")
	if err := os.WriteFile(bad, []byte("[serve]\nssh = \"127.0.0.1:1\"\nssh_login_grase = \"5s\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code = runWith(t, home, nil, "--config", bad, "list")
	if want := "apptokens: " + bad + ":3: serve.ssh_login_grase: unknown key\n"; code == 0 || errOut != want {
		t.Errorf("bad key: exit %d, stderr %q, want %q", code, errOut, want)
	}
}

// The theme of config.toml reaches the local TUI's renderer: none draws
// without colour, dark and light fix the background instead of asking.
func TestThemeRenderer(t *testing.T) {
	for _, c := range []struct {
		theme   string
		profile termenv.Profile
		dark    bool
	}{
		{"none", termenv.Ascii, false},
		{"dark", termenv.TrueColor, true},
		{"light", termenv.TrueColor, false},
	} {
		r := lipgloss.NewRenderer(io.Discard)
		r.SetColorProfile(termenv.TrueColor)
		r.SetHasDarkBackground(!c.dark)
		r = themed(r, c.theme)
		if r.ColorProfile() != c.profile || c.theme != "none" && r.HasDarkBackground() != c.dark {
			t.Errorf("theme %s: profile %v, dark %v", c.theme, r.ColorProfile(), r.HasDarkBackground())
		}
	}
}

package main

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestVersionFlag: the binary's --version names the build as the Go toolchain
// recorded it (go version -m): module version, revision and commit time when
// built from a checkout (issue 9, fault 12).
func TestVersionFlag(t *testing.T) {
	out, errOut, code := runBin(t, t.TempDir(), "--version")
	if code != 0 || errOut != "" || !strings.HasPrefix(out, "apptokens ") || strings.Count(out, "\n") != 1 {
		t.Fatalf("--version: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	info, err := exec.Command("go", "version", "-m", binPath).Output()
	if err != nil {
		t.Fatal(err)
	}
	setting := func(key string) string {
		m := regexp.MustCompile(`(?m)^\s+build\s+` + regexp.QuoteMeta(key) + `=(\S+)$`).FindSubmatch(info)
		if m == nil {
			return ""
		}
		return string(m[1])
	}
	mod := regexp.MustCompile(`(?m)^\s+mod\s+\S+\s+(\S+)`).FindSubmatch(info)
	if mod == nil || !strings.HasPrefix(out, "apptokens "+string(mod[1])+" ") {
		t.Errorf("--version %q does not start with the module version of:\n%s", out, info)
	}
	if rev := setting("vcs.revision"); rev != "" && !strings.Contains(out, "revision "+rev[:12]) {
		t.Errorf("--version %q lacks the revision %s", out, rev)
	}
	if at := setting("vcs.time"); at != "" && !strings.Contains(out, "committed "+at) {
		t.Errorf("--version %q lacks the commit time %s", out, at)
	}
	t.Logf("%s", out)
}

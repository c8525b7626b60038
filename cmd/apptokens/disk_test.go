package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mountTmpfs mounts a tmpfs of size bytes on a new directory and unmounts it
// (by its path) when the test ends. Where mounting is not allowed the test is
// skipped, unless APPTOKENS_REQUIRE_E2E=1 as root (CI), where it fails.
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		msg := fmt.Sprintf("cannot mount a tmpfs (%v: %s)", err, strings.TrimSpace(string(out)))
		if os.Getenv("APPTOKENS_REQUIRE_E2E") == "1" && os.Geteuid() == 0 {
			t.Fatal(msg)
		}
		t.Skip(msg + ": skipping the full-disk test (it runs as root, as in .ci/run)")
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fillDisk writes a file into dir until the filesystem has no space left.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for _, n := range []int{1 << 20, 4 << 10} {
		for {
			if _, err := f.Write(buf[:n]); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatal(err)
				}
				break
			}
		}
	}
	return path
}

// freeMiB is the free space on dir's filesystem, in MiB.
func freeMiB(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize >> 20
}

// newServerOn prepares serve (not started) on the database db, with one
// authorized admin key, as startServe does.
func newServerOn(t *testing.T, db string) *server {
	t.Helper()
	requireTool(t, "ssh")
	home := t.TempDir()
	s := &server{t: t, home: home, db: db,
		hostKey: filepath.Join(home, "host_key"), authKeys: filepath.Join(home, "authorized_keys")}
	s.admin = newClientKey(t, home, "admin_key")
	if err := os.WriteFile(s.authKeys, []byte(s.admin.public+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// health is /healthz's status and body.
func health(t *testing.T, addr string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// allowedFrom is the allowed count of 127.0.0.1 in the token's usage, read over SSH.
func allowedFrom(t *testing.T, s *server, name string) uint64 {
	t.Helper()
	out, errOut, code := s.ssh("usage", name, "--json")
	if code != 0 {
		t.Fatalf("usage %s: %s", name, errOut)
	}
	var rows []struct {
		IP      string `json:"ip"`
		Allowed uint64 `json:"allowed"`
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("usage --json: %v\n%s", err, out)
	}
	for _, r := range rows {
		if r.IP == "127.0.0.1" {
			return r.Allowed
		}
	}
	return 0
}

// noCrash fails when serve's output shows a fault or a Go crash.
func noCrash(t *testing.T, logs string) {
	t.Helper()
	for _, bad := range []string{"SIGBUS", "unexpected fault address", "fatal error", "panic:", "goroutine "} {
		if strings.Contains(logs, bad) {
			t.Fatalf("serve crashed (%q):\n%s", bad, logs)
		}
	}
}

// oneLineRefusal checks that an SSH command was refused with one line naming
// the full disk.
func oneLineRefusal(t *testing.T, what, db, errOut string, code int) {
	t.Helper()
	want := "no space left on " + db + " ("
	if code == 0 || !strings.Contains(errOut, want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Fatalf("%s on a full disk: exit %d, stderr %q; want one line with %q", what, code, errOut, want)
	}
}

// TestFullDisk (issue 8 fault 2): serve on a small tmpfs that fills up. Writes
// are refused with one line naming the cause, the gate answers from memory and
// keeps counting, /healthz says degraded, serve does not die; once space
// returns, usage is written and nothing saved is lost. A restart on the full
// disk is refused with a clear error; with room to replay its log but less than
// the guard's reserve it starts read-only with a warning.
func TestFullDisk(t *testing.T) {
	mnt := mountTmpfs(t, 192<<20)
	db := filepath.Join(mnt, "db")

	// Tokens made before serve, by local commands.
	tokens := map[string]string{}
	for _, name := range []string{"kept", "stopped", "fenced"} {
		out, errOut, code := runBin(t, db, "create", "--name", name, "--access", "security-director")
		if code != 0 {
			t.Fatalf("create %s: %s", name, errOut)
		}
		tokens[name] = strings.TrimSpace(out)
	}
	if _, errOut, code := runBin(t, db, "deactivate", "stopped"); code != 0 {
		t.Fatal(errOut)
	}
	if _, errOut, code := runBin(t, db, "block", "fenced", "127.0.0.1"); code != 0 {
		t.Fatal(errOut)
	}

	s := newServerOn(t, db)
	s.start()
	t.Cleanup(s.stop)
	verify := func(when string) {
		t.Helper()
		for name, want := range map[string]int{"kept": 200, "stopped": 401, "fenced": 403} {
			if r := gateGet(t, s.httpAddr, "/auth", tokens[name]); r.StatusCode != want {
				t.Fatalf("%s: /auth with %s: %d, want %d", when, name, r.StatusCode, want)
			}
		}
	}
	verify("before the disk filled")
	eventually(t, 10*time.Second, "the first use written", func() bool { return allowedFrom(t, s, "kept") == 1 })
	if code, body := health(t, s.httpAddr); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz with room: %d %q", code, body)
	}

	filler := fillDisk(t, mnt)
	// /healthz asks the filesystem at most every 250 ms.
	eventually(t, 5*time.Second, "/healthz degraded on the full disk", func() bool {
		code, body := health(t, s.httpAddr)
		return code == 503 && strings.HasPrefix(body, "degraded: no space left on "+db+" (0 MiB free")
	})
	// Values over Badger's value threshold: a few of them reach a page of the
	// value log that has no block behind it (before the guard: SIGBUS).
	long := strings.Repeat("é", 1000)
	for i := range 4 {
		_, errOut, code := s.ssh("create", "--name", fmt.Sprint("late-", i), "--description", long, "--access", "security-director")
		oneLineRefusal(t, "create", db, errOut, code)
	}
	_, errOut, code := s.ssh("deactivate", "kept")
	oneLineRefusal(t, "deactivate", db, errOut, code)
	for range 4 {
		verify("on the full disk")
	}
	// Flushes fail meanwhile (one a second): serve lives on and keeps the counts.
	eventually(t, 10*time.Second, "a refused usage flush in the log", func() bool {
		return strings.Contains(s.logs.String(), "usage kept in memory until space is freed")
	})
	time.Sleep(1500 * time.Millisecond) // one more refused flush, not logged again
	select {
	case <-s.done:
		t.Fatalf("serve died on the full disk:\n%s", s.logs.String())
	default:
	}
	noCrash(t, s.logs.String())
	if n := allowedFrom(t, s, "kept"); n != 1 {
		t.Fatalf("usage written on a full disk? allowed %d", n)
	}

	// Space returns: healthy again, the counts of the full-disk time written.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "/healthz ok after freeing space", func() bool {
		code, body := health(t, s.httpAddr)
		return code == 200 && body == "ok\n"
	})
	eventually(t, 10*time.Second, "usage of the full-disk time written", func() bool { return allowedFrom(t, s, "kept") == 5 })
	if logs := s.logs.String(); strings.Count(logs, "usage kept in memory") != 1 || !strings.Contains(logs, "gate: usage written again") {
		t.Fatalf("the full disk should be logged once, and its end:\n%s", logs)
	}
	if _, errOut, code := s.ssh("create", "--name", "late-0", "--description", long, "--access", "security-director"); code != 0 {
		t.Fatalf("create after freeing space: %s", errOut)
	}

	// Stopped on a full disk: no fault; the usage it could not write is said.
	fillDisk(t, mnt)
	verify("full again")
	s.stop()
	if ws, ok := s.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signaled() {
		t.Fatalf("serve stopped on a full disk by a signal: %v\n%s", s.cmd.ProcessState, s.logs.String())
	}
	noCrash(t, s.logs.String())

	// Started on the full disk: refused with one clear line, no fault.
	fillDisk(t, mnt) // what the stop gave back, too
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, "--db", db, "serve", "--ssh", "127.0.0.1:0", "--http", "127.0.0.1:0",
		"--host-key", s.hostKey, "--authorized-keys", s.authKeys)
	cmd.Env = cleanEnv(s.home)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("serve on a full disk: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`^apptokens: no space left on ` + regexp.QuoteMeta(db) + ` \(0 MiB free; opening needs (\d+) MiB\)\n$`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("serve on a full disk said %q", out)
	}

	// So is a local command.
	if _, errOut, code := runBin(t, db, "list"); code != 1 || !regexp.MustCompile(`^apptokens: no space left on `+regexp.QuoteMeta(db)+` \(0 MiB free; opening needs \d+ MiB\)\n$`).MatchString(errOut) {
		t.Fatalf("list on a full disk: exit %d, %q", code, errOut)
	}

	// Room to open, less than the reserve for changes: read-only, with a warning.
	var need int64
	fmt.Sscan(string(m[1]), &need)
	fi, err := os.Stat(filler)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filler, fi.Size()-(need+4)<<20); err != nil {
		t.Fatal(err)
	}
	t.Logf("opening needs %d MiB; %d MiB free", need, freeMiB(t, mnt))
	s.start()
	if !strings.Contains(s.logs.String(), "starting read-only: changes are refused until space is freed") {
		t.Fatalf("no read-only warning:\n%s", s.logs.String())
	}
	if code, body := health(t, s.httpAddr); code != 503 || !strings.HasPrefix(body, "degraded: no space left on "+db) {
		t.Fatalf("/healthz started read-only: %d %q", code, body)
	}
	verify("started read-only")
	_, errOut, code = s.ssh("activate", "stopped")
	oneLineRefusal(t, "activate", db, errOut, code)

	// Space returns: nothing saved was lost.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "/healthz ok after freeing space", func() bool {
		code, _ := health(t, s.httpAddr)
		return code == 200
	})
	eventually(t, 10*time.Second, "every use written", func() bool { return allowedFrom(t, s, "kept") >= 6 })
	out2, errOut, code := s.ssh("list", "--json")
	if code != 0 {
		t.Fatal(errOut)
	}
	var list []struct {
		Name  string `json:"name"`
		State string `json:"state"`
	}
	if err := json.Unmarshal([]byte(out2), &list); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, tok := range list {
		got[tok.Name] = tok.State
	}
	want := map[string]string{"kept": "active", "stopped": "inactive", "fenced": "active", "late-0": "active"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("tokens after the full disk: %v, want %v", got, want)
	}
	verify("after all")
	noCrash(t, s.logs.String())
}

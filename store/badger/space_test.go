package badger_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/badger"
	"github.com/apptokens/apptokens/store/storetest"
)

// mountTmpfs mounts a tmpfs of size bytes on a new directory, unmounted by its
// path when the test ends; skipped where mounting is not allowed, except as root
// with APPTOKENS_REQUIRE_E2E=1 (CI).
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	return mountTmpfsOpts(t, fmt.Sprintf("size=%d,mode=0700", size))
}

// mountTmpfsOpts is mountTmpfs with the mount's options (tmpfs(5)).
func mountTmpfsOpts(t *testing.T, opts string) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", opts, "tmpfs", dir).CombinedOutput()
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

// TestOwnWritesStopAtTheReserve: the store's own writes fill a small
// filesystem (usage rows through memtable flushes and compactions, big values
// through the value log) until the guard refuses them; Badger never runs out
// of space under a mapping (which would be SIGBUS, killing the test binary),
// everything written before the refusal is read back, also after a reopen.
func TestOwnWritesStopAtTheReserve(t *testing.T) {
	dir := mountTmpfs(t, 192<<20) + "/db"
	s, err := storetest.OpenWith(storetest.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = s.Close()
		}
	})
	tok, err := s.Create(admin, store.NewToken{Name: "busy", Access: []store.Access{store.AccessSecurityDirector}})
	if err != nil {
		t.Fatal(err)
	}
	// Leave the guard's reserve and 6 MiB: the writes below go through a
	// memtable flush into a table and a new memtable log.
	filler := dir + "/../filler"
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for _, err = f.Write(make([]byte, 1<<20)); err == nil; _, err = f.Write(make([]byte, 1<<20)) {
	}
	f.Close()
	var full *badger.NoSpaceError
	if _, err := s.Create(admin, store.NewToken{Name: "late", Access: tok.Token.Access}); !errors.As(err, &full) {
		t.Fatalf("create on a full disk: %v", err)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filler)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filler, fi.Size()-(full.Need+6<<20-int64(st.Bavail)*st.Bsize)); err != nil {
		t.Fatal(err)
	}

	now := time.Now().UTC()
	rows := 0
	var refused error
	for batch := 0; batch < 5000 && refused == nil; batch++ {
		deltas := make([]store.UsageDelta, 50)
		for i := range deltas {
			n := rows + i
			deltas[i] = store.UsageDelta{TokenID: tok.Token.ID, IP: fmt.Sprintf("10.%d.%d.%d", n>>16&255, n>>8&255, n&255),
				FirstUsedAt: now, LastUsedAt: now, Allowed: 1}
		}
		written, err := s.RecordUsage(deltas)
		rows += written
		if err != nil {
			refused = err
			break
		}
		// Records that stay in the memtable (under the value threshold) and
		// one that goes to the value log.
		for i, text := range []string{"e", "e", "e", "e", "é"} {
			d := fmt.Sprint(batch, i, strings.Repeat(text, 600))
			if _, err := s.Edit(admin, "busy", store.Edit{Description: &d, Access: tok.Token.Access}); err != nil {
				refused = err
				break
			}
		}
	}
	if !errors.Is(refused, store.ErrNoSpace) {
		t.Fatalf("after %d usage rows: %v, want ErrNoSpace", rows, refused)
	}
	t.Logf("%d usage rows written before the refusal: %v", rows, refused)
	if !strings.Contains(refused.Error(), "no space left on "+dir+" (") {
		t.Fatalf("refusal %q", refused)
	}
	if err := s.Writable(); !errors.Is(err, store.ErrNoSpace) {
		t.Fatalf("Writable on the full disk: %v", err)
	}
	if _, err := s.Create(admin, store.NewToken{Name: "late", Access: []store.Access{store.AccessSecurityDirector}}); !errors.Is(err, store.ErrNoSpace) {
		t.Fatalf("create on the full disk: %v", err)
	}
	check := func(s *store.Store, when string) {
		t.Helper()
		u, err := s.Usage("busy")
		if err != nil || len(u) != rows {
			t.Fatalf("%s: %d usage rows (%v), want %d", when, len(u), err, rows)
		}
	}
	check(s, "on the full disk")
	closed = true
	if err := s.Close(); err != nil && !errors.Is(err, store.ErrNoSpace) {
		t.Fatal(err)
	}
	s2, err := storetest.OpenWith(storetest.Options{Dir: dir})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s2.Close()
	check(s2, "reopened")
}

// TestNoFreeInodesIsAFullDisk: a filesystem out of files (inodes) with bytes to
// spare is full too: Badger cannot create the table a memtable flush needs,
// and it retries for ever (Close never returned, so serve never exited). The
// guard refuses changes, Close leaves the memtable to the next Open, a start
// with no file to spare is refused, and once files can be made again nothing
// saved is lost. The first run is a process of its own (noInodesRun), as
// serve is: a Close that leaves the memtable keeps Badger's lock until exit.
func TestNoFreeInodesIsAFullDisk(t *testing.T) {
	mnt := mountTmpfsOpts(t, "size=200m,nr_inodes=64,mode=0700")
	dir := mnt + "/db"
	cmd := exec.Command(os.Args[0], "-test.run=^TestNoFreeInodesRun$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "APPTOKENS_NO_INODES_DIR="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestNoFreeInodesRun") {
		t.Fatalf("the run on the filesystem without free inodes: %v\n%s", err, out)
	}
	if _, err := storetest.OpenWith(storetest.Options{Dir: dir}); !errors.Is(err, store.ErrNoSpace) {
		t.Fatalf("open with no free inodes: %v, want ErrNoSpace", err)
	}
	fillers, err := filepath.Glob(mnt + "/filler-*")
	if err != nil || len(fillers) == 0 {
		t.Fatalf("fillers: %v %v", fillers, err)
	}
	for _, name := range fillers {
		if err := os.Remove(name); err != nil {
			t.Fatal(err)
		}
	}
	s, err := storetest.OpenWith(storetest.Options{Dir: dir})
	if err != nil {
		t.Fatalf("reopen with files free: %v", err)
	}
	defer s.Close()
	if _, err := s.Get("kept"); err != nil {
		t.Fatalf("the token created before the disk ran out of inodes: %v", err)
	}
}

// TestNoFreeInodesRun is TestNoFreeInodesIsAFullDisk's first process: it
// creates a token in $APPTOKENS_NO_INODES_DIR, fills the filesystem's inodes
// and checks the refusals and Close.
func TestNoFreeInodesRun(t *testing.T) {
	dir := os.Getenv("APPTOKENS_NO_INODES_DIR")
	if dir == "" {
		t.Skip("only run by TestNoFreeInodesIsAFullDisk")
	}
	s, err := storetest.OpenWith(storetest.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	// Close returns, or the test fails (it hung for ever).
	closeWithin := func() error {
		done := make(chan error, 1)
		go func() { done <- s.Close() }()
		select {
		case err := <-done:
			return err
		case <-time.After(20 * time.Second):
			return errors.New("Close did not return within 20 s")
		}
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = closeWithin()
		}
	})
	if _, err := s.Create(admin, store.NewToken{Name: "kept", Access: []store.Access{store.AccessSecurityDirector}}); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		f, err := os.Create(fmt.Sprintf("%s/../filler-%d", dir, i))
		if err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
		f.Close()
	}
	_, err = s.Create(admin, store.NewToken{Name: "late", Access: []store.Access{store.AccessSecurityDirector}})
	if !errors.Is(err, store.ErrNoSpace) || !strings.Contains(err.Error(), "no space left on "+dir+" (0 free inodes") {
		t.Fatalf("create with no free inodes: %v, want ErrNoSpace saying the inodes", err)
	}
	if err := s.Writable(); !errors.Is(err, store.ErrNoSpace) {
		t.Fatalf("Writable with no free inodes: %v", err)
	}
	closed = true
	if err := closeWithin(); err != nil && !errors.Is(err, store.ErrNoSpace) {
		t.Fatalf("close with no free inodes: %v", err)
	}
}

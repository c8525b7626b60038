package badger_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/badger"
	"github.com/apptokens/apptokens/store/storetest"
)

// TestOpenLocked: a second Open of a directory in use fails at once with
// ErrLocked (flock is per open file description, so this works in one process).
func TestOpenLocked(t *testing.T) {
	s, dir := openDir(t)
	c := mustCreate(t, s, "held")

	openErr := func() error {
		done := make(chan error, 1)
		go func() {
			s2, err := storetest.OpenWith(storetest.Options{Dir: dir})
			if err == nil {
				_ = s2.Close()
			}
			done <- err
		}()
		select {
		case err := <-done:
			return err
		case <-time.After(5 * time.Second):
			t.Fatal("second Open hangs on a locked directory")
			return nil
		}
	}

	start := time.Now()
	err := openErr()
	if !errors.Is(err, store.ErrLocked) {
		t.Fatalf("second Open error = %v, want ErrLocked", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("second Open took %v to fail", d)
	}
	var le *badger.LockedError
	if !errors.As(err, &le) || le.Dir != dir {
		t.Fatalf("error %#v is not a LockedError for %s", err, dir)
	}
	if want := fmt.Sprintf("database %s is in use by another apptokens (PID %d)", dir, os.Getpid()); err.Error() != want {
		t.Errorf("message = %q, want %q", err, want)
	}

	// When serve announced its SSH address, the message names it (escaped).
	if err := s.Announce("127.0.0.1:23234\x1b[2J"); err != nil {
		t.Fatal(err)
	}
	err = openErr()
	if !errors.As(err, &le) || le.SSHAddr != `127.0.0.1:23234\x1b[2J` || le.Holder != badger.HolderServe {
		t.Fatalf("error %#v: SSH address not read or not escaped", err)
	}
	if want := fmt.Sprintf("(PID %d, SSH on 127.0.0.1:23234", os.Getpid()); !strings.Contains(err.Error(), want) {
		t.Errorf("message %q does not name serve's SSH address", err)
	}

	// Words in the lock file that its holder did not write (a crashed serve's,
	// before the new holder wrote its own) are not believed.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	stale := fmt.Sprintf(`{"pid":%d,"holder":"serve","ssh":"127.0.0.1:1"}`, dead.Process.Pid)
	if err := os.WriteFile(filepath.Join(dir, "apptokens.lock"), []byte(stale), 0o600); err != nil {
		t.Fatal(err)
	}
	err = openErr()
	if !errors.As(err, &le) || le.Holder != "" || le.SSHAddr != "" || le.PID != 0 {
		t.Fatalf("stale words believed: %#v", le)
	}
	if want := "database " + dir + " is in use by another process"; err.Error() != want {
		t.Errorf("message = %q, want %q", err, want)
	}

	// The holder is unaffected, and once it closes the directory opens again.
	if _, err := s.Get("held"); err != nil {
		t.Fatalf("holder broken by the refused Open: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := storetest.OpenWith(storetest.Options{Dir: dir})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	defer s2.Close()
	got, err := s2.Get("held")
	if err != nil || got.Digest != c.Secret.Digest() {
		t.Fatalf("token after reopen: %+v, %v", got, err)
	}
}

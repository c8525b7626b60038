package store_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apptokens/apptokens/store"
	sbadger "github.com/apptokens/apptokens/store/badger"
	"github.com/apptokens/apptokens/store/storetest"
)

// TestCreateSameNameConcurrently: many admins create the same name (in mixed
// case) at the same moment; the unique-name check inside the transaction lets
// exactly one through.
func TestCreateSameNameConcurrently(t *testing.T) {
	s, _ := openDir(t)
	const workers = 32
	for round, base := range []string{"race-token", "Shared-Feed", "x"} {
		start := make(chan struct{})
		errs := make([]error, workers)
		created := make([]store.Created, workers)
		var wg sync.WaitGroup
		for i := range workers {
			name := base
			switch i % 3 {
			case 1:
				name = strings.ToUpper(base)
			case 2:
				name = strings.ToLower(base)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				created[i], errs[i] = s.Create(store.Actor{User: fmt.Sprintf("admin%d", i)},
					store.NewToken{Name: name, Access: []store.Access{store.AccessThirdPartyFeeds}})
			}()
		}
		close(start)
		wg.Wait()

		winners := 0
		var winner store.Created
		for i, err := range errs {
			switch {
			case err == nil:
				winners++
				winner = created[i]
			case errors.Is(err, store.ErrNameTaken):
				var fe *store.FieldError
				if !errors.As(err, &fe) || fe.Field != "name" {
					t.Errorf("worker %d: %v is not a name FieldError", i, err)
				}
				if !strings.Contains(err.Error(), "is already taken") {
					t.Errorf("worker %d: message %q", i, err)
				}
			default:
				t.Errorf("worker %d: unexpected error %v", i, err)
			}
		}
		if winners != 1 {
			t.Fatalf("round %d: %d creates of %q succeeded, want exactly 1", round, winners, base)
		}
		toks, err := s.List()
		if err != nil {
			t.Fatal(err)
		}
		if len(toks) != round+1 {
			t.Fatalf("round %d: %d tokens stored", round, len(toks))
		}
		got, err := s.Get(base)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != winner.Token.ID || got.Digest != winner.Secret.Digest() {
			t.Fatalf("stored token is not the winner's")
		}
		events, err := s.Audit(0)
		if err != nil {
			t.Fatal(err)
		}
		if len(events) != round+1 {
			t.Fatalf("round %d: %d audit events, want %d", round, len(events), round+1)
		}
	}
}

// TestConcurrentDistinctCreates: concurrent creates of different names all land.
func TestConcurrentDistinctCreates(t *testing.T) {
	storetest.Each(t, func(t *testing.T, eng storetest.Engine) {
		s := openOn(t, eng, nil)
		const workers = 16
		var wg sync.WaitGroup
		errs := make([]error, workers)
		for i := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = s.Create(admin, store.NewToken{Name: fmt.Sprintf("tok-%02d", i), Access: []store.Access{store.AccessSecurityDirector}})
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("create %d: %v", i, err)
			}
		}
		toks, err := s.List()
		if err != nil {
			t.Fatal(err)
		}
		if len(toks) != workers {
			t.Fatalf("%d tokens, want %d", len(toks), workers)
		}
		for i, tok := range toks {
			if want := fmt.Sprintf("tok-%02d", i); tok.Name != want {
				t.Errorf("List()[%d] = %q, want %q (sorted by name)", i, tok.Name, want)
			}
		}
	})
}

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
	var le *sbadger.LockedError
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
	if !errors.As(err, &le) || le.SSHAddr != `127.0.0.1:23234\x1b[2J` || le.Holder != sbadger.HolderServe {
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

package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/apptokens/apptokens/internal/secret"
)

// ErrInvalidBackup is matched (errors.Is) by a restore refused because the
// backup breaks a data rule or is not a backup at all.
var ErrInvalidBackup = errors.New("invalid backup")

// roomChecker is an engine that can tell ahead whether a step writing extra
// bytes more than a change fits (the Badger engine's space guard).
type roomChecker interface {
	RoomFor(extra int64, what string) error
}

// Backup writes a backup of everything (policy, tokens, blocks, usage, usage
// history, audit trail) to w in the engine-independent format (backupfile.go),
// from one snapshot of the engine.
func (s *Store) Backup(w io.Writer) error {
	var b *BackupFile
	if err := s.view(func(txn Reader) error {
		var err error
		b, err = backupOf(txn)
		return err
	}); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	_, err := b.WriteTo(w)
	return err
}

// Restore reads a backup (this format, or the previous release's when the
// store was given Options.LegacyBackup) and writes it. It refuses a store
// that already holds tokens unless replace is set, in which case the backup
// replaces everything.
//
// A backup is a file from outside: it is read whole and every record checked
// against the data rules (ReadBackup) before the store is touched. A refused
// backup (a *BackupError, errors.Is ErrInvalidBackup) leaves the store exactly
// as it was; the error says where and why in one line.
//
// With replace, the restore is atomic: the backup's records (and the
// restore's audit event) are written through the engine's Replace, and a
// failure at any point leaves the old data whole and in use. Without it, the
// backup is added to the empty store (which keeps its own audit trail) through
// the engine's Load, in batches: a failure part way leaves what was written,
// and a second restore then needs --replace. Other writers of this process
// wait while the records are written; readers go on.
func (s *Store) Restore(actor Actor, r io.Reader, replace bool) error {
	// Refuse early, before reading the backup, when the store is not empty.
	if err := s.restoreAllowed(replace); err != nil {
		return err
	}
	// Reading the backup (over SSH: the session's stdin, which may stall) and
	// checking it happen without holding writers back.
	backup := &countingReader{r: r}
	b, err := ReadBackup(backup, s.legacy)
	if err != nil {
		return err
	}
	// From here to the end, no write of this process may slip in.
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := s.restoreAllowed(replace); err != nil {
		return err
	}
	if err := s.Writable(); err != nil {
		return fmt.Errorf("restore: %w (the database is as it was)", err)
	}
	// A replace writes the new data beside the old: room for twice the
	// backup's bytes, or no start.
	if rc, ok := s.eng.(roomChecker); ok && replace {
		if err := rc.RoomFor(2*backup.n, "a restore"); err != nil {
			return fmt.Errorf("restore: %w (the database is as it was)", err)
		}
	}
	write := func(w Writer) error {
		written := 0
		hw := &hookWriter{w: w, written: &written, hook: s.restoreHook}
		if err := b.writeKeys(hw); err != nil {
			return err
		}
		// The restore's own event comes after every event it restored, also
		// those of the same nanosecond.
		now := s.now().UTC()
		return setJSON(w, restoredEventKey(now, len(b.events)), Event{Time: now, Actor: actor.String(), Action: ActionRestore})
	}
	if replace {
		if err := s.eng.Replace(write); err != nil {
			return fmt.Errorf("restore: %w (the database is as it was)", err)
		}
	} else if err := s.eng.Load(write); err != nil {
		return fmt.Errorf("restore: %w (what was written stays; restore again with --replace)", err)
	}
	s.setPolicy(b.inactiveAfter, b.deleteAfter)
	s.prunedHour.Store(0) // the backup's history may be older: the next sweep prunes it
	switch {
	case s.shared == nil:
		s.feed.publish(Change{Kind: ChangeReload})
		return nil
	case replace:
		return nil // a shared engine's Replace resets every process's watch: all reload
	default:
		return s.announce(Change{Kind: ChangePolicy, InactiveAfter: b.inactiveAfter, DeleteAfter: b.deleteAfter}, Change{Kind: ChangeReload})
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// hookWriter counts the records written through it, calling hook (tests)
// before each.
type hookWriter struct {
	w       Writer
	written *int
	hook    func(int) error
}

func (h *hookWriter) Set(key, value []byte) error {
	if h.hook != nil {
		if err := h.hook(*h.written); err != nil {
			return err
		}
	}
	*h.written++
	return h.w.Set(key, value)
}

func (h *hookWriter) Delete(key []byte) error { return h.w.Delete(key) }

// restoreAllowed refuses a restore over tokens unless replace is set. It counts
// keys only: no token is decoded.
func (s *Store) restoreAllowed(replace bool) error {
	if replace {
		return nil
	}
	n := 0
	err := s.view(func(txn Reader) error {
		it := txn.Scan([]byte(pfxToken), ScanOptions{KeysOnly: true})
		defer it.Close()
		for it.Next() {
			n++
		}
		return it.Err()
	})
	if err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("database already holds %d tokens; restore needs an empty database (or --replace): %w", n, ErrNotEmpty)
	}
	return nil
}

// strictJSON decodes one JSON value with no unknown fields and nothing after it.
func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}

// validID reports whether id can be a token ID: 1 to 64 letters, digits, dashes
// or underscores (Create makes 16 hex digits; it must never hold the '/' that
// separates parts of a key).
func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// validHint reports whether h has the form of secret.HintOf: the prefix, an
// ellipsis and at most the last 4 (base62) characters.
func validHint(h string) bool {
	rest, ok := strings.CutPrefix(h, secret.Prefix+"…")
	if !ok || len(rest) > 4 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

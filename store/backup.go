package store

import (
	"fmt"
	"io"

	badger "github.com/dgraph-io/badger/v4"
)

// Backup writes a full backup (tokens, usage, audit, policy) to w.
func (s *Store) Backup(w io.Writer) error {
	if _, err := s.db.Backup(w, 0); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

// Restore loads a backup made by Backup. It refuses a database that already holds
// tokens unless replace is set, in which case everything is dropped first.
func (s *Store) Restore(actor Actor, r io.Reader, replace bool) error {
	toks, err := s.List()
	if err != nil {
		return err
	}
	if len(toks) > 0 && !replace {
		return fmt.Errorf("database already holds %d tokens; restore needs an empty database (or --replace): %w", len(toks), ErrNotEmpty)
	}
	if len(toks) > 0 || replace {
		if err := s.db.DropAll(); err != nil {
			return fmt.Errorf("restore: clear database: %w", err)
		}
	}
	if err := s.db.Load(r, 256); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := s.db.Sync(); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := s.loadPolicy(); err != nil {
		return err
	}
	now := s.now().UTC()
	if err := s.update(func(txn *badger.Txn) error {
		return s.addEvent(txn, now, actor, ActionRestore, "", "")
	}); err != nil {
		return err
	}
	s.feed.publish(Change{Kind: ChangeReload})
	return nil
}

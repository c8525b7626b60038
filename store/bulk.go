package store

import (
	"errors"
	"fmt"
	"strings"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/apptokens/apptokens/internal/secret"
)

// SeedToken is one token of a bulk load, with its usage rows.
type SeedToken struct {
	Token  Token
	Secret secret.Token
	Usage  []Usage
}

// BulkLoad writes many tokens at once through a write batch (seed data for demos
// and benchmarks). Every token is validated first and no name may already exist
// or repeat; then the batch is written and synced. One audit event records it.
func (s *Store) BulkLoad(actor Actor, toks []SeedToken) error {
	seen := make(map[string]bool, len(toks))
	for i := range toks {
		t := &toks[i].Token
		if err := ValidateName(t.Name); err != nil {
			return err
		}
		if err := ValidateDescription(t.Description); err != nil {
			return err
		}
		if err := ValidateAccess(t.Access); err != nil {
			return err
		}
		low := strings.ToLower(t.Name)
		if seen[low] {
			return fieldErr("name", ErrNameTaken, "name %s given twice", quote(t.Name))
		}
		seen[low] = true
		t.Access = normalizeAccess(t.Access)
		if t.ID == "" {
			t.ID = newID()
		}
		t.Digest = toks[i].Secret.Digest()
		t.Hint = toks[i].Secret.Hint()
	}
	err := s.db.View(func(txn *badger.Txn) error {
		for i := range toks {
			if _, err := txn.Get(nameKey(toks[i].Token.Name)); err == nil {
				return fieldErr("name", ErrNameTaken, "name %s is already taken", quote(toks[i].Token.Name))
			} else if !errors.Is(err, badger.ErrKeyNotFound) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for i := range toks {
		t := toks[i].Token
		if err := wb.Set(nameKey(t.Name), []byte(t.ID)); err != nil {
			return err
		}
		if err := wb.Set(digestKey(t.Digest), []byte(t.ID)); err != nil {
			return err
		}
		if err := wb.Set(tokenKey(t.ID), encodeToken(&t)); err != nil {
			return err
		}
		for _, u := range toks[i].Usage {
			u.TokenID = t.ID
			ip, err := ParseIP(u.IP)
			if err != nil {
				return err
			}
			u.IP = ip
			if err := setBatchJSON(wb, usageKey(t.ID, ip), u); err != nil {
				return err
			}
		}
	}
	now := s.now().UTC()
	ev := Event{Time: now, Actor: actor.String(), Action: "seed", Details: fmt.Sprintf("%d tokens", len(toks))}
	if err := setBatchJSON(wb, s.eventKey(now), ev); err != nil {
		return err
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	if err := s.db.Sync(); err != nil {
		return err
	}
	s.feed.publish(Change{Kind: ChangeReload})
	return nil
}

func setBatchJSON(wb *badger.WriteBatch, key []byte, v any) error {
	b, err := jsonMarshal(v)
	if err != nil {
		return err
	}
	return wb.Set(key, b)
}

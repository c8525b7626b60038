package store

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/apptokens/apptokens/internal/secret"
)

func nameKey(name string) []byte { return []byte(pfxName + strings.ToLower(name)) }
func tokenKey(id string) []byte  { return []byte(pfxToken + id) }
func digestKey(d secret.Digest) []byte {
	return append([]byte(pfxDigest), d[:]...)
}

func notFound(name string) error {
	return fmt.Errorf("no token named %s: %w", quote(name), ErrNotFound)
}

// Create validates in, generates a secret and stores the token (only the secret's
// digest) in one transaction. The name must not be taken, case-insensitively.
func (s *Store) Create(actor Actor, in NewToken) (Created, error) {
	if err := validateFields(in.Name, in.Description, in.Access); err != nil {
		return Created{}, err
	}
	sec, err := secret.Generate()
	if err != nil {
		return Created{}, err
	}
	now := s.now().UTC()
	tok := Token{
		ID:          newID(),
		Name:        in.Name,
		Description: in.Description,
		Access:      normalizeAccess(in.Access),
		Active:      true,
		Digest:      sec.Digest(),
		Hint:        sec.Hint(),
		CreatedAt:   now,
		UpdatedAt:   now,
	}
	err = s.update(func(txn *badger.Txn) error {
		if _, err := txn.Get(nameKey(tok.Name)); err == nil {
			return fieldErr("name", ErrNameTaken, "name %s is already taken", quote(tok.Name))
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		if err := txn.Set(nameKey(tok.Name), []byte(tok.ID)); err != nil {
			return err
		}
		if err := txn.Set(digestKey(tok.Digest), []byte(tok.ID)); err != nil {
			return err
		}
		if err := putToken(txn, &tok); err != nil {
			return err
		}
		return s.addEvent(txn, now, actor, ActionCreate, tok.Name, "access="+tok.AccessNames())
	})
	if err != nil {
		return Created{}, err
	}
	s.feed.publish(tokenChange(ChangeToken, tok))
	return Created{Token: tok, Secret: sec}, nil
}

// List returns all tokens ordered by name (case-insensitively).
func (s *Store) List() ([]Token, error) {
	var out []Token
	err := s.view(func(txn *badger.Txn) error {
		var err error
		out, err = listTokens(txn)
		return err
	})
	if err != nil {
		return nil, err
	}
	sortByName(out)
	return out, nil
}

func listTokens(txn *badger.Txn) ([]Token, error) {
	var out []Token
	err := eachTokenByID(txn, func(t Token) error {
		out = append(out, t)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// eachTokenByID calls fn with every token in ID order, its last use merged
// in, one at a time.
func eachTokenByID(txn *badger.Txn, fn func(Token) error) error {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = []byte(pfxToken)
	opts.PrefetchSize = 256
	it := txn.NewIterator(opts)
	defer it.Close()
	// The last-used keys are in the same (ID) order: walk them alongside.
	lopts := badger.DefaultIteratorOptions
	lopts.Prefix = []byte(pfxLastUsed)
	lit := txn.NewIterator(lopts)
	defer lit.Close()
	lit.Rewind()
	for it.Rewind(); it.Valid(); it.Next() {
		var t Token
		if err := it.Item().Value(func(b []byte) error { return decodeToken(b, &t) }); err != nil {
			return err
		}
		id := it.Item().Key()[len(pfxToken):]
		for lit.Valid() && bytes.Compare(lit.Item().Key()[len(pfxLastUsed):], id) < 0 {
			lit.Next()
		}
		if lit.Valid() && bytes.Equal(lit.Item().Key()[len(pfxLastUsed):], id) {
			if err := lit.Item().Value(func(b []byte) error { return mergeLastUsed(&t, b) }); err != nil {
				return err
			}
		}
		if err := fn(t); err != nil {
			return err
		}
	}
	return nil
}

// Get returns the token with this name (case-insensitively).
func (s *Store) Get(name string) (Token, error) {
	var t Token
	err := s.view(func(txn *badger.Txn) error {
		var err error
		t, err = getByName(txn, name)
		return err
	})
	return t, err
}

// GetByID returns the token with this ID.
func (s *Store) GetByID(id string) (Token, error) {
	var t Token
	err := s.view(func(txn *badger.Txn) error {
		err := getToken(txn, id, &t)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("no token with id %s: %w", quote(id), ErrNotFound)
		}
		return err
	})
	return t, err
}

func getByName(txn *badger.Txn, name string) (Token, error) {
	var t Token
	item, err := txn.Get(nameKey(name))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return t, notFound(name)
	}
	if err != nil {
		return t, err
	}
	id, err := item.ValueCopy(nil)
	if err != nil {
		return t, err
	}
	if err := getToken(txn, string(id), &t); err != nil {
		if errors.Is(err, badger.ErrKeyNotFound) {
			return t, notFound(name)
		}
		return t, err
	}
	return t, nil
}

// Edit changes a token's description and/or access.
func (s *Store) Edit(actor Actor, name string, e Edit) (Token, error) {
	if e.Description != nil {
		if err := ValidateDescription(*e.Description); err != nil {
			return Token{}, err
		}
	}
	if e.Access != nil {
		if err := ValidateAccess(e.Access); err != nil {
			return Token{}, err
		}
	}
	var tok Token
	var changed bool
	now := s.now().UTC()
	err := s.update(func(txn *badger.Txn) error {
		t, err := getByName(txn, name)
		if err != nil {
			return err
		}
		var details []string
		if e.Description != nil && *e.Description != t.Description {
			t.Description = *e.Description
			details = append(details, "description")
		}
		if e.Access != nil {
			acc := normalizeAccess(e.Access)
			if !equalAccess(acc, t.Access) {
				t.Access = acc
				details = append(details, "access="+t.AccessNames())
			}
		}
		changed = len(details) > 0
		if changed {
			t.UpdatedAt = now
		}
		tok = t
		if !changed {
			return nil
		}
		if err := putToken(txn, &t); err != nil {
			return err
		}
		return s.addEvent(txn, now, actor, ActionEdit, t.Name, strings.Join(details, " "))
	})
	if err != nil {
		return Token{}, err
	}
	if changed {
		s.feed.publish(tokenChange(ChangeToken, tok))
	}
	return tok, nil
}

// checkNames refuses an empty or oversized batch of names before anything is
// read, and returns the names with repeats dropped: names are one token however
// they are spelled (case is ignored), so `delete a A` deletes a once.
func checkNames(names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, errors.New("no token names given")
	}
	if len(names) > MaxBatch {
		return nil, tooMany("tokens", len(names))
	}
	seen := make(map[string]bool, len(names))
	out := make([]string, 0, len(names))
	for _, n := range names {
		low := strings.ToLower(n)
		if !seen[low] {
			seen[low] = true
			out = append(out, n)
		}
	}
	return out, nil
}

func equalAccess(a, b []Access) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// SetActive activates or deactivates the named tokens in one transaction. Every
// name must exist, or nothing changes. It returns how many tokens changed state.
// More than MaxBatch names are refused (ErrTooMany) before anything is read.
func (s *Store) SetActive(actor Actor, names []string, active bool) (int, error) {
	names, err := checkNames(names)
	if err != nil {
		return 0, err
	}
	action := ActionDeactivate
	if active {
		action = ActionActivate
	}
	now := s.now().UTC()
	after := s.InactiveAfter()
	var changed []Change
	err = s.update(func(txn *badger.Txn) error {
		changed = changed[:0]
		for _, name := range names {
			t, err := getByName(txn, name)
			if err != nil {
				return err
			}
			was := t.StateAt(now, after)
			if active {
				if was == StateActive {
					continue
				}
				t.Active, t.ActivatedAt = true, now
			} else {
				if !t.Active {
					continue
				}
				t.Active = false
			}
			t.UpdatedAt = now
			if err := putToken(txn, &t); err != nil {
				return err
			}
			if err := s.addEvent(txn, now, actor, action, t.Name, ""); err != nil {
				return err
			}
			changed = append(changed, tokenChange(ChangeToken, t))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	s.feed.publish(changed...)
	return len(changed), nil
}

// tokenChange is the change of kind k that carries t, the token as committed
// (as it was, for ChangeDeleted).
func tokenChange(k ChangeKind, t Token) Change {
	return Change{Kind: k, TokenID: t.ID, Name: t.Name, Token: &t}
}

// Delete removes the named tokens and their indexes in one transaction: every
// name must exist, or nothing changes. More than MaxBatch names are refused
// (ErrTooMany) before anything is read.
//
// Their usage and block records go after that commit, in bounded transactions: a token
// used from many addresses has more of them than one transaction can hold, and
// nothing reaches them once the token is gone (IDs are random, never reused;
// RecordUsage drops deltas of missing tokens). Should clearing them fail, the
// tokens stay deleted and the error says so.
func (s *Store) Delete(actor Actor, names []string) (int, error) {
	names, err := checkNames(names)
	if err != nil {
		return 0, err
	}
	now := s.now().UTC()
	var changed []Change
	err = s.update(func(txn *badger.Txn) error {
		changed = changed[:0]
		for _, name := range names {
			t, err := getByName(txn, name)
			if err != nil {
				return err
			}
			for _, k := range [][]byte{nameKey(t.Name), digestKey(t.Digest), tokenKey(t.ID), lastUsedKey(t.ID)} {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
			if err := s.addEvent(txn, now, actor, ActionDelete, t.Name, ""); err != nil {
				return err
			}
			changed = append(changed, tokenChange(ChangeDeleted, t))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	s.feed.publish(changed...)
	for _, c := range changed {
		for _, p := range [...][]byte{blockPrefix(c.TokenID), usagePrefix(c.TokenID), hourTokenPrefix(c.TokenID), hourIPTokenPrefix(c.TokenID)} {
			if err := s.deletePrefix(p); err != nil {
				return len(changed), fmt.Errorf("token %s deleted, but clearing its usage records failed: %w", quote(c.Name), err)
			}
		}
	}
	return len(changed), nil
}

// deletePrefix deletes every key with the prefix, writeChunk keys per transaction.
func (s *Store) deletePrefix(prefix []byte) error {
	for {
		var n int
		err := s.update(func(txn *badger.Txn) error {
			opts := badger.DefaultIteratorOptions
			opts.Prefix = prefix
			opts.PrefetchValues = false
			it := txn.NewIterator(opts)
			var keys [][]byte
			for it.Rewind(); it.Valid() && len(keys) < writeChunk; it.Next() {
				keys = append(keys, it.Item().KeyCopy(nil))
			}
			it.Close()
			for _, k := range keys {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
			n = len(keys)
			return nil
		})
		if err != nil || n < writeChunk {
			return err
		}
	}
}

// ExpireStale deactivates every active token that the inactivity policy has made
// Inactive, recording an audit event for each. It returns the names deactivated.
//
// The tokens are written writeChunk per transaction, each chunk published after
// its commit, since a long-idle fleet can hold more than one transaction can. When
// a chunk fails, the earlier ones stay committed: the names returned with the
// error are those deactivated, and the next sweep picks up the rest.
func (s *Store) ExpireStale(actor Actor) ([]string, error) {
	after := s.InactiveAfter()
	if after <= 0 {
		return nil, nil
	}
	now := s.now().UTC()
	var ids []string
	err := s.view(func(txn *badger.Txn) error {
		// One token at a time: the sweep runs every few minutes in serve, and
		// a list of every token would be that much memory each time.
		return eachTokenByID(txn, func(t Token) error {
			if t.Expired(now, after) {
				ids = append(ids, t.ID)
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	details := fmt.Sprintf("unused for %s", formatDays(after))
	var names []string
	for len(ids) > 0 {
		chunk := ids[:min(writeChunk, len(ids))]
		ids = ids[len(chunk):]
		var changed []Change
		err := s.update(func(txn *badger.Txn) error {
			changed = changed[:0]
			for _, id := range chunk {
				// Read again inside the transaction: an admin may have activated
				// or deleted the token since the scan.
				var t Token
				if err := getToken(txn, id, &t); errors.Is(err, badger.ErrKeyNotFound) {
					continue
				} else if err != nil {
					return err
				}
				if !t.Expired(now, after) {
					continue
				}
				t.Active = false
				t.UpdatedAt = now
				if err := putToken(txn, &t); err != nil {
					return err
				}
				if err := s.addEvent(txn, now, actor, ActionExpire, t.Name, details); err != nil {
					return err
				}
				changed = append(changed, tokenChange(ChangeToken, t))
			}
			return nil
		})
		if err != nil {
			return names, fmt.Errorf("inactivity sweep: %w", err)
		}
		s.feed.publish(changed...)
		for _, c := range changed {
			names = append(names, c.Name)
		}
	}
	return names, nil
}

func formatDays(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return d.String()
}

// sortByName orders tokens by name, case-insensitively (names are ASCII).
func sortByName(toks []Token) {
	keys := make([]string, len(toks))
	idx := make([]int, len(toks))
	for i := range toks {
		keys[i] = strings.ToLower(toks[i].Name)
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return keys[idx[a]] < keys[idx[b]] })
	sorted := make([]Token, len(toks))
	for i, j := range idx {
		sorted[i] = toks[j]
	}
	copy(toks, sorted)
}

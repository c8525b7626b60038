package store

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

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
	now := s.now().UTC()
	if err := checkExpires(in.ExpiresAt, now); err != nil {
		return Created{}, err
	}
	sec, err := secret.Generate()
	if err != nil {
		return Created{}, err
	}
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
	details := "access=" + tok.AccessNames()
	if !in.ExpiresAt.IsZero() {
		tok.ExpiresAt = in.ExpiresAt.UTC()
		details += " expires=" + tok.ExpiresAt.Format(time.RFC3339)
	}
	err = s.commit(func(txn Txn) ([]Change, error) {
		if _, err := txn.Get(nameKey(tok.Name)); err == nil {
			return nil, fieldErr("name", ErrNameTaken, "name %s is already taken", quote(tok.Name))
		} else if !errors.Is(err, ErrNoKey) {
			return nil, err
		}
		if err := txn.Set(nameKey(tok.Name), []byte(tok.ID)); err != nil {
			return nil, err
		}
		if err := txn.Set(digestKey(tok.Digest), []byte(tok.ID)); err != nil {
			return nil, err
		}
		if err := putToken(txn, &tok); err != nil {
			return nil, err
		}
		err := s.addEvent(txn, now, actor, ActionCreate, tok.Name, details)
		return []Change{tokenChange(ChangeToken, tok)}, err
	})
	if err != nil {
		return Created{}, err
	}
	return Created{Token: tok, Secret: sec}, nil
}

// List returns all tokens ordered by name (case-insensitively).
func (s *Store) List() ([]Token, error) {
	var out []Token
	err := s.view(func(txn Reader) error {
		var err error
		out, err = s.listTokens(txn)
		return err
	})
	if err != nil {
		return nil, err
	}
	sortByName(out)
	return out, nil
}

func (s *Store) listTokens(txn Reader) ([]Token, error) {
	var out []Token
	err := s.eachTokenByID(txn, func(t Token) error {
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
func (s *Store) eachTokenByID(txn Reader, fn func(Token) error) error {
	it := txn.Scan([]byte(pfxToken), ScanOptions{})
	defer it.Close()
	aw := newAllowedWalk(txn)
	defer aw.close()
	if s.shared != nil {
		// Every node's last-use keys, read in one scan first (a walk
		// alongside would need them in token order, which they are not: a
		// node's name follows the ID), rather than a read per token.
		last, err := allLastUse(txn)
		if err != nil {
			return err
		}
		for it.Next() {
			var t Token
			if err := decodeToken(it.Value(), &t); err != nil {
				return err
			}
			if at := last[string(it.Key()[len(pfxToken):])]; at.After(t.LastUsedAt) {
				t.LastUsedAt = at
			}
			aw.fill(&t)
			if err := fn(t); err != nil {
				return err
			}
		}
		if err := aw.close(); err != nil {
			return err
		}
		return it.Err()
	}
	// The last-used keys are in the same (ID) order: walk them alongside.
	lit := txn.Scan([]byte(pfxLastUsed), ScanOptions{})
	defer lit.Close()
	lok := lit.Next()
	for it.Next() {
		var t Token
		if err := decodeToken(it.Value(), &t); err != nil {
			return err
		}
		id := it.Key()[len(pfxToken):]
		for lok && bytes.Compare(lit.Key()[len(pfxLastUsed):], id) < 0 {
			lok = lit.Next()
		}
		if lok && bytes.Equal(lit.Key()[len(pfxLastUsed):], id) {
			if err := mergeLastUsed(&t, lit.Value()); err != nil {
				return err
			}
		}
		aw.fill(&t)
		if err := fn(t); err != nil {
			return err
		}
	}
	if err := lit.Err(); err != nil {
		return err
	}
	if err := aw.close(); err != nil {
		return err
	}
	return it.Err()
}

// allLastUse is every token's last use, the latest of every node's key.
func allLastUse(txn Reader) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	it := txn.Scan([]byte(pfxLastUsed), ScanOptions{})
	defer it.Close()
	for it.Next() {
		id, _, _ := strings.Cut(string(it.Key()[len(pfxLastUsed):]), "/")
		at, err := decodeLastUsed(it.Value())
		if err != nil {
			return nil, err
		}
		if at.After(out[id]) {
			out[id] = at
		}
	}
	return out, it.Err()
}

// Get returns the token with this name (case-insensitively).
func (s *Store) Get(name string) (Token, error) {
	var t Token
	err := s.view(func(txn Reader) error {
		var err error
		t, err = s.getByName(txn, name)
		return err
	})
	return t, err
}

// GetByID returns the token with this ID.
func (s *Store) GetByID(id string) (Token, error) {
	var t Token
	err := s.view(func(txn Reader) error {
		err := s.getToken(txn, id, &t)
		if errors.Is(err, ErrNoKey) {
			return fmt.Errorf("no token with id %s: %w", quote(id), ErrNotFound)
		}
		return err
	})
	return t, err
}

func (s *Store) getByName(txn Reader, name string) (Token, error) {
	var t Token
	id, err := txn.Get(nameKey(name))
	if errors.Is(err, ErrNoKey) {
		return t, notFound(name)
	}
	if err != nil {
		return t, err
	}
	if err := s.getToken(txn, string(id), &t); err != nil {
		if errors.Is(err, ErrNoKey) {
			return t, notFound(name)
		}
		return t, err
	}
	return t, nil
}

// Edit changes a token's description and/or access.
func (s *Store) Edit(actor Actor, name string, e Edit) (Token, error) {
	return s.edit(actor, byName(name), e)
}

func (s *Store) edit(actor Actor, ref tokenRef, e Edit) (Token, error) {
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
	now := s.now().UTC()
	if e.ExpiresAt != nil {
		if err := checkExpires(*e.ExpiresAt, now); err != nil {
			return Token{}, err
		}
	}
	err := s.commit(func(txn Txn) ([]Change, error) {
		t, err := s.getRef(txn, ref)
		if err != nil {
			return nil, err
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
		if e.ExpiresAt != nil && !e.ExpiresAt.Equal(t.ExpiresAt) {
			t.ExpiresAt = e.ExpiresAt.UTC()
			if t.ExpiresAt.IsZero() {
				t.ExpiresAt = time.Time{}
				details = append(details, "expires=never")
			} else {
				details = append(details, "expires="+t.ExpiresAt.Format(time.RFC3339))
			}
		}
		tok = t
		if len(details) == 0 {
			return nil, nil
		}
		t.UpdatedAt = now
		tok = t
		if err := putToken(txn, &t); err != nil {
			return nil, err
		}
		err = s.addEvent(txn, now, actor, ActionEdit, t.Name, strings.Join(details, " "))
		return []Change{tokenChange(ChangeToken, t)}, err
	})
	if err != nil {
		return Token{}, err
	}
	return tok, nil
}

// checkNames refuses an empty or oversized batch of names before anything is
// read, and returns the names with repeats dropped: names are one token however
// they are spelled (case is ignored), so `delete a A` deletes a once.
func (s *Store) checkNames(names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, errors.New("no token names given")
	}
	if max := s.MaxBatch(); len(names) > max {
		return nil, tooMany(max, "tokens", len(names))
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
	names, err := s.checkNames(names)
	if err != nil {
		return 0, err
	}
	return s.setActive(actor, byNames(names), active)
}

func (s *Store) setActive(actor Actor, refs []tokenRef, active bool) (int, error) {
	action := ActionDeactivate
	if active {
		action = ActionActivate
	}
	now := s.now().UTC()
	after := s.InactiveAfter()
	var changed []Change
	err := s.commit(func(tx Txn) ([]Change, error) {
		changed = changed[:0]
		txn, err := s.prefetchRefs(tx, refs) // one round trip, not one a token
		if err != nil {
			return nil, err
		}
		for _, ref := range refs {
			t, err := s.getRef(txn, ref)
			if err != nil {
				return nil, err
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
				return nil, err
			}
			if err := s.addEvent(txn, now, actor, action, t.Name, ""); err != nil {
				return nil, err
			}
			changed = append(changed, tokenChange(ChangeToken, t))
		}
		return changed, nil
	})
	if err != nil {
		return 0, err
	}
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
	names, err := s.checkNames(names)
	if err != nil {
		return 0, err
	}
	return s.delete(actor, byNames(names))
}

func (s *Store) delete(actor Actor, refs []tokenRef) (int, error) {
	now := s.now().UTC()
	var changed []Change
	err := s.commit(func(tx Txn) ([]Change, error) {
		changed = changed[:0]
		txn, err := s.prefetchRefs(tx, refs) // one round trip, not one a token
		if err != nil {
			return nil, err
		}
		for _, ref := range refs {
			t, err := s.getRef(txn, ref)
			if err != nil {
				return nil, err
			}
			if err := s.deleteTokenKeys(txn, &t); err != nil {
				return nil, err
			}
			if err := s.addEvent(txn, now, actor, ActionDelete, t.Name, ""); err != nil {
				return nil, err
			}
			changed = append(changed, tokenChange(ChangeDeleted, t))
		}
		return changed, nil
	})
	if err != nil {
		return 0, err
	}
	for _, c := range changed {
		if err := s.clearTokenRecords(c.TokenID); err != nil {
			return len(changed), fmt.Errorf("token %s deleted, but clearing its usage records failed: %w", quote(c.Name), err)
		}
	}
	return len(changed), nil
}

// deletePrefix deletes every key with the prefix (and the key equal to it),
// in transactions within the engine's limits.
func (s *Store) deletePrefix(prefix []byte) error {
	chunk := s.chunk(1, 128)
	for {
		var n int
		err := s.commit(func(txn Txn) ([]Change, error) {
			it := txn.Scan(prefix, ScanOptions{KeysOnly: true})
			var keys [][]byte
			for len(keys) < chunk && it.Next() {
				keys = append(keys, bytes.Clone(it.Key()))
			}
			err := it.Err()
			it.Close()
			if err != nil {
				return nil, err
			}
			for _, k := range keys {
				if err := txn.Delete(k); err != nil {
					return nil, err
				}
			}
			n = len(keys)
			return nil, nil
		})
		if err != nil || n < chunk {
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
	err := s.view(func(txn Reader) error {
		// One token at a time: the sweep runs every few minutes in serve, and
		// a list of every token would be that much memory each time.
		return s.eachTokenByID(txn, func(t Token) error {
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
	size := s.chunk(opsPerToken, s.bytesPerToken())
	for len(ids) > 0 {
		chunk := ids[:min(size, len(ids))]
		ids = ids[len(chunk):]
		var changed []Change
		err := s.commit(func(tx Txn) ([]Change, error) {
			changed = changed[:0]
			txn, err := s.prefetchTokens(tx, chunk, nil, nil) // one round trip, not one a token
			if err != nil {
				return nil, err
			}
			for _, id := range chunk {
				// Read again inside the transaction: an admin may have activated
				// or deleted the token since the scan.
				var t Token
				if err := s.getToken(txn, id, &t); errors.Is(err, ErrNoKey) {
					continue
				} else if err != nil {
					return nil, err
				}
				if !t.Expired(now, after) {
					continue
				}
				t.Active = false
				t.UpdatedAt = now
				if err := putToken(txn, &t); err != nil {
					return nil, err
				}
				if err := s.addEvent(txn, now, actor, ActionExpire, t.Name, details); err != nil {
					return nil, err
				}
				changed = append(changed, tokenChange(ChangeToken, t))
			}
			return changed, nil
		})
		if err != nil {
			return names, fmt.Errorf("inactivity sweep: %w", err)
		}
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

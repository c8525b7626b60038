package store

import (
	"errors"
	"fmt"
	"time"
)

// Acting by ID (DESIGN "Data rules"): a screen or a batch that picked a token
// acts on that very token, never on another one that took its name in the
// meantime. A name given on a command line is resolved to its token inside the
// transaction that acts on it; a picked token is named by its ID, and the
// operations below find it by that. Both go through one implementation: the
// name versions (Edit, SetActive, Delete, SetBlocked, Usage, UsageSeries) and
// the ID versions differ only in their tokenRef.

// GoneError is the error of an operation on a token picked by ID that no
// longer exists: it was deleted after it was picked (a token created since
// under the same name is another one, and was not touched). It matches
// ErrNotFound. IDs are random and never reused.
type GoneError struct {
	// ID is the picked token's ID; the caller, which picked it, knows its name.
	ID string
}

func (e *GoneError) Error() string {
	return fmt.Sprintf("the token with id %s no longer exists: it was deleted after it was picked", quote(e.ID))
}

// Unwrap makes errors.Is(err, ErrNotFound) true.
func (e *GoneError) Unwrap() error { return ErrNotFound }

// tokenRef finds the token an operation acts on: by id when it is set (a
// picked token), else by name (case ignored).
type tokenRef struct{ id, name string }

func byName(name string) tokenRef { return tokenRef{name: name} }

func byNames(names []string) []tokenRef {
	refs := make([]tokenRef, len(names))
	for i, n := range names {
		refs[i] = byName(n)
	}
	return refs
}

func byIDs(ids []string) []tokenRef {
	refs := make([]tokenRef, len(ids))
	for i, id := range ids {
		refs[i] = tokenRef{id: id}
	}
	return refs
}

// getRef reads the token ref finds in txn: ErrNotFound (a *GoneError for an
// ID) when there is none.
func (s *Store) getRef(txn Reader, ref tokenRef) (Token, error) {
	if ref.id == "" {
		return s.getByName(txn, ref.name)
	}
	var t Token
	err := s.getToken(txn, ref.id, &t)
	if errors.Is(err, ErrNoKey) {
		return Token{}, &GoneError{ID: ref.id}
	}
	return t, err
}

// checkIDs refuses an empty or oversized batch of IDs before anything is
// read, and returns the IDs with repeats dropped.
func (s *Store) checkIDs(ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, errors.New("no tokens given")
	}
	if max := s.MaxBatch(); len(ids) > max {
		return nil, tooMany(max, "tokens", len(ids))
	}
	seen := make(map[string]bool, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if id == "" {
			return nil, fmt.Errorf("empty token id: %w", ErrNotFound)
		}
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out, nil
}

// SetActiveIDs activates or deactivates the tokens with these IDs in one
// transaction, as SetActive does by name: every token must still exist (else
// a *GoneError, matching ErrNotFound, and nothing changes). It returns how
// many tokens changed state. More than MaxBatch IDs are refused (ErrTooMany).
func (s *Store) SetActiveIDs(actor Actor, ids []string, active bool) (int, error) {
	ids, err := s.checkIDs(ids)
	if err != nil {
		return 0, err
	}
	return s.setActive(actor, byIDs(ids), active)
}

// DeleteIDs deletes the tokens with these IDs, as Delete does by name: every
// token must still exist (else a *GoneError, matching ErrNotFound, and nothing
// changes). It returns how many tokens were deleted. More than MaxBatch IDs
// are refused (ErrTooMany).
func (s *Store) DeleteIDs(actor Actor, ids []string) (int, error) {
	ids, err := s.checkIDs(ids)
	if err != nil {
		return 0, err
	}
	return s.delete(actor, byIDs(ids))
}

// EditID changes the description and/or access of the token with this ID, as
// Edit does by name; a *GoneError (ErrNotFound) when it no longer exists.
func (s *Store) EditID(actor Actor, id string, e Edit) (Token, error) {
	if id == "" {
		return Token{}, fmt.Errorf("empty token id: %w", ErrNotFound)
	}
	return s.edit(actor, tokenRef{id: id}, e)
}

// SetBlockedID blocks or unblocks IP addresses for the token with this ID, as
// SetBlocked does by name; a *GoneError (ErrNotFound) when it no longer
// exists, and nothing changes.
func (s *Store) SetBlockedID(actor Actor, id string, ips []string, blocked bool) (int, error) {
	if id == "" {
		return 0, fmt.Errorf("empty token id: %w", ErrNotFound)
	}
	return s.setBlocked(actor, tokenRef{id: id}, ips, blocked)
}

// UsageID is Usage of the token with this ID: a screen that shows one token
// never shows the rows of another that took its name; a *GoneError
// (ErrNotFound) when it no longer exists.
func (s *Store) UsageID(id string) ([]Usage, error) {
	return s.usage(tokenRef{id: id})
}

// UsageSeriesID is UsageSeries of the token with this ID; a *GoneError
// (ErrNotFound) when it no longer exists.
func (s *Store) UsageSeriesID(id, ip string, since time.Time) ([]HourCount, error) {
	return s.usageSeries(tokenRef{id: id}, ip, since)
}

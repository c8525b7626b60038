package store

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/apptokens/apptokens/internal/secret"
)

// SeedToken is one token of a bulk load, with its usage rows and usage
// history (per address and hour; an address and hour given twice add up).
type SeedToken struct {
	Token   Token
	Secret  secret.Token
	Usage   []Usage
	History []UsageHour
}

// BulkLoad writes many tokens at once through the engine's Load, in batches
// it can hold (seed data for demos and benchmarks). Every token is validated first and no name may already exist
// or repeat; then the batch is written and synced. One audit event records it.
// It holds every other writer off from the name check to the sync, so a
// concurrent Create cannot take a name in between.
func (s *Store) BulkLoad(actor Actor, toks []SeedToken) error {
	seen := make(map[string]bool, len(toks))
	seenID := make(map[string]bool, len(toks))
	seenDigest := make(map[secret.Digest]bool, len(toks))
	for i := range toks {
		t := &toks[i].Token
		if err := validateFields(t.Name, t.Description, t.Access); err != nil {
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
		} else if !validID(t.ID) {
			return fmt.Errorf("token %s: id %s is not 1 to 64 letters, digits, dashes or underscores", quote(t.Name), quote(t.ID))
		}
		t.Digest = toks[i].Secret.Digest()
		t.Hint = toks[i].Secret.Hint()
		if seenDigest[t.Digest] {
			return fmt.Errorf("token %s: its secret is given twice", quote(t.Name))
		}
		seenDigest[t.Digest] = true
		if seenID[t.ID] {
			return fmt.Errorf("token %s: id %s given twice", quote(t.Name), quote(t.ID))
		}
		seenID[t.ID] = true
		for j := range toks[i].Usage {
			u := &toks[i].Usage[j]
			ip, err := ClientIP(u.IP)
			if err != nil {
				return err
			}
			u.IP = ip
			if err := checkUsageTimes(t, u); err != nil {
				return err
			}
		}
		for j := range toks[i].History {
			h := &toks[i].History[j]
			ip, err := ClientIP(h.IP)
			if err != nil {
				return err
			}
			h.IP = ip
			if _, ok := hourNum(h.Hour); !ok || !h.Hour.Equal(h.Hour.Truncate(time.Hour)) {
				return fmt.Errorf("token %s, address %s: history hour %s is not the start of an hour", quote(t.Name), ip, h.Hour.UTC().Format(time.RFC3339))
			}
		}
	}
	// Every writer of a Badger directory is in this process (its lock keeps
	// others out), and each holds writeMu shared: holding it exclusively from
	// the checks to the end of the load keeps a Create from taking a name in
	// between. (On a shared engine other nodes' writers are not held off.)
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := s.Writable(); err != nil {
		return err
	}
	err := s.view(func(txn Reader) error {
		for i := range toks {
			t := &toks[i].Token
			if _, err := txn.Get(nameKey(t.Name)); err == nil {
				return fieldErr("name", ErrNameTaken, "name %s is already taken", quote(t.Name))
			} else if !errors.Is(err, ErrNoKey) {
				return err
			}
			if _, err := txn.Get(digestKey(t.Digest)); err == nil {
				return fmt.Errorf("token %s: its secret belongs to another token", quote(t.Name))
			} else if !errors.Is(err, ErrNoKey) {
				return err
			}
			if _, err := txn.Get(tokenKey(t.ID)); err == nil {
				return fmt.Errorf("token %s: id %s is already taken", quote(t.Name), quote(t.ID))
			} else if !errors.Is(err, ErrNoKey) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	err = s.eng.Load(func(wb Writer) error {
		for i := range toks {
			t := toks[i].Token
			if err := wb.Set(nameKey(t.Name), []byte(t.ID)); err != nil {
				return err
			}
			if err := wb.Set(digestKey(t.Digest), []byte(t.ID)); err != nil {
				return err
			}
			if err := putToken(wb, &t); err != nil {
				return err
			}
			for _, u := range toks[i].Usage {
				u.TokenID = t.ID
				if u.Blocked {
					if err := wb.Set(blockKey(t.ID, u.IP), nil); err != nil {
						return err
					}
					u.Blocked = false // blocks are b/ records
				}
				if err := setJSON(wb, s.myUsageKey(t.ID, u.IP), u); err != nil {
					return err
				}
			}
			if err := s.seedHistory(wb, t.ID, toks[i].History); err != nil {
				return err
			}
		}
		now := s.now().UTC()
		ev := Event{Time: now, Actor: actor.String(), Action: "seed", Details: fmt.Sprintf("%d tokens", len(toks))}
		return setJSON(wb, s.eventKey(now), ev)
	})
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	return s.announce(Change{Kind: ChangeReload})
}

// seedHistory writes a token's hourly buckets, per address and per token.
func (s *Store) seedHistory(wb Writer, id string, hs []UsageHour) error {
	type ipHour struct {
		ip string
		h  uint32
	}
	byIP := map[ipHour]*[2]uint64{}
	byHour := map[uint32]*[2]uint64{}
	var order []ipHour
	for _, u := range hs {
		h, _ := hourNum(u.Hour)
		k := ipHour{u.IP, h}
		c := byIP[k]
		if c == nil {
			c = new([2]uint64)
			byIP[k] = c
			order = append(order, k)
		}
		c[0], c[1] = c[0]+u.Allowed, c[1]+u.Denied
		t := byHour[h]
		if t == nil {
			t = new([2]uint64)
			byHour[h] = t
		}
		t[0], t[1] = t[0]+u.Allowed, t[1]+u.Denied
	}
	for _, k := range order {
		c := byIP[k]
		if err := wb.Set(s.myHourKey(hourIPPrefix(id, k.ip), k.h), encodeHour(c[0], c[1])); err != nil {
			return err
		}
	}
	for h, c := range byHour {
		if err := wb.Set(s.myHourKey(hourTokenPrefix(id), h), encodeHour(c[0], c[1])); err != nil {
			return err
		}
	}
	return nil
}

// checkUsageTimes refuses a usage row whose times cannot be: first used after
// last used, or used before its token was created.
func checkUsageTimes(t *Token, u *Usage) error {
	bad := func(what string) error {
		return fmt.Errorf("token %s, address %s: %s", quote(t.Name), u.IP, what)
	}
	if u.FirstUsedAt.IsZero() != u.LastUsedAt.IsZero() {
		return bad("first and last use must both be set or both be unset")
	}
	if u.LastUsedAt.Before(u.FirstUsedAt) {
		return bad("last used before first used")
	}
	if !u.FirstUsedAt.IsZero() && u.FirstUsedAt.Before(t.CreatedAt) {
		return bad("used before the token was created")
	}
	return nil
}

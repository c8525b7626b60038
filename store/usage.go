package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	badger "github.com/dgraph-io/badger/v4"
)

func usagePrefix(id string) []byte { return []byte(pfxUsage + id + "/") }
func usageKey(id, ip string) []byte {
	return []byte(pfxUsage + id + "/" + ip)
}

// Usage returns the IP addresses that used the named token, most recent first.
func (s *Store) Usage(name string) ([]Usage, error) {
	var out []Usage
	err := s.db.View(func(txn *badger.Txn) error {
		t, err := getByName(txn, name)
		if err != nil {
			return err
		}
		out, err = listUsage(txn, t.ID)
		return err
	})
	if err != nil {
		return nil, err
	}
	sortUsage(out)
	return out, nil
}

// sortUsage orders newest use first; never-used (pre-blocked) rows last, by IP.
func sortUsage(u []Usage) {
	sort.SliceStable(u, func(i, j int) bool {
		if !u[i].LastUsedAt.Equal(u[j].LastUsedAt) {
			return u[i].LastUsedAt.After(u[j].LastUsedAt)
		}
		return u[i].IP < u[j].IP
	})
}

func listUsage(txn *badger.Txn, id string) ([]Usage, error) {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = usagePrefix(id)
	it := txn.NewIterator(opts)
	defer it.Close()
	var out []Usage
	for it.Rewind(); it.Valid(); it.Next() {
		var u Usage
		if err := it.Item().Value(func(b []byte) error { return json.Unmarshal(b, &u) }); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

// SetBlocked blocks or unblocks IP addresses for the named token. An IP that never
// used the token can be blocked in advance. Invalid IPs change nothing.
func (s *Store) SetBlocked(actor Actor, name string, ips []string, blocked bool) (int, error) {
	if len(ips) == 0 {
		return 0, errors.New("no IP addresses given")
	}
	if len(ips) > MaxBatch {
		return 0, tooMany("IP addresses", len(ips))
	}
	norm := make([]string, 0, len(ips))
	for _, ip := range ips {
		n, err := ParseIP(ip)
		if err != nil {
			return 0, err
		}
		norm = append(norm, n)
	}
	now := s.now().UTC()
	var tok Token
	var changed int
	err := s.update(func(txn *badger.Txn) error {
		changed = 0
		var err error
		tok, err = getByName(txn, name)
		if err != nil {
			return err
		}
		var done []string
		for _, ip := range norm {
			var u Usage
			err := getJSON(txn, usageKey(tok.ID, ip), &u)
			switch {
			case errors.Is(err, badger.ErrKeyNotFound):
				if !blocked {
					continue // nothing to unblock
				}
				u = Usage{TokenID: tok.ID, IP: ip}
			case err != nil:
				return err
			}
			if u.Blocked == blocked {
				continue
			}
			u.Blocked = blocked
			if err := setJSON(txn, usageKey(tok.ID, ip), u); err != nil {
				return err
			}
			done = append(done, ip)
		}
		if len(done) == 0 {
			return nil
		}
		changed = len(done)
		action := ActionUnblock
		if blocked {
			action = ActionBlock
		}
		return s.addEvent(txn, now, actor, action, tok.Name, "ip="+strings.Join(done, ","))
	})
	if err != nil {
		return 0, err
	}
	if changed > 0 {
		s.feed.publish(Change{Kind: ChangeUsage, TokenID: tok.ID, Name: tok.Name})
	}
	return changed, nil
}

// RecordUsage adds aggregated requests from the gate and moves each token's
// last-used time forward. Deltas for tokens deleted meanwhile are dropped.
//
// The deltas are written in order, writeChunk per transaction, each chunk
// published after its commit. written is how many deltas are done (committed or
// dropped): when err is not nil, deltas[written:] were not written and can be
// given again; deltas[:written] must not be, or they would count twice.
func (s *Store) RecordUsage(deltas []UsageDelta) (written int, err error) {
	for written < len(deltas) {
		chunk := deltas[written:min(written+writeChunk, len(deltas))]
		changed, err := s.recordUsageChunk(chunk)
		if err != nil {
			return written, fmt.Errorf("record usage: %w", err)
		}
		s.feed.publish(changed...)
		written += len(chunk)
	}
	return written, nil
}

// recordUsageChunk writes deltas in one transaction and returns the changes to
// publish. Each token is read once, however many addresses used it.
func (s *Store) recordUsageChunk(deltas []UsageDelta) ([]Change, error) {
	var changed []Change
	err := s.update(func(txn *badger.Txn) error {
		changed = changed[:0]
		toks := map[string]*Token{} // nil: deleted meanwhile, its deltas are dropped
		var order []string
		moved := map[string]bool{}
		for _, d := range deltas {
			t, seen := toks[d.TokenID]
			if !seen {
				var tok Token
				if err := getToken(txn, d.TokenID, &tok); errors.Is(err, badger.ErrKeyNotFound) {
					toks[d.TokenID] = nil
					continue
				} else if err != nil {
					return err
				}
				t = &tok
				toks[d.TokenID] = t
				order = append(order, d.TokenID)
			}
			if t == nil {
				continue
			}
			var u Usage
			err := getJSON(txn, usageKey(d.TokenID, d.IP), &u)
			if errors.Is(err, badger.ErrKeyNotFound) {
				u = Usage{TokenID: d.TokenID, IP: d.IP}
			} else if err != nil {
				return err
			}
			if u.FirstUsedAt.IsZero() || d.FirstUsedAt.Before(u.FirstUsedAt) {
				u.FirstUsedAt = d.FirstUsedAt.UTC()
			}
			if d.LastUsedAt.After(u.LastUsedAt) {
				u.LastUsedAt = d.LastUsedAt.UTC()
			}
			u.Allowed += d.Allowed
			u.Denied += d.Denied
			if err := setJSON(txn, usageKey(d.TokenID, d.IP), u); err != nil {
				return err
			}
			// Only allowed requests count as use for the inactivity policy.
			if d.Allowed > 0 && d.LastUsedAt.After(t.LastUsedAt) {
				t.LastUsedAt = d.LastUsedAt.UTC()
				moved[d.TokenID] = true
			}
		}
		for _, id := range order {
			t := toks[id]
			if moved[id] {
				if err := putToken(txn, t); err != nil {
					return err
				}
			}
			changed = append(changed, Change{Kind: ChangeUsed, TokenID: id, Name: t.Name, LastUsedAt: t.LastUsedAt})
		}
		return nil
	})
	return changed, err
}

// GateEntry is what the gate needs to verify one token: the token and the IPs
// blocked for it.
type GateEntry struct {
	Token   Token
	Blocked []string
}

// GateEntries returns every token with its blocked IPs, for building the gate's index.
func (s *Store) GateEntries() ([]GateEntry, error) {
	var out []GateEntry
	err := s.db.View(func(txn *badger.Txn) error {
		toks, err := listTokens(txn)
		if err != nil {
			return err
		}
		byID := make(map[string]int, len(toks))
		out = make([]GateEntry, len(toks))
		for i, t := range toks {
			out[i].Token = t
			byID[t.ID] = i
		}
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte(pfxUsage)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var u Usage
			if err := it.Item().Value(func(b []byte) error { return json.Unmarshal(b, &u) }); err != nil {
				return err
			}
			if i, ok := byID[u.TokenID]; ok && u.Blocked {
				out[i].Blocked = append(out[i].Blocked, u.IP)
			}
		}
		return nil
	})
	return out, err
}

// GateEntry returns one token's gate entry by ID.
func (s *Store) GateEntry(id string) (GateEntry, error) {
	var e GateEntry
	err := s.db.View(func(txn *badger.Txn) error {
		if err := getToken(txn, id, &e.Token); err != nil {
			if errors.Is(err, badger.ErrKeyNotFound) {
				return ErrNotFound
			}
			return err
		}
		us, err := listUsage(txn, id)
		if err != nil {
			return err
		}
		for _, u := range us {
			if u.Blocked {
				e.Blocked = append(e.Blocked, u.IP)
			}
		}
		return nil
	})
	return e, err
}

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

// Usage returns the IP addresses that used the named token, most recent first,
// with their Blocked flags; an address blocked before it was ever used is a row
// of its own, with no use.
func (s *Store) Usage(name string) ([]Usage, error) {
	var out []Usage
	err := s.view(func(txn *badger.Txn) error {
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

// listUsage returns the token's usage rows with its blocks merged in: the
// Blocked flag lives in b/ keys, and a blocked address that was never used
// gets a row with no use.
func listUsage(txn *badger.Txn, id string) ([]Usage, error) {
	blocks, err := listBlocks(txn, id)
	if err != nil {
		return nil, err
	}
	blocked := make(map[string]bool, len(blocks))
	for _, ip := range blocks {
		blocked[ip] = true
	}
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
		u.Blocked = blocked[u.IP]
		delete(blocked, u.IP)
		out = append(out, u)
	}
	for _, ip := range blocks {
		if blocked[ip] {
			out = append(out, Usage{TokenID: id, IP: ip, Blocked: true})
		}
	}
	return out, nil
}

// SetBlocked blocks or unblocks IP addresses for the named token. An IP that never
// used the token can be blocked in advance. Invalid IPs change nothing. It
// returns how many addresses changed; each is published as its own ChangeUsage.
func (s *Store) SetBlocked(actor Actor, name string, ips []string, blocked bool) (int, error) {
	if len(ips) == 0 {
		return 0, errors.New("no IP addresses given")
	}
	if len(ips) > MaxBatch {
		return 0, tooMany("IP addresses", len(ips))
	}
	norm := make([]string, 0, len(ips))
	seen := make(map[string]bool, len(ips))
	for _, ip := range ips {
		n, err := ClientIP(ip)
		if err != nil {
			return 0, err
		}
		if !seen[n] {
			seen[n] = true
			norm = append(norm, n)
		}
	}
	now := s.now().UTC()
	var changed []Change
	err := s.update(func(txn *badger.Txn) error {
		changed = changed[:0]
		tok, err := getByName(txn, name)
		if err != nil {
			return err
		}
		var done []string
		for _, ip := range norm {
			was, err := isBlocked(txn, tok.ID, ip)
			if err != nil {
				return err
			}
			if was == blocked {
				continue
			}
			if blocked {
				// An address blocked before any use gets its (empty) usage row,
				// so that it stays listed once unblocked.
				if _, gerr := txn.Get(usageKey(tok.ID, ip)); errors.Is(gerr, badger.ErrKeyNotFound) {
					if err := setJSON(txn, usageKey(tok.ID, ip), Usage{TokenID: tok.ID, IP: ip}); err != nil {
						return err
					}
				} else if gerr != nil {
					return gerr
				}
				err = txn.Set(blockKey(tok.ID, ip), nil)
			} else {
				err = txn.Delete(blockKey(tok.ID, ip))
			}
			if err != nil {
				return err
			}
			done = append(done, ip)
			changed = append(changed, Change{Kind: ChangeUsage, TokenID: tok.ID, Name: tok.Name, IP: ip, Blocked: blocked})
		}
		if len(done) == 0 {
			return nil
		}
		action := ActionUnblock
		if blocked {
			action = ActionBlock
		}
		return s.addEvent(txn, now, actor, action, tok.Name, "ip="+strings.Join(done, ","))
	})
	if err != nil {
		return 0, err
	}
	s.feed.publish(changed...)
	return len(changed), nil
}

// RecordUsage adds aggregated requests from the gate and moves each token's
// last-used time forward. Deltas for tokens deleted meanwhile are dropped.
// Each delta's counts also go to the usage history, in the hour (UTC) of its
// LastUsedAt, per token and per (token, IP), in the same transaction: a
// caller whose deltas may span an hour gives one delta per hour (the gate does).
//
// A delta whose IP is not a client's address (empty, malformed, or unspecified
// such as 0.0.0.0: a peer on a unix socket has none) is refused: it is not
// written, the others are, and the error (ErrInvalidIP) names it once they are.
// Such a delta counts as done, since giving it again can never succeed.
//
// The deltas are written in order, writeChunk per transaction, each chunk
// published after its commit. written is how many deltas are done (committed or
// dropped): when err is not nil, deltas[written:] were not written and can be
// given again; deltas[:written] must not be, or they would count twice.
func (s *Store) RecordUsage(deltas []UsageDelta) (written int, err error) {
	valid, pos, refused := cleanDeltas(deltas)
	for done := 0; done < len(valid); {
		chunk := valid[done:min(done+writeChunk, len(valid))]
		changed, err := s.recordUsageChunk(chunk)
		if err != nil {
			if pos != nil {
				done = pos[done]
			}
			return done, fmt.Errorf("record usage: %w", err)
		}
		s.feed.publish(changed...)
		done += len(chunk)
	}
	if refused != nil {
		return len(deltas), fmt.Errorf("record usage: %w", refused)
	}
	return len(deltas), nil
}

// cleanDeltas returns the deltas with their IPs normalized and the refused ones
// left out, the position in deltas of each one kept (pos is nil, and valid is
// deltas itself, when all are fine as they are), and the error naming the first
// refused.
func cleanDeltas(deltas []UsageDelta) (valid []UsageDelta, pos []int, refused error) {
	for i, d := range deltas {
		ip, err := ClientIP(d.IP)
		if err == nil && ip == d.IP {
			if pos != nil {
				valid, pos = append(valid, d), append(pos, i)
			}
			continue
		}
		if pos == nil {
			valid = append(make([]UsageDelta, 0, len(deltas)), deltas[:i]...)
			pos = make([]int, i, len(deltas))
			for j := range pos {
				pos[j] = j
			}
		}
		if err != nil {
			if refused == nil {
				refused = err
			}
			continue
		}
		d.IP = ip
		valid, pos = append(valid, d), append(pos, i)
	}
	if pos == nil {
		return deltas, nil, nil
	}
	return valid, pos, refused
}

// recordUsageChunk writes deltas in one transaction and returns the changes to
// publish. It writes the small records only: the usage rows, their hourly
// buckets (history.go) and each token's last-used key, never the token record
// (see layout.go).
func (s *Store) recordUsageChunk(deltas []UsageDelta) ([]Change, error) {
	var changed []Change
	err := s.update(func(txn *badger.Txn) error {
		changed = changed[:0]
		toks := map[string]*Change{} // nil: deleted meanwhile, its deltas are dropped
		var order []*Change
		moved := map[string]bool{}
		var hours hourBuckets
		for _, d := range deltas {
			c, seen := toks[d.TokenID]
			if !seen {
				var tok Token
				if err := getToken(txn, d.TokenID, &tok); errors.Is(err, badger.ErrKeyNotFound) {
					toks[d.TokenID] = nil
					continue
				} else if err != nil {
					return err
				}
				c = &Change{Kind: ChangeUsed, TokenID: tok.ID, Name: tok.Name, LastUsedAt: tok.LastUsedAt}
				toks[d.TokenID] = c
				order = append(order, c)
			}
			if c == nil {
				continue
			}
			key := usageKey(d.TokenID, d.IP)
			var u Usage
			err := getJSON(txn, key, &u)
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
			u.Blocked = false // blocks live in b/ keys
			if err := setJSON(txn, key, u); err != nil {
				return err
			}
			if u.Blocked, err = isBlocked(txn, d.TokenID, d.IP); err != nil {
				return err
			}
			c.Usage = append(c.Usage, u)
			if !s.noHistory {
				if h, ok, err := hours.record(txn, d); err != nil {
					return err
				} else if ok {
					c.Hours = append(c.Hours, h)
				}
			}
			// Only allowed requests count as use for the inactivity policy.
			if d.Allowed > 0 && d.LastUsedAt.After(c.LastUsedAt) {
				c.LastUsedAt = d.LastUsedAt.UTC()
				moved[d.TokenID] = true
			}
		}
		if err := hours.flush(txn); err != nil {
			return err
		}
		for _, c := range order {
			if moved[c.TokenID] {
				if err := txn.Set(lastUsedKey(c.TokenID), encodeLastUsed(c.LastUsedAt)); err != nil {
					return err
				}
			}
			changed = append(changed, *c)
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

// GateEntries returns every token with its blocked IPs, for building the gate's
// index. It reads the tokens and the blocks, never the usage rows.
func (s *Store) GateEntries() ([]GateEntry, error) {
	var out []GateEntry
	err := s.view(func(txn *badger.Txn) error {
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
		opts.Prefix = []byte(pfxBlock)
		opts.PrefetchValues = false
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			id, ip, ok := strings.Cut(string(it.Item().Key()[len(pfxBlock):]), "/")
			if !ok {
				continue
			}
			if i, ok := byID[id]; ok {
				out[i].Blocked = append(out[i].Blocked, ip)
			}
		}
		return nil
	})
	return out, err
}

package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/apptokens/apptokens/internal/cidr"
)

// Usage rows: u/<id>/<ip> on a plain engine (Badger); on a shared engine each
// node writes its own, u/<id>/<ip>/<node>, so that gates on many nodes never
// conflict, and a row read is every node's merged (mergeUsage).
func usagePrefix(id string) []byte { return []byte(pfxUsage + id + "/") }
func usageKey(id, ip string) []byte {
	return []byte(pfxUsage + id + "/" + ip)
}

// myUsageKey is the usage row of (id, ip) this process writes.
func (s *Store) myUsageKey(id, ip string) []byte {
	if s.node == "" {
		return usageKey(id, ip)
	}
	return []byte(pfxUsage + id + "/" + ip + "/" + s.node)
}

// mergeUsage adds the row o (another node's) into u: counts add up, first use
// is the earliest, last use the latest.
func mergeUsage(u *Usage, o Usage) {
	if !o.FirstUsedAt.IsZero() && (u.FirstUsedAt.IsZero() || o.FirstUsedAt.Before(u.FirstUsedAt)) {
		u.FirstUsedAt = o.FirstUsedAt
	}
	if o.LastUsedAt.After(u.LastUsedAt) {
		u.LastUsedAt = o.LastUsedAt
	}
	u.Allowed += o.Allowed
	u.Denied += o.Denied
}

// otherRows merges into u the rows of (id, ip) that other nodes (and a
// plain engine's, u/<id>/<ip>, as a restore brings) wrote, read with a Scan:
// no other node's flush conflicts with this one's.
func (s *Store) otherRows(txn Reader, u *Usage) error {
	base := usageKey(u.TokenID, u.IP)
	own := s.myUsageKey(u.TokenID, u.IP)
	it := txn.Scan(base, ScanOptions{})
	defer it.Close()
	for it.Next() {
		k := it.Key()
		if bytes.Equal(k, own) || len(k) > len(base) && k[len(base)] != '/' {
			continue // this node's, or another address with this one as prefix
		}
		var o Usage
		if err := json.Unmarshal(it.Value(), &o); err != nil {
			return err
		}
		mergeUsage(u, o)
	}
	return it.Err()
}

// Usage returns the IP addresses that used the named token, most recent first,
// with their Blocked flags; an address blocked before it was ever used is a row
// of its own, with no use.
func (s *Store) Usage(name string) ([]Usage, error) { return s.usage(byName(name)) }

func (s *Store) usage(ref tokenRef) ([]Usage, error) {
	var out []Usage
	err := s.view(func(txn Reader) error {
		t, err := s.getRef(txn, ref)
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
// Blocked flag lives in b/ keys (an address inside a blocked range is
// Blocked too), and a blocked address that was never used gets a row with no
// use; a blocked range is no row (NetworkRules).
func listUsage(txn Reader, id string) ([]Usage, error) {
	blocks, err := listBlocks(txn, id)
	if err != nil {
		return nil, err
	}
	blocked := make(map[string]bool, len(blocks))
	var ranges []string
	for _, ip := range blocks {
		if strings.Contains(ip, "/") {
			ranges = append(ranges, ip) // not a row: NetworkRules lists them
			continue
		}
		blocked[ip] = true
	}
	inRange, err := cidr.NewSet(ranges)
	if err != nil {
		return nil, fmt.Errorf("blocked range of token %s: %w", id, err)
	}
	it := txn.Scan(usagePrefix(id), ScanOptions{})
	defer it.Close()
	var out []Usage
	row := map[string]int{} // IP → its row in out: every node's rows merge
	for it.Next() {
		var u Usage
		if err := json.Unmarshal(it.Value(), &u); err != nil {
			return nil, err
		}
		if i, ok := row[u.IP]; ok {
			mergeUsage(&out[i], u)
			continue
		}
		row[u.IP] = len(out)
		u.Blocked = blocked[u.IP]
		if a, err := netip.ParseAddr(u.IP); err == nil && inRange.Contains(a) {
			u.Blocked = true
		}
		delete(blocked, u.IP)
		out = append(out, u)
	}
	if err := it.Err(); err != nil {
		return nil, err
	}
	for _, ip := range blocks {
		if blocked[ip] && !strings.Contains(ip, "/") {
			out = append(out, Usage{TokenID: id, IP: ip, Blocked: true})
		}
	}
	return out, nil
}

// SetBlocked blocks or unblocks IP addresses for the named token. An IP that never
// used the token can be blocked in advance. Invalid IPs change nothing. It
// returns how many addresses changed; each is published as its own ChangeUsage.
// It is SetBlockedID for the token named name.
func (s *Store) SetBlocked(actor Actor, name string, ips []string, blocked bool) (int, error) {
	return s.setBlocked(actor, byName(name), ips, blocked)
}

// setBlocked blocks or unblocks addresses and CIDRs for the token ref finds,
// in one transaction: a blocked range covers every address in it. Each entry
// is read by cidr.Canonical (host bits refused, a /32 or /128 is the address,
// IPv4-mapped is IPv4; a single address must be a client's); one bad entry
// changes nothing.
func (s *Store) setBlocked(actor Actor, ref tokenRef, ips []string, blocked bool) (int, error) {
	if len(ips) == 0 {
		return 0, errors.New("no IP addresses given")
	}
	if max := s.chunk(opsPerAddress, bytesPerDelta); len(ips) > max {
		return 0, tooMany(max, "IP addresses", len(ips))
	}
	norm, err := canonicalRanges("ip", ips)
	if err != nil {
		return 0, err
	}
	now := s.now().UTC()
	var changed []Change
	err = s.commit(func(tx Txn) ([]Change, error) {
		changed = changed[:0]
		txn, err := s.prefetchRefs(tx, []tokenRef{ref})
		if err != nil {
			return nil, err
		}
		tok, err := s.getRef(txn, ref)
		if err != nil {
			return nil, err
		}
		// Every address's block and usage row at once, not two round trips
		// an address on etcd.
		keys := make([][]byte, 0, 2*len(norm))
		for _, ip := range norm {
			keys = append(keys, blockKey(tok.ID, ip), s.myUsageKey(tok.ID, ip))
		}
		if err := txn.getAhead(keys); err != nil {
			return nil, err
		}
		var done []string
		for _, ip := range norm {
			was, err := isBlocked(txn, tok.ID, ip)
			if err != nil {
				return nil, err
			}
			if was == blocked {
				continue
			}
			if blocked {
				// An address blocked before any use gets its (empty) usage row,
				// so that it stays listed once unblocked (a range has none).
				if !strings.Contains(ip, "/") {
					if err := s.ensureUsageRow(txn, tok.ID, ip); err != nil {
						return nil, err
					}
				}
				err = txn.Set(blockKey(tok.ID, ip), nil)
			} else {
				err = txn.Delete(blockKey(tok.ID, ip))
			}
			if err != nil {
				return nil, err
			}
			done = append(done, ip)
			changed = append(changed, Change{Kind: ChangeUsage, TokenID: tok.ID, Name: tok.Name, IP: ip, Blocked: blocked})
		}
		if len(done) == 0 {
			return nil, nil
		}
		action := ActionUnblock
		if blocked {
			action = ActionBlock
		}
		return changed, s.addEvent(txn, now, actor, action, tok.Name, "ip="+strings.Join(done, ","))
	})
	if err != nil {
		return 0, err
	}
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
	size := s.chunk(opsPerDelta, bytesPerDelta)
	for done := 0; done < len(valid); {
		chunk := valid[done:min(done+size, len(valid))]
		if err := s.recordUsageChunk(chunk); err != nil {
			if pos != nil {
				done = pos[done]
			}
			return done, fmt.Errorf("record usage: %w", err)
		}
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

// recordUsageChunk writes deltas in one transaction, with the changes to
// publish. It writes the small records only: this node's usage rows, hourly
// buckets (history.go) and each token's last-used key, never the token record
// (see layout.go). Each node reads (Get) and writes its own keys only; the
// change carries the rows with every node's counts merged (otherRows).
func (s *Store) recordUsageChunk(deltas []UsageDelta) error {
	return s.commit(func(tx Txn) ([]Change, error) {
		hours := hourBuckets{s: s}
		// Every key the chunk reads with Get, and the other nodes' rows the
		// change carries merged (otherRows), read at once: one round trip on
		// etcd instead of one or two a key (nothing ahead on Badger).
		var keys, others [][]byte
		var ids []string
		seen := map[string]bool{}
		for i := 0; i < len(deltas) && s.readsAhead(); i++ {
			d := deltas[i]
			if !seen[d.TokenID] {
				seen[d.TokenID] = true
				ids = append(ids, d.TokenID)
			}
			keys = append(keys, s.myUsageKey(d.TokenID, d.IP), blockKey(d.TokenID, d.IP))
			if !s.noHistory {
				keys = append(keys, hours.keys(d)...)
			}
			if s.node != "" {
				others = append(others, usageKey(d.TokenID, d.IP))
			}
		}
		txn, err := s.prefetchTokens(tx, ids, keys, others)
		if err != nil {
			return nil, err
		}
		toks := map[string]*Change{} // nil: deleted meanwhile, its deltas are dropped
		var order []*Change
		moved := map[string]bool{}
		for _, d := range deltas {
			c, seen := toks[d.TokenID]
			if !seen {
				var tok Token
				if err := s.getTokenBare(txn, d.TokenID, &tok); errors.Is(err, ErrNoKey) {
					toks[d.TokenID] = nil
					continue
				} else if err != nil {
					return nil, err
				}
				c = &Change{Kind: ChangeUsed, TokenID: tok.ID, Name: tok.Name, LastUsedAt: tok.LastUsedAt}
				toks[d.TokenID] = c
				order = append(order, c)
			}
			if c == nil {
				continue
			}
			key := s.myUsageKey(d.TokenID, d.IP)
			var u Usage
			err := getJSON(txn, key, &u)
			if errors.Is(err, ErrNoKey) {
				u = Usage{TokenID: d.TokenID, IP: d.IP}
			} else if err != nil {
				return nil, err
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
				return nil, err
			}
			if s.node != "" {
				if err := s.otherRows(txn, &u); err != nil {
					return nil, err
				}
			}
			if u.Blocked, err = isBlocked(txn, d.TokenID, d.IP); err != nil {
				return nil, err
			}
			c.Usage = append(c.Usage, u)
			if !s.noHistory {
				if h, ok, err := hours.record(txn, d); err != nil {
					return nil, err
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
			return nil, err
		}
		changed := make([]Change, 0, len(order))
		for _, c := range order {
			if moved[c.TokenID] {
				if err := txn.Set(s.myLastUsedKey(c.TokenID), encodeLastUsed(c.LastUsedAt)); err != nil {
					return nil, err
				}
			}
			changed = append(changed, *c)
		}
		return changed, nil
	})
}

// GateEntry is what the gate needs to verify one token: the token and the IPs
// blocked for it.
type GateEntry struct {
	Token Token
	// Blocked are the addresses and CIDRs blocked for the token (canonical,
	// as cidr.Canonical gives them).
	Blocked []string
	// Allowed is the token's allow-list (Token.Allowed): empty allows any
	// address.
	Allowed []string
}

// GateEntries returns every token with its blocked IPs, for building the gate's
// index. It reads the tokens and the blocks, never the usage rows.
func (s *Store) GateEntries() ([]GateEntry, error) {
	var out []GateEntry
	err := s.view(func(txn Reader) error {
		toks, err := s.listTokens(txn)
		if err != nil {
			return err
		}
		byID := make(map[string]int, len(toks))
		out = make([]GateEntry, len(toks))
		for i, t := range toks {
			out[i].Token = t
			out[i].Allowed = t.Allowed
			byID[t.ID] = i
		}
		it := txn.Scan([]byte(pfxBlock), ScanOptions{KeysOnly: true})
		defer it.Close()
		for it.Next() {
			id, ip, ok := strings.Cut(string(it.Key()[len(pfxBlock):]), "/")
			if !ok {
				continue
			}
			if i, ok := byID[id]; ok {
				out[i].Blocked = append(out[i].Blocked, ip)
			}
		}
		return it.Err()
	})
	return out, err
}

// ensureUsageRow writes an empty usage row of (id, ip) when there is none.
func (s *Store) ensureUsageRow(txn Txn, id, ip string) error {
	key := s.myUsageKey(id, ip)
	if _, err := txn.Get(key); !errors.Is(err, ErrNoKey) {
		return err
	}
	return setJSON(txn, key, Usage{TokenID: id, IP: ip})
}

// NetworkRules are a token's network rules, canonical (cidr.Canonical) and
// in string order: the allow-list (empty: any address) and the blocked
// addresses and ranges.
type NetworkRules struct {
	Allowed []string
	Blocked []string
}

// NetworkRulesID returns the network rules of the token id (ErrNotFound when
// there is none).
func (s *Store) NetworkRulesID(id string) (NetworkRules, error) {
	var r NetworkRules
	err := s.view(func(txn Reader) error {
		t, err := s.getTokenByID(txn, id)
		if err != nil {
			return err
		}
		r.Allowed = t.Allowed
		r.Blocked, err = listBlocks(txn, id)
		return err
	})
	return r, err
}

package store

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/apptokens/apptokens/internal/cidr"
	"github.com/apptokens/apptokens/internal/secret"
)

// The lifecycle (DESIGN "Lifecycle"): rotation with a grace window, network
// allow-lists, the sweep (inactivity, expiry, auto-delete, end of grace
// windows, warnings), the webhook outbox, and the leak report.

// Webhook events (WebhookEvent.Event).
const (
	EventExpiring        = "token.expiring"
	EventInactivating    = "token.inactivating"
	EventExpired         = "token.expired"
	EventInactivated     = "token.inactivated"
	EventDeleted         = "token.deleted"
	EventRevokedByReport = "token.revoked_by_report"
)

// WebhookEvent is one event in the outbox, as the sweeper node sends it.
// ID is the outbox entry's (AckWebhook); the rest is the JSON body's
// {"event","token","hint","at","reason"}.
type WebhookEvent struct {
	ID     string    `json:"-"`
	Event  string    `json:"event"`
	Token  string    `json:"token"`
	Hint   string    `json:"hint"`
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
}

// warnBefore is when, before a token stops working, its warnings go out.
func warnBefore() [2]time.Duration {
	return [...]time.Duration{7 * 24 * time.Hour, 24 * time.Hour}
}

func allowPrefix(id string) []byte      { return []byte(pfxAllow + id + "/") }
func allowKey(id, c string) []byte      { return []byte(pfxAllow + id + "/" + c) }
func warnedPrefix(id string) []byte     { return []byte(pfxWarned + id + "/") }
func outboxKeyOf(id string) []byte      { return []byte(pfxOutbox + id) }
func isZeroDigest(d secret.Digest) bool { return d == secret.Digest{} }

func warnedKey(id, event string, at time.Time) []byte {
	return []byte(pfxWarned + id + "/" + event + "/" + strconv.FormatInt(at.UnixNano(), 10))
}

// listAllowed is the token's allow-list, in key (string) order.
func listAllowed(txn Reader, id string) ([]string, error) {
	prefix := allowPrefix(id)
	it := txn.Scan(prefix, ScanOptions{KeysOnly: true})
	defer it.Close()
	var out []string
	for it.Next() {
		out = append(out, string(it.Key()[len(prefix):]))
	}
	return out, it.Err()
}

// getTokenByID is getToken with ErrNotFound for a missing token.
func (s *Store) getTokenByID(txn Reader, id string) (Token, error) {
	var t Token
	err := s.getToken(txn, id, &t)
	if errors.Is(err, ErrNoKey) {
		return t, fmt.Errorf("no token with id %s: %w", quote(id), ErrNotFound)
	}
	return t, err
}

// Rotate is RotateID for the token named name.
func (s *Store) Rotate(actor Actor, name string, grace time.Duration) (Created, error) {
	return s.rotate(actor, byName(name), grace)
}

// RotateID gives the token a new secret, returned once in Created (only its
// digest is stored), in one transaction. The current secret stays valid for
// grace (its digest becomes OldDigest until now+grace; 0 refuses it at once);
// an older secret still in its window is dropped at once, so a token has at
// most one old secret. Name, access, rules, state and usage stay. A negative
// grace is refused. Audit "rotate" with details grace=…. A token deleted
// since it was picked is a *GoneError (ErrNotFound).
func (s *Store) RotateID(actor Actor, id string, grace time.Duration) (Created, error) {
	if id == "" {
		return Created{}, fmt.Errorf("empty token id: %w", ErrNotFound)
	}
	return s.rotate(actor, tokenRef{id: id}, grace)
}

func (s *Store) rotate(actor Actor, ref tokenRef, grace time.Duration) (Created, error) {
	if err := ValidateGrace(grace); err != nil {
		return Created{}, err
	}
	sec, err := secret.Generate()
	if err != nil {
		return Created{}, err
	}
	now := s.now().UTC()
	var tok Token
	err = s.commit(func(txn Txn) ([]Change, error) {
		t, err := s.getRef(txn, ref)
		if err != nil {
			return nil, err
		}
		if !isZeroDigest(t.OldDigest) {
			if err := deleteDigest(txn, t.OldDigest, t.ID); err != nil {
				return nil, err
			}
		}
		t.OldDigest, t.OldHint, t.OldValidUntil = secret.Digest{}, "", time.Time{}
		if grace > 0 {
			t.OldDigest, t.OldHint, t.OldValidUntil = t.Digest, t.Hint, now.Add(grace)
		} else if err := deleteDigest(txn, t.Digest, t.ID); err != nil {
			return nil, err
		}
		t.Digest, t.Hint = sec.Digest(), sec.Hint()
		t.RotatedAt, t.UpdatedAt = now, now
		if err := txn.Set(digestKey(t.Digest), []byte(t.ID)); err != nil {
			return nil, err
		}
		if err := putToken(txn, &t); err != nil {
			return nil, err
		}
		tok = t
		err = s.addEvent(txn, now, actor, ActionRotate, t.Name, "grace="+formatDuration(grace))
		return []Change{tokenChange(ChangeToken, t)}, err
	})
	if err != nil {
		return Created{}, err
	}
	return Created{Token: tok, Secret: sec}, nil
}

// ErrInvalidGrace is matched by a refused rotation grace window.
var ErrInvalidGrace = errors.New("invalid grace window")

// MaxGrace bounds a rotation's grace window: an old secret that works for
// longer is not a rotation.
const MaxGrace = 365 * 24 * time.Hour

// ValidateGrace refuses a grace window below 0 or above MaxGrace
// (ErrInvalidGrace, field "grace").
func ValidateGrace(d time.Duration) error {
	if d < 0 {
		return fieldErr("grace", ErrInvalidGrace, "grace must not be negative")
	}
	if d > MaxGrace {
		return fieldErr("grace", ErrInvalidGrace, "a grace window is at most 365 days")
	}
	return nil
}

// ParseGrace reads a grace window as typed (the CLI's --grace, the TUI's
// prompt): a duration as ParseDuration reads it (24h, 90m, 7d, 0) within
// ValidateGrace. One-line errors matching ErrInvalidGrace.
func ParseGrace(s string) (time.Duration, error) {
	d, err := ParseDuration(s)
	if err != nil {
		return 0, fieldErr("grace", ErrInvalidGrace, "grace %s: want a duration such as 24h, 30m or 7d (0: the old secret stops at once)", quote(s))
	}
	return d, ValidateGrace(d)
}

// deleteDigest deletes the index key of d when it points to the token id.
func deleteDigest(txn Txn, d secret.Digest, id string) error {
	v, err := txn.Get(digestKey(d))
	if errors.Is(err, ErrNoKey) || err == nil && string(v) != id {
		return nil
	}
	if err != nil {
		return err
	}
	return txn.Delete(digestKey(d))
}

// MaxAllowed is the most entries a token's allow-list holds.
const MaxAllowed = 1000

// canonicalRanges parses addresses and CIDRs (cidr.Canonical), drops
// repeats, and refuses the whole list at the first bad one (field field,
// ErrInvalidIP). A single address must be a client's (not 0.0.0.0 or ::).
func canonicalRanges(field string, in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	seen := make(map[string]bool, len(in))
	for _, s := range in {
		c, err := cidr.Canonical(s)
		if errors.Is(err, cidr.ErrInvalid) {
			return nil, fieldErr(field, ErrInvalidIP, "%s is not an IP address or a CIDR (such as 192.0.2.7 or 192.0.2.0/24)", quote(s))
		}
		if err != nil {
			return nil, fieldErr(field, ErrInvalidIP, "%s: %v", quote(s), err)
		}
		if !strings.Contains(c, "/") {
			if c, err = ClientIP(c); err != nil {
				return nil, err
			}
		}
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	return out, nil
}

// SetAllowed is SetAllowedID for the token named name.
func (s *Store) SetAllowed(actor Actor, name string, cidrs []string, allow bool) (int, error) {
	return s.setAllowed(actor, byName(name), cidrs, allow)
}

// SetAllowedID adds (allow) or removes addresses and CIDRs to or from the
// token's allow-list in one transaction: a token with an allow-list is
// accepted only from inside it. Each entry is read by cidr.Canonical (host
// bits refused, a /32 or /128 is the address, IPv4-mapped is IPv4); one bad
// entry, an empty list, more than fit one transaction, or a list growing past
// MaxAllowed changes nothing. It returns how many entries changed; when any
// did, one ChangeAllowed carries the whole list. Audit "allow"/"disallow"
// with details cidr=…. A token deleted since it was picked is a *GoneError.
func (s *Store) SetAllowedID(actor Actor, id string, cidrs []string, allow bool) (int, error) {
	if id == "" {
		return 0, fmt.Errorf("empty token id: %w", ErrNotFound)
	}
	return s.setAllowed(actor, tokenRef{id: id}, cidrs, allow)
}

func (s *Store) setAllowed(actor Actor, ref tokenRef, cidrs []string, allow bool) (int, error) {
	if len(cidrs) == 0 {
		return 0, errors.New("no CIDRs given")
	}
	if max := s.chunk(opsPerAddress, bytesPerDelta); len(cidrs) > max {
		return 0, tooMany(max, "CIDRs", len(cidrs))
	}
	norm, err := canonicalRanges("cidr", cidrs)
	if err != nil {
		return 0, err
	}
	now := s.now().UTC()
	var n int
	err = s.commit(func(txn Txn) ([]Change, error) {
		n = 0
		t, err := s.getRef(txn, ref)
		if err != nil {
			return nil, err
		}
		id := t.ID
		have := make(map[string]bool, len(t.Allowed))
		for _, c := range t.Allowed {
			have[c] = true
		}
		var done []string
		for _, c := range norm {
			if have[c] == allow {
				continue
			}
			if allow {
				err = txn.Set(allowKey(id, c), nil)
			} else {
				err = txn.Delete(allowKey(id, c))
			}
			if err != nil {
				return nil, err
			}
			have[c] = allow
			done = append(done, c)
		}
		if len(done) == 0 {
			return nil, nil
		}
		list := make([]string, 0, len(have))
		for c, in := range have {
			if in {
				list = append(list, c)
			}
		}
		if len(list) > MaxAllowed {
			return nil, fieldErr("cidr", ErrTooMany, "at most %d allowed networks per token (this would make %d)", MaxAllowed, len(list))
		}
		sort.Strings(list)
		t.Allowed = list
		n = len(done)
		action := ActionDisallow
		if allow {
			action = ActionAllow
		}
		c := tokenChange(ChangeAllowed, t)
		c.Allowed = list
		return []Change{c}, s.addEvent(txn, now, actor, action, t.Name, "cidr="+strings.Join(done, ","))
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// Whois says which token a found secret is, by its digest: the token whose
// current secret it is (old false), or whose previous secret it is during or
// after a rotation's grace window, until the sweep forgets it (old true:
// compare t.OldValidAt to know whether it still works). ErrNotFound when none.
func (s *Store) Whois(d secret.Digest) (t Token, old bool, err error) {
	err = s.view(func(txn Reader) error {
		id, err := txn.Get(digestKey(d))
		if errors.Is(err, ErrNoKey) {
			return fmt.Errorf("no token has this secret: %w", ErrNotFound)
		}
		if err != nil {
			return err
		}
		t, err = s.getTokenByID(txn, string(id))
		return err
	})
	if err != nil {
		return Token{}, false, err
	}
	return t, t.Digest != d, nil
}

// RevokeByReport acts on a leak report (POST /revoke): the token whose
// current or previous secret has digest d is deactivated at once and its
// previous secret dropped, audited (revoked_by_report, actor apptokens,
// details ip=…) and, with Options.Webhooks, token.revoked_by_report is
// queued. found is whether any token had the digest; the caller must answer
// alike either way (no oracle). A token already inactive with no old secret
// is left as it is (nothing audited: a report repeated changes nothing).
func (s *Store) RevokeByReport(d secret.Digest, reporterIP string) (found bool, err error) {
	now := s.now().UTC()
	err = s.commit(func(txn Txn) ([]Change, error) {
		found = false
		id, err := txn.Get(digestKey(d))
		if errors.Is(err, ErrNoKey) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		t, err := s.getTokenByID(txn, string(id))
		if errors.Is(err, ErrNotFound) {
			return nil, nil
		} else if err != nil {
			return nil, err
		}
		found = true
		if !t.Active && isZeroDigest(t.OldDigest) {
			return nil, nil
		}
		if !isZeroDigest(t.OldDigest) {
			if err := deleteDigest(txn, t.OldDigest, t.ID); err != nil {
				return nil, err
			}
			t.OldDigest, t.OldHint, t.OldValidUntil = secret.Digest{}, "", time.Time{}
		}
		t.Active, t.UpdatedAt = false, now
		if err := putToken(txn, &t); err != nil {
			return nil, err
		}
		if err := s.addEvent(txn, now, Actor{User: SweepUser}, ActionRevokedByReport, t.Name, "ip="+Printable(reporterIP)); err != nil {
			return nil, err
		}
		if err := s.queue(txn, now, EventRevokedByReport, &t, now, "reported as leaked from "+Printable(reporterIP)); err != nil {
			return nil, err
		}
		return []Change{tokenChange(ChangeToken, t)}, nil
	})
	return found, err
}

// outboxKey orders outbox entries by time, then by the order this process
// wrote them; the ID is the key's hex after o/.
func (s *Store) outboxKey(t time.Time) (key []byte, id string) {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(t.UnixNano()))
	binary.BigEndian.PutUint64(b[8:], s.eventSeq.Add(1))
	id = hex.EncodeToString(b[:])
	return outboxKeyOf(id), id
}

// queue writes a webhook event for t to the outbox, when webhooks are on.
func (s *Store) queue(txn Writer, now time.Time, event string, t *Token, at time.Time, reason string) error {
	if !s.webhooks {
		return nil
	}
	key, _ := s.outboxKey(now)
	return setJSON(txn, key, WebhookEvent{Event: event, Token: t.Name, Hint: t.Hint, At: at.UTC(), Reason: reason})
}

// PendingWebhooks returns up to limit (all when limit <= 0) events of the
// outbox, oldest first, each with the ID to AckWebhook once sent. The outbox
// is shared by every node of an engine; the sweeper node sends.
func (s *Store) PendingWebhooks(limit int) ([]WebhookEvent, error) {
	var out []WebhookEvent
	err := s.view(func(txn Reader) error {
		it := txn.Scan([]byte(pfxOutbox), ScanOptions{})
		defer it.Close()
		for it.Next() {
			var e WebhookEvent
			if err := json.Unmarshal(it.Value(), &e); err != nil {
				return fmt.Errorf("outbox entry: %w", err)
			}
			e.ID = string(it.Key()[len(pfxOutbox):])
			out = append(out, e)
			if limit > 0 && len(out) >= limit {
				break
			}
		}
		return it.Err()
	})
	return out, err
}

// AckWebhook removes the event id from the outbox (sent, or given up). An
// unknown id is not an error (acked twice, or by another node).
func (s *Store) AckWebhook(id string) error {
	if id == "" || strings.Contains(id, "/") {
		return fmt.Errorf("invalid outbox id %s", quote(id))
	}
	return s.commit(func(txn Txn) ([]Change, error) {
		return nil, txn.Delete(outboxKeyOf(id))
	})
}

// SweepResult says what one Sweep did, by token name.
type SweepResult struct {
	Inactivated []string // unused past InactiveAfter (audit "expire")
	Expired     []string // past ExpiresAt, seen for the first time (audit "expired")
	Deleted     []string // unused past DeleteAfter (audit "auto-delete")
	RotationEnd []string // an old secret's grace window ended (audit "rotation-end")
	Warned      int      // warnings (7 d / 1 d before) marked done
}

// Changed reports whether the sweep changed any token.
func (r SweepResult) Changed() bool {
	return len(r.Inactivated)+len(r.Expired)+len(r.Deleted)+len(r.RotationEnd) > 0
}

// opsPerSweptToken bounds what the sweep reads and writes for one token: its
// record, name, last use, allow-list, four warning marks, two digests, audit
// events and outbox entries.
const opsPerSweptToken = 16

// Sweep applies the lifecycle rules at the store's clock: it deactivates
// tokens unused past InactiveAfter (audit "expire", as actor), notes tokens
// past ExpiresAt once (audit "expired"), deletes tokens unused past
// DeleteAfter (audit "auto-delete"), ends rotation grace windows (audit
// "rotation-end": the old digest and its index key go), and marks the
// warnings due (7 d and 1 d before a token expires or becomes inactive), each
// once (w/ keys). With Options.Webhooks, each event is queued in the outbox in
// the same transaction as its change. The store's own changes are by actor
// apptokens (SweepUser); actor is the inactivity's, as ExpireStale's was.
//
// Tokens are handled in chunks within the engine's limits, each a
// transaction published after its commit: when one fails, the earlier ones
// stay, the result says what they did, and the next sweep does the rest.
func (s *Store) Sweep(actor Actor) (SweepResult, error) {
	var res SweepResult
	now := s.now().UTC()
	inAfter, delAfter := s.InactiveAfter(), s.DeleteAfter()
	var ids []string
	err := s.view(func(txn Reader) error {
		warned, err := allWarned(txn)
		if err != nil {
			return err
		}
		return s.eachTokenByID(txn, func(t Token) error {
			if sweepDue(&t, now, inAfter, delAfter, func(k []byte) bool { return warned[string(k)] }) {
				ids = append(ids, t.ID)
			}
			return nil
		})
	})
	if err != nil {
		return res, err
	}
	var deleted []Change
	size := s.chunk(opsPerSweptToken, s.bytesPerToken())
	for len(ids) > 0 {
		chunk := ids[:min(size, len(ids))]
		ids = ids[len(chunk):]
		var part SweepResult
		var changed []Change
		err := s.commit(func(txn Txn) ([]Change, error) {
			part, changed = SweepResult{}, changed[:0]
			for _, id := range chunk {
				var t Token
				if err := s.getToken(txn, id, &t); errors.Is(err, ErrNoKey) {
					continue
				} else if err != nil {
					return nil, err
				}
				c, err := s.sweepToken(txn, actor, &t, now, inAfter, delAfter, &part)
				if err != nil {
					return nil, err
				}
				if c != nil {
					changed = append(changed, *c)
				}
			}
			return changed, nil
		})
		if err != nil {
			return res, fmt.Errorf("lifecycle sweep: %w", err)
		}
		res.Inactivated = append(res.Inactivated, part.Inactivated...)
		res.Expired = append(res.Expired, part.Expired...)
		res.Deleted = append(res.Deleted, part.Deleted...)
		res.RotationEnd = append(res.RotationEnd, part.RotationEnd...)
		res.Warned += part.Warned
		for _, c := range changed {
			if c.Kind == ChangeDeleted {
				deleted = append(deleted, c)
			}
		}
	}
	for _, c := range deleted {
		if err := s.clearTokenRecords(c.TokenID); err != nil {
			return res, fmt.Errorf("token %s auto-deleted, but clearing its usage records failed: %w", quote(c.Name), err)
		}
	}
	return res, nil
}

// allWarned is every w/ key, for the sweep's first pass.
func allWarned(txn Reader) (map[string]bool, error) {
	out := map[string]bool{}
	it := txn.Scan([]byte(pfxWarned), ScanOptions{KeysOnly: true})
	defer it.Close()
	for it.Next() {
		out[string(it.Key())] = true
	}
	return out, it.Err()
}

// warning is one warning due for a token: event at the instant when, about
// the token stopping at stop.
type warning struct {
	event string
	when  time.Time
	stop  time.Time
}

// warningsDue are the warnings due at now for a token stopping at stop
// (zero: never), most urgent last.
func warningsDue(event string, stop, now time.Time) []warning {
	if stop.IsZero() || !now.Before(stop) {
		return nil
	}
	var out []warning
	for _, b := range warnBefore() {
		if when := stop.Add(-b); !now.Before(when) {
			out = append(out, warning{event, when, stop})
		}
	}
	return out
}

// sweepDue reports whether the sweep has something to do for t; warned says
// whether a w/ key exists.
func sweepDue(t *Token, now time.Time, inAfter, delAfter time.Duration, warned func([]byte) bool) bool {
	if !isZeroDigest(t.OldDigest) && !now.Before(t.OldValidUntil) {
		return true
	}
	if at := t.DeleteAt(delAfter); !at.IsZero() && !now.Before(at) {
		return true
	}
	if t.ExpiredAt(now) {
		return !warned(warnedKey(t.ID, EventExpired, t.ExpiresAt))
	}
	if t.Expired(now, inAfter) {
		return true
	}
	for _, w := range append(warningsDue(EventExpiring, t.ExpiresAt, now), warningsDue(EventInactivating, t.InactiveAt(inAfter), now)...) {
		if !warned(warnedKey(t.ID, w.event, w.when)) {
			return true
		}
	}
	return false
}

// sweepToken applies the lifecycle rules to t (read in txn) and returns the
// change to publish, if any.
func (s *Store) sweepToken(txn Txn, actor Actor, t *Token, now time.Time, inAfter, delAfter time.Duration, res *SweepResult) (*Change, error) {
	me := Actor{User: SweepUser}
	dirty := false
	if !isZeroDigest(t.OldDigest) && !now.Before(t.OldValidUntil) {
		if err := deleteDigest(txn, t.OldDigest, t.ID); err != nil {
			return nil, err
		}
		until := t.OldValidUntil
		t.OldDigest, t.OldHint, t.OldValidUntil = secret.Digest{}, "", time.Time{}
		if err := s.addEvent(txn, now, me, ActionRotationEnd, t.Name, "old secret valid until "+until.Format(time.RFC3339)); err != nil {
			return nil, err
		}
		res.RotationEnd = append(res.RotationEnd, t.Name)
		dirty = true
	}
	if at := t.DeleteAt(delAfter); !at.IsZero() && !now.Before(at) {
		if err := s.deleteTokenKeys(txn, t); err != nil {
			return nil, err
		}
		if err := s.addEvent(txn, now, me, ActionAutoDelete, t.Name, "unused for "+formatDays(delAfter)); err != nil {
			return nil, err
		}
		if err := s.queue(txn, now, EventDeleted, t, at, "unused for "+formatDays(delAfter)); err != nil {
			return nil, err
		}
		res.Deleted = append(res.Deleted, t.Name)
		c := tokenChange(ChangeDeleted, *t)
		return &c, nil
	}
	mark := func(w warning, queue bool, reason string) (bool, error) {
		k := warnedKey(t.ID, w.event, w.when)
		if _, err := txn.Get(k); err == nil {
			return false, nil
		} else if !errors.Is(err, ErrNoKey) {
			return false, err
		}
		if err := txn.Set(k, nil); err != nil {
			return false, err
		}
		if !queue {
			return true, nil
		}
		return true, s.queue(txn, now, w.event, t, w.stop, reason)
	}
	switch {
	case t.ExpiredAt(now):
		did, err := mark(warning{EventExpired, t.ExpiresAt, t.ExpiresAt}, true, "expired")
		if err != nil {
			return nil, err
		}
		if did {
			if err := s.addEvent(txn, now, me, ActionExpired, t.Name, "expires="+t.ExpiresAt.Format(time.RFC3339)); err != nil {
				return nil, err
			}
			res.Expired = append(res.Expired, t.Name)
		}
	case t.Expired(now, inAfter):
		details := "unused for " + formatDays(inAfter)
		at := t.InactiveAt(inAfter)
		t.Active = false
		if err := s.addEvent(txn, now, actor, ActionExpire, t.Name, details); err != nil {
			return nil, err
		}
		if err := s.queue(txn, now, EventInactivated, t, at, details); err != nil {
			return nil, err
		}
		res.Inactivated = append(res.Inactivated, t.Name)
		dirty = true
	default:
		for _, ws := range [...][]warning{warningsDue(EventExpiring, t.ExpiresAt, now), warningsDue(EventInactivating, t.InactiveAt(inAfter), now)} {
			for i, w := range ws {
				// Only the most urgent due warning is sent; earlier ones
				// missed (the sweep did not run) are marked done.
				reason := "expires"
				if w.event == EventInactivating {
					reason = "unused for " + formatDays(inAfter)
				}
				did, err := mark(w, i == len(ws)-1, reason)
				if err != nil {
					return nil, err
				}
				if did {
					res.Warned++
				}
			}
		}
	}
	if !dirty {
		return nil, nil
	}
	t.UpdatedAt = now
	if err := putToken(txn, t); err != nil {
		return nil, err
	}
	c := tokenChange(ChangeToken, *t)
	return &c, nil
}

// deleteTokenKeys deletes a token's record and its small keys (indexes,
// last use, allow-list and warning marks are cleared after: clearTokenRecords).
func (s *Store) deleteTokenKeys(txn Txn, t *Token) error {
	keys := [][]byte{nameKey(t.Name), tokenKey(t.ID), lastUsedKey(t.ID)}
	if s.node != "" {
		keys = append(keys, s.myLastUsedKey(t.ID))
	}
	for _, k := range keys {
		if err := txn.Delete(k); err != nil {
			return err
		}
	}
	for _, d := range [...]secret.Digest{t.Digest, t.OldDigest} {
		if !isZeroDigest(d) {
			if err := deleteDigest(txn, d, t.ID); err != nil {
				return err
			}
		}
	}
	return nil
}

// clearTokenRecords deletes what a deleted token leaves, in bounded
// transactions: other nodes' last use, blocks, allow-list, warning marks,
// usage rows and history.
func (s *Store) clearTokenRecords(id string) error {
	for _, p := range [...][]byte{lastUsedNodePrefix(id), blockPrefix(id), allowPrefix(id), warnedPrefix(id), usagePrefix(id), hourTokenPrefix(id), hourIPTokenPrefix(id)} {
		if err := s.deletePrefix(p); err != nil {
			return err
		}
	}
	return nil
}

// allAllowed is every token's allow-list, by token ID, in one scan.
func allAllowed(txn Reader) (map[string][]string, error) {
	out := map[string][]string{}
	it := txn.Scan([]byte(pfxAllow), ScanOptions{KeysOnly: true})
	defer it.Close()
	for it.Next() {
		id, c, ok := strings.Cut(string(it.Key()[len(pfxAllow):]), "/")
		if ok {
			out[id] = append(out[id], c)
		}
	}
	return out, it.Err()
}

// mergeAllowed sets t.Allowed from its a/ keys.
func mergeAllowed(txn Reader, t *Token) error {
	var err error
	t.Allowed, err = listAllowed(txn, t.ID)
	return err
}

// allowedWalk reads the a/ keys alongside a walk of tokens in ID order.
type allowedWalk struct {
	it     Iterator
	ok     bool
	closed bool
}

func newAllowedWalk(txn Reader) *allowedWalk {
	w := &allowedWalk{it: txn.Scan([]byte(pfxAllow), ScanOptions{KeysOnly: true})}
	w.ok = w.it.Next()
	return w
}

// fill sets t.Allowed from the keys of t.ID, skipping those of IDs before it.
func (w *allowedWalk) fill(t *Token) {
	t.Allowed = nil
	for w.ok {
		rest := w.it.Key()[len(pfxAllow):]
		id, c, _ := bytes.Cut(rest, []byte("/"))
		switch cmp := bytes.Compare(id, []byte(t.ID)); {
		case cmp < 0:
		case cmp == 0:
			t.Allowed = append(t.Allowed, string(c))
		default:
			return
		}
		w.ok = w.it.Next()
	}
}

// close closes the scan once (it may be called again: a deferred close
// after the one that reads the error).
func (w *allowedWalk) close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	err := w.it.Err()
	w.it.Close()
	return err
}

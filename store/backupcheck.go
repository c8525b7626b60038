package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/apptokens/apptokens/internal/cidr"
	"github.com/apptokens/apptokens/internal/secret"
)

// backupChecker builds a BackupFile from records given in the file's order,
// checking each against the data rules, the order and what came before.
type backupChecker struct {
	b       *BackupFile
	section int // index in recordTypes of the last record's type; -1 before any
	policy  bool
	tokens  map[string]bool
	names   map[string]string        // lower(name) → token id
	digests map[secret.Digest]string // digest → token id
}

func newBackupChecker() *backupChecker {
	return &backupChecker{
		b:       &BackupFile{inactiveAfter: DefaultInactiveAfter, deleteAfter: DefaultDeleteAfter},
		section: -1,
		tokens:  map[string]bool{},
		names:   map[string]string{},
		digests: map[secret.Digest]string{},
	}
}

// addLine decodes one record line and adds it.
func (c *backupChecker) addLine(line []byte) error {
	m, err := objectKeys(line)
	if err != nil {
		return fmt.Errorf("not a JSON object: %w", jsonError(err))
	}
	var typ string
	if raw, ok := m["type"]; !ok || json.Unmarshal(raw, &typ) != nil {
		return errors.New(`a record without a "type"`)
	}
	fields, nullable, optional := recordFields(typ)
	if fields == nil {
		types := recordTypes()
		return fmt.Errorf("unknown record type %s (this apptokens knows %s)", quote(typ), strings.Join(types[:], ", "))
	}
	for k, v := range m {
		if k == "type" {
			continue
		}
		if !slices.Contains(fields, k) {
			return fmt.Errorf("%s record: unknown field %s", typ, quote(k))
		}
		if string(v) == "null" && !nullable[k] {
			return fmt.Errorf("%s record: field %s is null", typ, quote(k))
		}
	}
	for _, f := range fields {
		if _, ok := m[f]; !ok && !optional[f] {
			return fmt.Errorf("%s record: field %s is missing", typ, quote(f))
		}
	}
	switch typ {
	case recPolicy:
		var l policyLine
		if err := strictJSON(line, &l); err != nil {
			return fmt.Errorf("policy record: %w", jsonError(err))
		}
		d, err := time.ParseDuration(l.InactiveAfter)
		if err != nil || d < 0 {
			return fmt.Errorf("policy record: inactive_after %s is not a duration of 0 or more (such as 720h0m0s)", quote(l.InactiveAfter))
		}
		del := DefaultDeleteAfter
		if _, ok := m["delete_after"]; ok {
			if del, err = time.ParseDuration(l.DeleteAfter); err != nil || del < 0 {
				return fmt.Errorf("policy record: delete_after %s is not a duration of 0 or more (such as 2160h0m0s)", quote(l.DeleteAfter))
			}
		}
		if err := c.addPolicy(d); err != nil {
			return err
		}
		c.b.deleteAfter = del
		return nil
	case recToken:
		var l tokenLine
		if err := strictJSON(line, &l); err != nil {
			return fmt.Errorf("token record: %w", jsonError(err))
		}
		t := Token{
			ID: l.ID, Name: l.Name, Description: l.Description, Access: l.Access, Active: l.Active, Hint: l.Hint,
			CreatedAt: l.CreatedAt.Time, UpdatedAt: l.UpdatedAt.Time, ActivatedAt: l.ActivatedAt.Time, LastUsedAt: l.LastUsedAt.Time,
		}
		if err := t.Digest.UnmarshalText([]byte(l.Digest)); err != nil {
			return fmt.Errorf("token %s: digest %s is not 64 hex digits (the SHA-256 of the secret)", quote(l.ID), quote(l.Digest))
		}
		for _, f := range [...]struct {
			src *jsonTime
			dst *time.Time
		}{{l.ExpiresAt, &t.ExpiresAt}, {l.RotatedAt, &t.RotatedAt}, {l.OldValidUntil, &t.OldValidUntil}} {
			if f.src != nil {
				*f.dst = f.src.Time
			}
		}
		t.OldHint = l.OldHint
		if _, ok := m["old_digest"]; ok {
			if err := t.OldDigest.UnmarshalText([]byte(l.OldDigest)); err != nil || isZeroDigest(t.OldDigest) {
				return fmt.Errorf("token %s: old_digest %s is not 64 hex digits (the SHA-256 of the previous secret)", quote(l.ID), quote(l.OldDigest))
			}
		}
		return c.addToken(t)
	case recBlock:
		var l blockLine
		if err := strictJSON(line, &l); err != nil {
			return fmt.Errorf("block record: %w", jsonError(err))
		}
		return c.addBlock(blockRecord{TokenID: l.TokenID, IP: l.IP})
	case recAllow:
		var l allowLine
		if err := strictJSON(line, &l); err != nil {
			return fmt.Errorf("allow record: %w", jsonError(err))
		}
		return c.addAllow(blockRecord{TokenID: l.TokenID, IP: l.CIDR})
	case recWarned:
		var l warnedLine
		if err := strictJSON(line, &l); err != nil {
			return fmt.Errorf("warned record: %w", jsonError(err))
		}
		return c.addWarned(warnedRecord{TokenID: l.TokenID, Event: l.Event, At: l.At.Time})
	case recUsage:
		var l usageLine
		if err := strictJSON(line, &l); err != nil {
			return fmt.Errorf("usage record: %w", jsonError(err))
		}
		return c.addUsage(Usage{TokenID: l.TokenID, IP: l.IP, FirstUsedAt: l.FirstUsedAt.Time, LastUsedAt: l.LastUsedAt.Time, Allowed: l.Allowed, Denied: l.Denied})
	case recHour:
		var l hourLine
		if err := strictJSON(line, &l); err != nil {
			return fmt.Errorf("hour record: %w", jsonError(err))
		}
		h := hourRecord{TokenID: l.TokenID, Hour: l.Hour.Time, Allowed: l.Allowed, Denied: l.Denied}
		if l.IP != nil {
			if *l.IP == "" {
				return errors.New(`hour record: ip "" (leave it out for the token's bucket over all addresses)`)
			}
			h.IP = *l.IP
		}
		return c.addHour(h)
	default: // recEvent
		var l eventLine
		if err := strictJSON(line, &l); err != nil {
			return fmt.Errorf("event record: %w", jsonError(err))
		}
		return c.addEvent(Event{Time: l.Time.Time, Actor: l.Actor, Action: l.Action, Token: l.Token, Details: l.Details})
	}
}

// jsonError makes encoding/json's errors read as the user's: without the
// Go type names a *json.UnmarshalTypeError carries.
func jsonError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("field %s is a JSON %s, of the wrong kind", quote(te.Field), te.Value)
	}
	return err
}

// enter checks that a record of typ may come now (the sections' order).
func (c *backupChecker) enter(typ string) error {
	types := recordTypes()
	i := slices.Index(types[:], typ)
	if i < c.section {
		return fmt.Errorf("a %s record after the %s records (records go in the order %s)", typ, types[c.section], strings.Join(types[:], ", "))
	}
	c.section = i
	return nil
}

func (c *backupChecker) addPolicy(d time.Duration) error {
	if err := c.enter(recPolicy); err != nil {
		return err
	}
	if c.policy {
		return errors.New("a second policy record")
	}
	c.policy = true
	c.b.inactiveAfter = d
	return nil
}

func (c *backupChecker) addToken(t Token) error {
	if err := c.enter(recToken); err != nil {
		return err
	}
	if !validID(t.ID) {
		return fmt.Errorf("token id %s is not a token id (1 to 64 letters, digits, dashes or underscores)", quote(t.ID))
	}
	if n := len(c.b.tokens); n > 0 && t.ID <= c.b.tokens[n-1].ID {
		return fmt.Errorf("token %s after token %s: tokens go in ascending order of id, each once", t.ID, c.b.tokens[n-1].ID)
	}
	if err := checkTokenFields(t); err != nil {
		return fmt.Errorf("token %s: %w", t.ID, err)
	}
	low := strings.ToLower(t.Name)
	if other, ok := c.names[low]; ok {
		return fmt.Errorf("token %s: %w", t.ID, fieldErr("name", ErrNameTaken, "name %s is taken by token %s (names are unique, case ignored)", quote(t.Name), other))
	}
	if other, ok := c.digests[t.Digest]; ok {
		return fmt.Errorf("token %s: its secret's digest is token %s's too", t.ID, other)
	}
	if other, ok := c.digests[t.OldDigest]; ok && !isZeroDigest(t.OldDigest) {
		return fmt.Errorf("token %s: its previous secret's digest is token %s's too", t.ID, other)
	}
	if t.OldDigest == t.Digest {
		return fmt.Errorf("token %s: its previous secret's digest is its current one", t.ID)
	}
	c.names[low] = t.ID
	c.digests[t.Digest] = t.ID
	if !isZeroDigest(t.OldDigest) {
		c.digests[t.OldDigest] = t.ID
	}
	c.tokens[t.ID] = true
	t.Access = normalizeAccess(t.Access)
	c.b.tokens = append(c.b.tokens, t)
	return nil
}

// checkTokenFields checks a token's own fields (not its uniqueness).
func checkTokenFields(t Token) error {
	if err := validateFields(t.Name, t.Description, t.Access); err != nil {
		return err
	}
	if !validHint(t.Hint) {
		return fmt.Errorf("hint %s is not a token hint (%s… and the secret's last 4 characters)", quote(t.Hint), secret.Prefix)
	}
	if t.CreatedAt.IsZero() {
		return errors.New("created_at is missing")
	}
	if t.UpdatedAt.IsZero() {
		return errors.New("updated_at is missing")
	}
	// A previous secret comes whole: its digest, hint and end, or none of them.
	if old := !isZeroDigest(t.OldDigest); old != (t.OldHint != "") || old != !t.OldValidUntil.IsZero() {
		return errors.New("old_digest, old_hint and old_valid_until go together: all three or none")
	}
	if t.OldHint != "" && !validHint(t.OldHint) {
		return fmt.Errorf("old_hint %s is not a token hint (%s… and the secret's last 4 characters)", quote(t.OldHint), secret.Prefix)
	}
	return checkTimes(
		namedTime{"created_at", t.CreatedAt}, namedTime{"updated_at", t.UpdatedAt},
		namedTime{"activated_at", t.ActivatedAt}, namedTime{"last_used_at", t.LastUsedAt},
		namedTime{"expires_at", t.ExpiresAt}, namedTime{"rotated_at", t.RotatedAt}, namedTime{"old_valid_until", t.OldValidUntil})
}

type namedTime struct {
	name string
	t    time.Time
}

// checkTimes refuses a time (never is zero, and fine) that no store keeps:
// before 1970 or after 2261 (a time is kept in nanoseconds since 1970).
func checkTimes(times ...namedTime) error {
	for _, nt := range times {
		if nt.t.IsZero() {
			continue
		}
		if nt.t.UnixNano() <= 0 || nt.t.Year() > 2261 {
			return fmt.Errorf("%s %s is not between 1970 and 2261", nt.name, nt.t.UTC().Format(time.RFC3339Nano))
		}
	}
	return nil
}

// checkRef checks that a record of a token's address refers to a token given
// before it, and a normalized client address (ip "" allowed when anyIP).
func (c *backupChecker) checkRef(what, id, ip string, anyIP bool) error {
	if !c.tokens[id] {
		return fmt.Errorf("%s of token %s: no token with that id before it", what, quote(id))
	}
	if ip == "" && anyIP {
		return nil
	}
	if n, err := ClientIP(ip); err != nil {
		return fmt.Errorf("%s of token %s: %w", what, id, err)
	} else if n != ip {
		return fmt.Errorf("%s of token %s: %w", what, id, fieldErr("ip", ErrInvalidIP, "%s is written %s in a backup", quote(ip), quote(n)))
	}
	return nil
}

// checkRange checks that a block or allow record refers to a token given
// before it, and an address or CIDR written as the store keeps it
// (cidr.Canonical; a single address a client's).
func (c *backupChecker) checkRange(what, id, r string) error {
	if !strings.Contains(r, "/") {
		return c.checkRef(what, id, r, false)
	}
	if !c.tokens[id] {
		return fmt.Errorf("%s of token %s: no token with that id before it", what, quote(id))
	}
	if n, err := cidr.Canonical(r); err != nil {
		return fmt.Errorf("%s of token %s: %w", what, id, fieldErr("ip", ErrInvalidIP, "%s: %v", quote(r), err))
	} else if n != r {
		return fmt.Errorf("%s of token %s: %w", what, id, fieldErr("ip", ErrInvalidIP, "%s is written %s in a backup", quote(r), quote(n)))
	}
	return nil
}

func (c *backupChecker) addAllow(r blockRecord) error {
	if err := c.enter(recAllow); err != nil {
		return err
	}
	if err := c.checkRange("allow-list", r.TokenID, r.IP); err != nil {
		return err
	}
	if n := len(c.b.allows); n > 0 {
		if p := c.b.allows[n-1]; cmpPair(p.TokenID, p.IP, r.TokenID, r.IP) >= 0 {
			return fmt.Errorf("allow-list of token %s at %s out of order (after token %s at %s): allow records go in ascending order of token id, then cidr, each once", r.TokenID, r.IP, p.TokenID, p.IP)
		}
		if k := len(c.b.allows); k >= MaxAllowed && c.b.allows[k-MaxAllowed].TokenID == r.TokenID {
			return fmt.Errorf("allow-list of token %s: more than %d entries", r.TokenID, MaxAllowed)
		}
	}
	c.b.allows = append(c.b.allows, r)
	return nil
}

// warnedEvents are the events a warned record may name.
func warnedEvents() [4]string {
	return [...]string{EventExpiring, EventInactivating, EventExpired, EventInactivated}
}

func (c *backupChecker) addWarned(r warnedRecord) error {
	if err := c.enter(recWarned); err != nil {
		return err
	}
	if !c.tokens[r.TokenID] {
		return fmt.Errorf("warned of token %s: no token with that id before it", quote(r.TokenID))
	}
	events := warnedEvents()
	if !slices.Contains(events[:], r.Event) {
		return fmt.Errorf("warned of token %s: event %s is not one of %s", r.TokenID, quote(r.Event), strings.Join(events[:], ", "))
	}
	if r.At.IsZero() {
		return fmt.Errorf("warned of token %s: at is missing", r.TokenID)
	}
	if err := checkTimes(namedTime{"at", r.At}); err != nil {
		return fmt.Errorf("warned of token %s: %w", r.TokenID, err)
	}
	if n := len(c.b.warned); n > 0 && cmpWarned(c.b.warned[n-1], r) >= 0 {
		return fmt.Errorf("warned of token %s out of order: warned records go in ascending order of token id, event, then time, each once", r.TokenID)
	}
	c.b.warned = append(c.b.warned, r)
	return nil
}

func (c *backupChecker) addBlock(r blockRecord) error {
	if err := c.enter(recBlock); err != nil {
		return err
	}
	if err := c.checkRange("block", r.TokenID, r.IP); err != nil {
		return err
	}
	if n := len(c.b.blocks); n > 0 {
		if p := c.b.blocks[n-1]; cmpPair(p.TokenID, p.IP, r.TokenID, r.IP) >= 0 {
			return fmt.Errorf("block of token %s at %s out of order (after token %s at %s): blocks go in ascending order of token id, then address, each once", r.TokenID, r.IP, p.TokenID, p.IP)
		}
	}
	c.b.blocks = append(c.b.blocks, r)
	return nil
}

func (c *backupChecker) addUsage(u Usage) error {
	if err := c.enter(recUsage); err != nil {
		return err
	}
	if err := c.checkRef("usage", u.TokenID, u.IP, false); err != nil {
		return err
	}
	if n := len(c.b.usage); n > 0 {
		if p := c.b.usage[n-1]; cmpPair(p.TokenID, p.IP, u.TokenID, u.IP) >= 0 {
			return fmt.Errorf("usage of token %s from %s out of order (after token %s from %s): usage goes in ascending order of token id, then address, each once", u.TokenID, u.IP, p.TokenID, p.IP)
		}
	}
	if err := checkTimes(namedTime{"first_used_at", u.FirstUsedAt}, namedTime{"last_used_at", u.LastUsedAt}); err != nil {
		return fmt.Errorf("usage of token %s from %s: %w", u.TokenID, u.IP, err)
	}
	if u.FirstUsedAt.IsZero() != u.LastUsedAt.IsZero() || u.FirstUsedAt.After(u.LastUsedAt) {
		return fmt.Errorf("usage of token %s from %s: first_used_at is not at or before last_used_at", u.TokenID, u.IP)
	}
	c.b.usage = append(c.b.usage, u)
	return nil
}

func (c *backupChecker) addHour(h hourRecord) error {
	if err := c.enter(recHour); err != nil {
		return err
	}
	if err := c.checkRef("usage history", h.TokenID, h.IP, true); err != nil {
		return err
	}
	if _, ok := hourNum(h.Hour); !ok || h.Hour.IsZero() || !h.Hour.Equal(h.Hour.Truncate(time.Hour)) || checkTimes(namedTime{"hour", h.Hour}) != nil {
		return fmt.Errorf("usage history of token %s: %s is not the start of an hour between 1970 and 2261", h.TokenID, h.Hour.Format(time.RFC3339Nano))
	}
	if n := len(c.b.hours); n > 0 {
		if p := c.b.hours[n-1]; cmpHour(p, h) >= 0 {
			return fmt.Errorf("usage history: hour %s of token %s out of order: hours go in ascending order of token id, address (none first), then hour, each once", h.Hour.Format(time.RFC3339), h.TokenID)
		}
	}
	c.b.hours = append(c.b.hours, h)
	return nil
}

func (c *backupChecker) addEvent(e Event) error {
	if err := c.enter(recEvent); err != nil {
		return err
	}
	if e.Time.IsZero() {
		return errors.New("audit event: time is missing")
	}
	if err := checkTimes(namedTime{"event time", e.Time}); err != nil {
		return err
	}
	if n := len(c.b.events); n > 0 && e.Time.Before(c.b.events[n-1].Time) {
		return fmt.Errorf("audit event of %s after one of %s: events go in order of time", e.Time.Format(time.RFC3339Nano), c.b.events[n-1].Time.Format(time.RFC3339Nano))
	}
	if e.Action == "" {
		return errors.New("audit event: action is missing")
	}
	for _, f := range [...]struct{ name, v string }{{"actor", e.Actor}, {"action", e.Action}, {"token", e.Token}, {"details", e.Details}} {
		if Printable(f.v) != f.v {
			return fmt.Errorf("audit event of %s: %s holds control characters: %s", e.Time.Format(time.RFC3339Nano), f.name, quote(f.v))
		}
	}
	c.b.events = append(c.b.events, e)
	return nil
}

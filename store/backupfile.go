package store

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// The backup file (DESIGN "CLI contract"): JSON Lines, the same whatever the
// engine and however many nodes wrote the data, so that a backup of one
// engine restores into the other. The first line is exactly
//
//	{"format":"apptokens-backup","version":1}
//
// and every other line is one record, a JSON object whose "type" says what it
// is, in this order (a type's records in ascending order of what identifies
// them, each once):
//
//	policy  {"type":"policy","inactive_after":"720h0m0s"             (Go duration; 0s: off)
//	         [,"delete_after":"2160h0m0s"]}                            (absent: 2160h0m0s, 90 days)
//	token   {"type":"token","id","name","description","access":[…],"active",
//	         "digest" (hex SHA-256 of the secret: never the secret),"hint",
//	         "created_at","updated_at","activated_at","last_used_at"
//	         [,"expires_at"][,"rotated_at"]
//	         [,"old_digest","old_hint","old_valid_until"]}             by id
//	block   {"type":"block","token_id","ip"} (an address or a CIDR)   by token, ip
//	allow   {"type":"allow","token_id","cidr"} (an address or a CIDR) by token, cidr
//	warned  {"type":"warned","token_id","event","at"}                 by token, event, at
//	usage   {"type":"usage","token_id","ip","first_used_at","last_used_at",
//	         "allowed","denied"}                                      by token, ip
//	hour    {"type":"hour","token_id","ip" (absent: the token's bucket over all
//	         addresses),"hour","allowed","denied"}                    by token, ip, hour
//	event   {"type":"event","time","actor","action","token","details"} by time
//
// Times are RFC 3339 in UTC with as many fractional digits as they have (up
// to nanoseconds), null for never. Usage kept per node (etcd) is written
// merged: one usage record per (token, address), counts added, first use the
// earliest, last use the latest; hours likewise. Records that refer to a token
// come after it. A backup read back and written again is the same bytes.
//
// The lifecycle (issue 11) added, within version 1, only what a reader of
// version 1 before it never saw in a file of a store without lifecycle data:
// the optional fields above (written only when set: delete_after when not
// the default, a token's expiry, rotation and old secret when it has them) and
// the allow and warned records (a token's allow-list; the lifecycle events
// done once, so that a restored store does not audit or send them again).
// A backup of a store that uses none of it is the same bytes as before; one
// that does is refused by an older reader with a line naming the field or
// record type, never read in part. The webhook outbox is not backed up: it
// holds deliveries of the store's past, not its data.

// BackupVersion is the version of the backup format this code writes and the
// newest it reads.
const BackupVersion = 1

// MaxBackupLine is the longest line a backup may have, in bytes (newline not
// counted): a record is at most a few kilobytes (a 1,024-character
// description, an audit event naming up to MaxBatch addresses), so a longer
// line is not a backup's; it is refused, never cut.
const MaxBackupLine = 1 << 20

const backupFormat = "apptokens-backup"

// backupHeader is the first line of a backup.
type backupHeader struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
}

// Record types, and the order their sections have in a file.
const (
	recPolicy = "policy"
	recToken  = "token"
	recBlock  = "block"
	recAllow  = "allow"
	recWarned = "warned"
	recUsage  = "usage"
	recHour   = "hour"
	recEvent  = "event"
)

func recordTypes() [8]string {
	return [...]string{recPolicy, recToken, recBlock, recAllow, recWarned, recUsage, recHour, recEvent}
}

// BackupError is a refused backup: Where it is refused ("line 17", or "" for
// the file as a whole) and why. It matches ErrInvalidBackup (errors.Is), and
// the rule's own sentinel (ErrInvalidName, ErrNameTaken, …) when one was
// broken. Its text is one line with control characters escaped.
type BackupError struct {
	Where string
	Err   error
}

func (e *BackupError) Error() string {
	where := "backup"
	if e.Where != "" {
		where += " " + e.Where
	}
	return where + ": " + Printable(e.Err.Error())
}

// Unwrap gives ErrInvalidBackup and the cause.
func (e *BackupError) Unwrap() []error { return []error{ErrInvalidBackup, e.Err} }

// BackupFile is the content of a backup: every record, checked against the
// data rules (when read) and in the file's order.
type BackupFile struct {
	inactiveAfter time.Duration
	deleteAfter   time.Duration
	tokens        []Token // LastUsedAt is the token's latest use
	blocks        []blockRecord
	allows        []blockRecord // IP is the allowed address or CIDR
	warned        []warnedRecord
	usage         []Usage // Blocked unused: blocks are their own records
	hours         []hourRecord
	events        []Event
}

type blockRecord struct{ TokenID, IP string }

// warnedRecord is a lifecycle event done once (a w/ key): Event at At.
type warnedRecord struct {
	TokenID, Event string
	At             time.Time
}

// hourRecord is an hourly bucket: of the token over all addresses when IP is "".
type hourRecord struct {
	TokenID, IP     string
	Hour            time.Time
	Allowed, Denied uint64
}

// Tokens is how many tokens the backup holds.
func (b *BackupFile) Tokens() int { return len(b.tokens) }

// sort puts the records in the file's order (stable for events of one time).
func (b *BackupFile) sort() {
	slices.SortFunc(b.tokens, func(x, y Token) int { return strings.Compare(x.ID, y.ID) })
	slices.SortFunc(b.blocks, func(x, y blockRecord) int { return cmpPair(x.TokenID, x.IP, y.TokenID, y.IP) })
	slices.SortFunc(b.allows, func(x, y blockRecord) int { return cmpPair(x.TokenID, x.IP, y.TokenID, y.IP) })
	slices.SortFunc(b.warned, cmpWarned)
	slices.SortFunc(b.usage, func(x, y Usage) int { return cmpPair(x.TokenID, x.IP, y.TokenID, y.IP) })
	slices.SortFunc(b.hours, cmpHour)
	slices.SortStableFunc(b.events, func(x, y Event) int { return x.Time.Compare(y.Time) })
}

func cmpPair(a1, a2, b1, b2 string) int {
	if c := strings.Compare(a1, b1); c != 0 {
		return c
	}
	return strings.Compare(a2, b2)
}

func cmpWarned(x, y warnedRecord) int {
	if c := cmpPair(x.TokenID, x.Event, y.TokenID, y.Event); c != 0 {
		return c
	}
	return x.At.Compare(y.At)
}

func cmpHour(x, y hourRecord) int {
	if c := cmpPair(x.TokenID, x.IP, y.TokenID, y.IP); c != 0 {
		return c
	}
	return x.Hour.Compare(y.Hour)
}

// The lines of a file, field by field in the order they are written.
type (
	policyLine struct {
		Type          string `json:"type"`
		InactiveAfter string `json:"inactive_after"`
		DeleteAfter   string `json:"delete_after,omitempty"`
	}
	tokenLine struct {
		Type        string   `json:"type"`
		ID          string   `json:"id"`
		Name        string   `json:"name"`
		Description string   `json:"description"`
		Access      []Access `json:"access"`
		Active      bool     `json:"active"`
		Digest      string   `json:"digest"`
		Hint        string   `json:"hint"`
		CreatedAt   jsonTime `json:"created_at"`
		UpdatedAt   jsonTime `json:"updated_at"`
		ActivatedAt jsonTime `json:"activated_at"`
		LastUsedAt  jsonTime `json:"last_used_at"`
		// Lifecycle: absent when not set.
		ExpiresAt     *jsonTime `json:"expires_at,omitempty"`
		RotatedAt     *jsonTime `json:"rotated_at,omitempty"`
		OldDigest     string    `json:"old_digest,omitempty"`
		OldHint       string    `json:"old_hint,omitempty"`
		OldValidUntil *jsonTime `json:"old_valid_until,omitempty"`
	}
	allowLine struct {
		Type    string `json:"type"`
		TokenID string `json:"token_id"`
		CIDR    string `json:"cidr"`
	}
	warnedLine struct {
		Type    string   `json:"type"`
		TokenID string   `json:"token_id"`
		Event   string   `json:"event"`
		At      jsonTime `json:"at"`
	}
	blockLine struct {
		Type    string `json:"type"`
		TokenID string `json:"token_id"`
		IP      string `json:"ip"`
	}
	usageLine struct {
		Type        string   `json:"type"`
		TokenID     string   `json:"token_id"`
		IP          string   `json:"ip"`
		FirstUsedAt jsonTime `json:"first_used_at"`
		LastUsedAt  jsonTime `json:"last_used_at"`
		Allowed     uint64   `json:"allowed"`
		Denied      uint64   `json:"denied"`
	}
	hourLine struct {
		Type    string   `json:"type"`
		TokenID string   `json:"token_id"`
		IP      *string  `json:"ip,omitempty"`
		Hour    jsonTime `json:"hour"`
		Allowed uint64   `json:"allowed"`
		Denied  uint64   `json:"denied"`
	}
	eventLine struct {
		Type    string   `json:"type"`
		Time    jsonTime `json:"time"`
		Actor   string   `json:"actor"`
		Action  string   `json:"action"`
		Token   string   `json:"token"`
		Details string   `json:"details"`
	}
)

// recordFields are the fields of a record type: those that may be null (times
// never set) and those that may be absent; every other field must be there.
func recordFields(typ string) (fields []string, nullable, optional map[string]bool) {
	switch typ {
	case recPolicy:
		return []string{"inactive_after", "delete_after"}, nil, map[string]bool{"delete_after": true}
	case recToken:
		return []string{"id", "name", "description", "access", "active", "digest", "hint", "created_at", "updated_at", "activated_at", "last_used_at",
				"expires_at", "rotated_at", "old_digest", "old_hint", "old_valid_until"},
			map[string]bool{"activated_at": true, "last_used_at": true, "expires_at": true, "rotated_at": true, "old_valid_until": true},
			map[string]bool{"expires_at": true, "rotated_at": true, "old_digest": true, "old_hint": true, "old_valid_until": true}
	case recAllow:
		return []string{"token_id", "cidr"}, nil, nil
	case recWarned:
		return []string{"token_id", "event", "at"}, nil, nil
	case recBlock:
		return []string{"token_id", "ip"}, nil, nil
	case recUsage:
		return []string{"token_id", "ip", "first_used_at", "last_used_at", "allowed", "denied"},
			map[string]bool{"first_used_at": true, "last_used_at": true}, nil
	case recHour:
		return []string{"token_id", "ip", "hour", "allowed", "denied"}, nil, map[string]bool{"ip": true}
	case recEvent:
		return []string{"time", "actor", "action", "token", "details"}, nil, nil
	}
	return nil, nil, nil
}

// jsonTime is a time as a backup writes it: RFC 3339 in UTC, null when zero.
type jsonTime struct{ time.Time }

func (t jsonTime) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return []byte(`"` + t.UTC().Format(time.RFC3339Nano) + `"`), nil
}

func (t *jsonTime) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		t.Time = time.Time{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New("a time must be an RFC 3339 string or null")
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("%s is not an RFC 3339 time", quote(s))
	}
	t.Time = v.UTC()
	return nil
}

// WriteTo writes the backup file: the header, then every record, one a line.
func (b *BackupFile) WriteTo(w io.Writer) (int64, error) {
	cw := &countingWriter{w: w}
	bw := bufio.NewWriterSize(cw, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false) // descriptions stay readable: <, > and & as they are
	err := b.encode(enc)
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return cw.n, fmt.Errorf("backup: %w", err)
	}
	return cw.n, nil
}

func (b *BackupFile) encode(enc *json.Encoder) error {
	if err := enc.Encode(backupHeader{Format: backupFormat, Version: BackupVersion}); err != nil {
		return err
	}
	pl := policyLine{Type: recPolicy, InactiveAfter: b.inactiveAfter.String()}
	if b.deleteAfter != DefaultDeleteAfter {
		pl.DeleteAfter = b.deleteAfter.String()
	}
	if err := enc.Encode(pl); err != nil {
		return err
	}
	optTime := func(t time.Time) *jsonTime {
		if t.IsZero() {
			return nil
		}
		return &jsonTime{t}
	}
	for _, t := range b.tokens {
		l := tokenLine{
			Type: recToken, ID: t.ID, Name: t.Name, Description: t.Description,
			Access: normalizeAccess(t.Access), Active: t.Active, Digest: fmt.Sprintf("%x", t.Digest[:]), Hint: t.Hint,
			CreatedAt: jsonTime{t.CreatedAt}, UpdatedAt: jsonTime{t.UpdatedAt},
			ActivatedAt: jsonTime{t.ActivatedAt}, LastUsedAt: jsonTime{t.LastUsedAt},
			ExpiresAt: optTime(t.ExpiresAt), RotatedAt: optTime(t.RotatedAt),
		}
		if !isZeroDigest(t.OldDigest) {
			l.OldDigest, l.OldHint, l.OldValidUntil = fmt.Sprintf("%x", t.OldDigest[:]), t.OldHint, &jsonTime{t.OldValidUntil}
		}
		if err := enc.Encode(l); err != nil {
			return err
		}
	}
	for _, r := range b.blocks {
		if err := enc.Encode(blockLine{Type: recBlock, TokenID: r.TokenID, IP: r.IP}); err != nil {
			return err
		}
	}
	for _, r := range b.allows {
		if err := enc.Encode(allowLine{Type: recAllow, TokenID: r.TokenID, CIDR: r.IP}); err != nil {
			return err
		}
	}
	for _, r := range b.warned {
		if err := enc.Encode(warnedLine{Type: recWarned, TokenID: r.TokenID, Event: r.Event, At: jsonTime{r.At}}); err != nil {
			return err
		}
	}
	for _, u := range b.usage {
		if err := enc.Encode(usageLine{
			Type: recUsage, TokenID: u.TokenID, IP: u.IP,
			FirstUsedAt: jsonTime{u.FirstUsedAt}, LastUsedAt: jsonTime{u.LastUsedAt},
			Allowed: u.Allowed, Denied: u.Denied,
		}); err != nil {
			return err
		}
	}
	for _, h := range b.hours {
		l := hourLine{Type: recHour, TokenID: h.TokenID, Hour: jsonTime{h.Hour}, Allowed: h.Allowed, Denied: h.Denied}
		if h.IP != "" {
			l.IP = &h.IP
		}
		if err := enc.Encode(l); err != nil {
			return err
		}
	}
	for _, e := range b.events {
		if err := enc.Encode(eventLine{Type: recEvent, Time: jsonTime{e.Time}, Actor: e.Actor, Action: e.Action, Token: e.Token, Details: e.Details}); err != nil {
			return err
		}
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// LegacyReader reads a backup of the previous release's format (Badger's own
// stream, as its DB.Backup writes it) and calls fn with each live key and its
// value, in key order. store/badger.ReadLegacyBackup is the one; the domain
// cannot read that format itself without linking Badger.
type LegacyReader func(r io.Reader, fn func(key, value []byte) error) error

// ReadBackup reads a whole backup and checks every record against the data
// rules; nothing is written anywhere. It reads this format, and, through
// legacy (nil: refused), a backup of the previous release, told apart by its
// first bytes. A refused backup is a *BackupError (errors.Is ErrInvalidBackup)
// that says where and why in one line; an error reading r is returned wrapped
// as it is.
func ReadBackup(r io.Reader, legacy LegacyReader) (*BackupFile, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(8)
	if len(head) == 0 {
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read backup: %w", err)
		}
		return nil, &BackupError{Err: errors.New("the file is empty")}
	}
	if isLegacyBackup(head) {
		if legacy == nil {
			return nil, &BackupError{Err: errors.New("not an apptokens backup of this format, and this program reads no older one")}
		}
		return readLegacyBackup(br, legacy)
	}
	return readBackupLines(br)
}

// isLegacyBackup tells Badger's stream (frames that start with their size, a
// little-endian uint64 of at most a few hundred megabytes) from a backup
// file, whose first eight bytes are `{"format` (as a size, 8e18 bytes).
func isLegacyBackup(head []byte) bool {
	if len(head) < 8 || head[0] == '{' {
		return false
	}
	var size uint64
	for i := 7; i >= 0; i-- {
		size = size<<8 | uint64(head[i])
	}
	return size <= 1<<30
}

// readBackupLines reads a backup file, checking each record as it comes.
func readBackupLines(br *bufio.Reader) (*BackupFile, error) {
	lr := lineReader{r: br}
	line, err := lr.next()
	if err != nil {
		// Whatever is wrong with it, a first line that is no header says
		// more: the file is not a backup at all.
		if len(lr.buf) > 0 && checkHeader(bytes.TrimSuffix(lr.buf, []byte("\n"))) != nil {
			return nil, checkHeader(lr.buf)
		}
		return nil, err
	}
	if err := checkHeader(line); err != nil {
		return nil, err
	}
	c := newBackupChecker()
	for {
		line, err := lr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if err := c.addLine(line); err != nil {
			return nil, &BackupError{Where: fmt.Sprintf("line %d", lr.n), Err: err}
		}
	}
	return c.b, nil
}

// lineReader reads the lines of a backup, each whole and of at most
// MaxBackupLine bytes.
type lineReader struct {
	r   *bufio.Reader
	n   int // the number of the line last read
	buf []byte
}

// next returns the next line without its newline; io.EOF after the last.
func (l *lineReader) next() ([]byte, error) {
	l.buf = l.buf[:0]
	for {
		part, err := l.r.ReadSlice('\n')
		if len(l.buf)+len(part) > MaxBackupLine+1 {
			return nil, &BackupError{Where: fmt.Sprintf("line %d", l.n+1), Err: fmt.Errorf("longer than %d bytes: not a backup's record", MaxBackupLine)}
		}
		l.buf = append(l.buf, part...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) {
			if len(l.buf) == 0 {
				return nil, io.EOF
			}
			return nil, &BackupError{Where: fmt.Sprintf("line %d", l.n+1), Err: errors.New("the file ends inside this line (no newline after it): truncated")}
		}
		if err != nil {
			return nil, fmt.Errorf("read backup: %w", err)
		}
		l.n++
		line := l.buf[:len(l.buf)-1]
		if len(bytes.TrimSpace(line)) == 0 {
			return nil, &BackupError{Where: fmt.Sprintf("line %d", l.n), Err: errors.New("is empty")}
		}
		return line, nil
	}
}

func checkHeader(line []byte) error {
	bad := &BackupError{Where: "line 1", Err: fmt.Errorf(`not an apptokens backup: the first line must be {"format":%q,"version":%d}`, backupFormat, BackupVersion)}
	var h backupHeader
	if err := strictJSON(line, &h); err != nil || h.Format != backupFormat {
		return bad
	}
	if fields, err := objectKeys(line); err != nil || len(fields) != 2 {
		return bad
	}
	if h.Version > BackupVersion {
		return &BackupError{Err: fmt.Errorf("version %d is newer than this apptokens reads (%d)", h.Version, BackupVersion)}
	}
	if h.Version < 1 {
		return &BackupError{Where: "line 1", Err: fmt.Errorf("version %d is not a backup version", h.Version)}
	}
	return nil
}

// objectKeys decodes a JSON object's fields, values undecoded.
func objectKeys(line []byte) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(line, &m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errors.New("not a JSON object")
	}
	return m, nil
}

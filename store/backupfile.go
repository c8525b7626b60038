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

	"github.com/apptokens/apptokens/internal/secret"
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
//	policy  {"type":"policy","inactive_after":"720h0m0s"}           (Go duration; 0s: off)
//	token   {"type":"token","id","name","description","access":[…],"active",
//	         "digest" (hex SHA-256 of the secret: never the secret),"hint",
//	         "created_at","updated_at","activated_at","last_used_at"}  by id
//	block   {"type":"block","token_id","ip"}                          by token, ip
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
	recUsage  = "usage"
	recHour   = "hour"
	recEvent  = "event"
)

func recordTypes() [6]string {
	return [...]string{recPolicy, recToken, recBlock, recUsage, recHour, recEvent}
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
	tokens        []Token // LastUsedAt is the token's latest use
	blocks        []blockRecord
	usage         []Usage // Blocked unused: blocks are their own records
	hours         []hourRecord
	events        []Event
}

type blockRecord struct{ TokenID, IP string }

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
		return []string{"inactive_after"}, nil, nil
	case recToken:
		return []string{"id", "name", "description", "access", "active", "digest", "hint", "created_at", "updated_at", "activated_at", "last_used_at"},
			map[string]bool{"activated_at": true, "last_used_at": true}, nil
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
	if err := enc.Encode(policyLine{Type: recPolicy, InactiveAfter: b.inactiveAfter.String()}); err != nil {
		return err
	}
	for _, t := range b.tokens {
		if err := enc.Encode(tokenLine{
			Type: recToken, ID: t.ID, Name: t.Name, Description: t.Description,
			Access: normalizeAccess(t.Access), Active: t.Active, Digest: fmt.Sprintf("%x", t.Digest[:]), Hint: t.Hint,
			CreatedAt: jsonTime{t.CreatedAt}, UpdatedAt: jsonTime{t.UpdatedAt},
			ActivatedAt: jsonTime{t.ActivatedAt}, LastUsedAt: jsonTime{t.LastUsedAt},
		}); err != nil {
			return err
		}
	}
	for _, r := range b.blocks {
		if err := enc.Encode(blockLine{Type: recBlock, TokenID: r.TokenID, IP: r.IP}); err != nil {
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
		b:       &BackupFile{inactiveAfter: DefaultInactiveAfter},
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
		return c.addPolicy(d)
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
		return c.addToken(t)
	case recBlock:
		var l blockLine
		if err := strictJSON(line, &l); err != nil {
			return fmt.Errorf("block record: %w", jsonError(err))
		}
		return c.addBlock(blockRecord{TokenID: l.TokenID, IP: l.IP})
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
	c.names[low] = t.ID
	c.digests[t.Digest] = t.ID
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
	return checkTimes(
		namedTime{"created_at", t.CreatedAt}, namedTime{"updated_at", t.UpdatedAt},
		namedTime{"activated_at", t.ActivatedAt}, namedTime{"last_used_at", t.LastUsedAt})
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

func (c *backupChecker) addBlock(r blockRecord) error {
	if err := c.enter(recBlock); err != nil {
		return err
	}
	if err := c.checkRef("block", r.TokenID, r.IP, false); err != nil {
		return err
	}
	if n := len(c.b.blocks); n > 0 {
		if p := c.b.blocks[n-1]; cmpPair(p.TokenID, p.IP, r.TokenID, r.IP) >= 0 {
			return fmt.Errorf("block of token %s at %s after that of %s at %s: blocks go in ascending order of token id, then address, each once", r.TokenID, r.IP, p.TokenID, p.IP)
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
			return fmt.Errorf("usage of token %s from %s after that from %s of %s: usage goes in ascending order of token id, then address, each once", u.TokenID, u.IP, p.IP, p.TokenID)
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
	if err := c.checkRef("hour", h.TokenID, h.IP, true); err != nil {
		return err
	}
	if _, ok := hourNum(h.Hour); !ok || h.Hour.IsZero() || !h.Hour.Equal(h.Hour.Truncate(time.Hour)) || checkTimes(namedTime{"hour", h.Hour}) != nil {
		return fmt.Errorf("hour of token %s: %s is not the start of an hour between 1970 and 2261", h.TokenID, h.Hour.Format(time.RFC3339Nano))
	}
	if n := len(c.b.hours); n > 0 {
		if p := c.b.hours[n-1]; cmpHour(p, h) >= 0 {
			return fmt.Errorf("hour %s of token %s out of order: hours go in ascending order of token id, address (none first), then hour, each once", h.Hour.Format(time.RFC3339), h.TokenID)
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
		return errors.New("event: time is missing")
	}
	if err := checkTimes(namedTime{"event time", e.Time}); err != nil {
		return err
	}
	if n := len(c.b.events); n > 0 && e.Time.Before(c.b.events[n-1].Time) {
		return fmt.Errorf("event of %s after one of %s: events go in order of time", e.Time.Format(time.RFC3339Nano), c.b.events[n-1].Time.Format(time.RFC3339Nano))
	}
	if e.Action == "" {
		return errors.New("event: action is missing")
	}
	for _, f := range [...]struct{ name, v string }{{"actor", e.Actor}, {"action", e.Action}, {"token", e.Token}, {"details", e.Details}} {
		if Printable(f.v) != f.v {
			return fmt.Errorf("event of %s: %s holds control characters: %s", e.Time.Format(time.RFC3339Nano), f.name, quote(f.v))
		}
	}
	c.b.events = append(c.b.events, e)
	return nil
}

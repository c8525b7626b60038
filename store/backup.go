package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/apptokens/apptokens/internal/secret"
)

// ErrInvalidBackup is matched (errors.Is) by a restore refused because the
// backup breaks a data rule or is not a backup at all.
var ErrInvalidBackup = errors.New("invalid backup")

// streamEngine is an engine that offers the Badger backup stream (the Badger
// engine does): the backup format until the engine-independent one.
type streamEngine interface {
	BackupStream(w io.Writer) error
	ReadStream(r io.Reader, fn func(Reader) error) error
}

// roomChecker is an engine that can tell ahead whether a step writing extra
// bytes more than a change fits (the Badger engine's space guard).
type roomChecker interface {
	RoomFor(extra int64, what string) error
}

// errNoStream refuses a backup or restore on an engine without the stream.
func (s *Store) errNoStream() error {
	return fmt.Errorf("backup and restore of the %s are not supported yet", s.eng)
}

// Backup writes a full backup (tokens, usage, usage history, audit, policy) to w.
func (s *Store) Backup(w io.Writer) error {
	se, ok := s.eng.(streamEngine)
	if !ok {
		return s.errNoStream()
	}
	if err := se.BackupStream(w); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

// Restore loads a backup made by Backup. It refuses a database that already holds
// tokens unless replace is set, in which case the backup replaces everything.
//
// A backup is a file from outside: it is loaded into a scratch in-memory
// database and every record checked against the data rules (names, descriptions,
// access, indexes, IPs, audit text) before the store is touched. A refused
// backup (ErrInvalidBackup) leaves the store exactly as it was; the error names
// the first bad record.
//
// The restore is atomic: the new data is written whole through the engine's
// Replace (with replace unset, the store's own records first, the backup's
// over them; a backup of an older layout migrated on the way). A failure at
// any point leaves the old data whole and in use. Other writers of this
// process wait while the new data is written; readers go on.
func (s *Store) Restore(actor Actor, r io.Reader, replace bool) error {
	se, ok := s.eng.(streamEngine)
	if !ok {
		return s.errNoStream()
	}
	// Refuse early, before reading the backup, when the store is not empty.
	if err := s.restoreAllowed(replace); err != nil {
		return err
	}
	// Reading the backup (over SSH: the session's stdin, which may stall) and
	// checking it happen without holding writers back.
	backup := &countingReader{r: r}
	err := se.ReadStream(backup, func(scratch Reader) error {
		orphans, layout, err := checkBackup(scratch)
		if err != nil {
			return err
		}
		// From here to the switch, no write may slip in: it would be lost.
		s.writeMu.Lock()
		defer s.writeMu.Unlock()
		if err := s.restoreAllowed(replace); err != nil {
			return err
		}
		// The restored data is written beside the old one: room for its
		// logs and for twice the backup's bytes, or no start.
		if rc, ok := s.eng.(roomChecker); ok {
			if err := rc.RoomFor(2*backup.n, "a restore"); err != nil {
				return fmt.Errorf("restore: %w (the database is as it was)", err)
			}
		}
		if err := s.eng.Replace(func(w Writer) error {
			return s.fillFresh(w, scratch, orphans, layout, actor, replace)
		}); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := s.loadPolicy(); err != nil {
		return err
	}
	s.prunedHour.Store(0) // the backup's history may be older: the next sweep prunes it
	if s.shared == nil {
		// A shared engine's Replace resets every process's watch.
		s.feed.publish(Change{Kind: ChangeReload})
	}
	return nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// fillFresh writes the restored data to w: without replace, the store's own
// records (an empty store can still hold its audit trail and policy); then the
// backup's checked records but orphans, migrated when the backup is of an
// older layout (layout false); then the layout key and the restore's audit
// event.
func (s *Store) fillFresh(w Writer, scratch Reader, orphans map[string]bool, layout bool, actor Actor, replace bool) error {
	written := 0
	cw := &hookWriter{w: w, written: &written, hook: s.restoreHook}
	if !replace {
		// All but the layout key: the backup's says whether it needs migrating.
		err := s.view(func(txn Reader) error {
			return copyRecords(txn, cw, map[string]bool{keyLayout: true})
		})
		if err != nil {
			return err
		}
	}
	// scratch is ours alone: what was checked is what is copied.
	if err := copyRecords(scratch, cw, orphans); err != nil {
		return err
	}
	if !layout {
		if err := migrateRecords(scratch, w, orphans); err != nil {
			return err
		}
	}
	if err := w.Set([]byte(keyLayout), []byte(layoutVersion)); err != nil {
		return err
	}
	now := s.now().UTC()
	return s.addEvent(w, now, actor, ActionRestore, "", "")
}

// hookWriter counts the records written through it, calling hook (tests)
// before each.
type hookWriter struct {
	w       Writer
	written *int
	hook    func(int) error
}

func (h *hookWriter) Set(key, value []byte) error {
	if h.hook != nil {
		if err := h.hook(*h.written); err != nil {
			return err
		}
	}
	*h.written++
	return h.w.Set(key, value)
}

func (h *hookWriter) Delete(key []byte) error { return h.w.Delete(key) }

// restoreAllowed refuses a restore over tokens unless replace is set. It counts
// keys only: no token is decoded.
func (s *Store) restoreAllowed(replace bool) error {
	if replace {
		return nil
	}
	n := 0
	err := s.view(func(txn Reader) error {
		it := txn.Scan([]byte(pfxToken), ScanOptions{KeysOnly: true})
		defer it.Close()
		for it.Next() {
			n++
		}
		return it.Err()
	})
	if err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("database already holds %d tokens; restore needs an empty database (or --replace): %w", n, ErrNotEmpty)
	}
	return nil
}

// copyRecords writes every record that txn sees but the skipped keys to w.
func copyRecords(txn Reader, w Writer, skip map[string]bool) error {
	it := txn.Scan(nil, ScanOptions{})
	defer it.Close()
	for it.Next() {
		if skip[string(it.Key())] {
			continue
		}
		if err := w.Set(bytes.Clone(it.Key()), bytes.Clone(it.Value())); err != nil {
			return err
		}
	}
	return it.Err()
}

// checkBackup checks every record of a loaded backup. It returns the keys of
// usage, block and last-used records whose token is gone (left behind when
// clearing a deleted token's usage failed): harmless, and not restored.
//
// layout reports whether the backup is of the current layout; one of layout 1
// (no layout key) is migrated as it is restored.
func checkBackup(txn Reader) (orphans map[string]bool, layout bool, err error) {
	bad := func(what string, key []byte, err error) error {
		return fmt.Errorf("%w: %s record %s: %w", ErrInvalidBackup, what, quote(string(key)), err)
	}
	tokens := map[string]Token{}
	names := map[string]string{}   // lower(name) → id, from the name index
	digests := map[string]string{} // digest key → id, from the digest index
	type usageRec struct {
		key   []byte
		owner string
	}
	var usage []usageRec   // usage, block, last-used and history records, by owner
	var oldBlocks [][]byte // usage records with a blocked flag (layout 1)

	it := txn.Scan(nil, ScanOptions{})
	defer it.Close()
	for it.Next() {
		key := bytes.Clone(it.Key())
		v := bytes.Clone(it.Value())
		k := string(key)
		switch {
		case strings.HasPrefix(k, pfxToken):
			t, err := checkTokenRecord(strings.TrimPrefix(k, pfxToken), v)
			if err != nil {
				return nil, false, bad("token", key, err)
			}
			tokens[t.ID] = t
		case strings.HasPrefix(k, pfxName):
			if !validID(string(v)) {
				return nil, false, bad("name index", key, errors.New("holds no token id"))
			}
			names[strings.TrimPrefix(k, pfxName)] = string(v)
		case strings.HasPrefix(k, pfxDigest):
			if len(key) != len(pfxDigest)+len(secret.Digest{}) || !validID(string(v)) {
				return nil, false, bad("digest index", key, errors.New("is malformed"))
			}
			digests[k] = string(v)
		case strings.HasPrefix(k, pfxUsage):
			owner, blocked, err := checkUsageRecord(k, v)
			if err != nil {
				return nil, false, bad("usage", key, err)
			}
			usage = append(usage, usageRec{key, owner})
			if blocked {
				oldBlocks = append(oldBlocks, key)
			}
		case strings.HasPrefix(k, pfxBlock):
			owner, err := checkBlockRecord(k, v)
			if err != nil {
				return nil, false, bad("block", key, err)
			}
			usage = append(usage, usageRec{key, owner})
		case strings.HasPrefix(k, pfxHourToken), strings.HasPrefix(k, pfxHourIP):
			owner, err := checkHourRecord(k, v)
			if err != nil {
				return nil, false, bad("usage history", key, err)
			}
			usage = append(usage, usageRec{key, owner})
		case strings.HasPrefix(k, pfxLastUsed):
			owner := strings.TrimPrefix(k, pfxLastUsed)
			if _, err := decodeLastUsed(v); err != nil || !validID(owner) {
				return nil, false, bad("last-used", key, errors.New("is malformed"))
			}
			usage = append(usage, usageRec{key, owner})
		case k == keyLayout:
			if string(v) != layoutVersion {
				return nil, false, bad("layout", key, fmt.Errorf("is version %s; this apptokens reads version %s", quote(string(v)), layoutVersion))
			}
			layout = true
		case strings.HasPrefix(k, pfxEvent):
			if err := checkEventRecord(key, v); err != nil {
				return nil, false, bad("audit", key, err)
			}
		case k == keyPolicy:
			if n, err := strconv.ParseInt(string(v), 10, 64); err != nil || n < 0 {
				return nil, false, bad("policy", key, errors.New("is not a duration"))
			}
		default:
			return nil, false, bad("unknown", key, errors.New("is not an apptokens record"))
		}
	}
	if err := it.Err(); err != nil {
		return nil, false, fmt.Errorf("%w: cannot read it: %w", ErrInvalidBackup, err)
	}

	// Both indexes point at every token, and at nothing else: together with
	// the one name key per lower-cased name, names are unique case-insensitively.
	for id, t := range tokens {
		if names[strings.ToLower(t.Name)] != id {
			return nil, false, bad("token", tokenKey(id), fmt.Errorf("name %s is not indexed to it (name taken twice?)", quote(t.Name)))
		}
		if digests[string(digestKey(t.Digest))] != id {
			return nil, false, bad("token", tokenKey(id), errors.New("its secret digest is not indexed to it"))
		}
	}
	for low, id := range names {
		if t, ok := tokens[id]; !ok || strings.ToLower(t.Name) != low {
			return nil, false, bad("name index", nameKey(low), errors.New("points at no token of that name"))
		}
	}
	for dk, id := range digests {
		if t, ok := tokens[id]; !ok || string(digestKey(t.Digest)) != dk {
			return nil, false, bad("digest index", []byte(dk), errors.New("points at no token with that digest"))
		}
	}
	// A backup of layout 2 keeps blocks in b/ records: a blocked flag in a
	// usage row would be lost. One of layout 1 is migrated after the copy.
	if layout && len(oldBlocks) > 0 {
		return nil, false, bad("usage", oldBlocks[0], errors.New("holds a blocked flag (blocks are b/ records in this layout)"))
	}
	orphans = map[string]bool{}
	for _, u := range usage {
		if _, ok := tokens[u.owner]; !ok {
			orphans[string(u.key)] = true
		}
	}
	return orphans, layout, nil
}

func checkTokenRecord(id string, v []byte) (Token, error) {
	var t Token
	if err := decodeToken(v, &t); err != nil {
		return t, err
	}
	if !bytes.Equal(encodeToken(&t), v) {
		return t, errBadToken
	}
	if t.ID != id || !validID(id) {
		return t, fmt.Errorf("holds id %s", quote(t.ID))
	}
	if err := validateFields(t.Name, t.Description, t.Access); err != nil {
		return t, err
	}
	if !validHint(t.Hint) {
		return t, fmt.Errorf("hint %s is not a token hint", quote(t.Hint))
	}
	return t, nil
}

// checkUsageRecord checks a usage record and returns the ID of its token and
// its blocked flag (set only in layout 1).
func checkUsageRecord(key string, v []byte) (string, bool, error) {
	var u Usage
	if err := strictJSON(v, &u); err != nil {
		return "", false, err
	}
	ip, err := ParseIP(u.IP)
	if err != nil {
		return "", false, err
	}
	if ip != u.IP || !validID(u.TokenID) || key != string(usageKey(u.TokenID, u.IP)) {
		return "", false, errors.New("does not match its key")
	}
	return u.TokenID, u.Blocked, nil
}

// checkBlockRecord checks a block record and returns the ID of its token.
func checkBlockRecord(key string, v []byte) (string, error) {
	id, ip, ok := strings.Cut(strings.TrimPrefix(key, pfxBlock), "/")
	if !ok || !validID(id) || len(v) != 0 {
		return "", errors.New("is malformed")
	}
	if n, err := ClientIP(ip); err != nil || n != ip {
		return "", fmt.Errorf("%s is not a normalized client address", quote(ip))
	}
	return id, nil
}

func checkEventRecord(key, v []byte) error {
	if len(key) != len(pfxEvent)+16 {
		return errors.New("key is malformed")
	}
	var e Event
	if err := strictJSON(v, &e); err != nil {
		return err
	}
	for _, f := range [...]string{e.Actor, e.Action, e.Token, e.Details} {
		if Printable(f) != f {
			return fmt.Errorf("holds control characters: %s", quote(f))
		}
	}
	return nil
}

// strictJSON decodes one JSON value with no unknown fields and nothing after it.
func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}

// validID reports whether id can be a token ID: 1 to 64 letters, digits, dashes
// or underscores (Create makes 16 hex digits; it must never hold the '/' that
// separates parts of a key).
func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// validHint reports whether h has the form of secret.HintOf: the prefix, an
// ellipsis and at most the last 4 (base62) characters.
func validHint(h string) bool {
	rest, ok := strings.CutPrefix(h, secret.Prefix+"…")
	if !ok || len(rest) > 4 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/apptokens/apptokens/internal/secret"
)

// ErrInvalidBackup is matched (errors.Is) by a restore refused because the
// backup breaks a data rule or is not a backup at all.
var ErrInvalidBackup = errors.New("invalid backup")

// Backup writes a full backup (tokens, usage, usage history, audit, policy) to w.
func (s *Store) Backup(w io.Writer) error {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if _, err := s.db.Backup(w, 0); err != nil {
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
// The restore is atomic: the new database is written whole into a fresh data
// directory (with replace unset, the store's own records first, the backup's
// over them), synced, and then switched to with one rename (data.go). A failure
// at any point before the rename (a write error, a full disk, a crash) leaves
// the old data whole and in use; after it, the restored data is complete.
// One transaction could not do it: Badger bounds a transaction to about 1 MB.
// Other writers wait while the new database is written; readers go on.
func (s *Store) Restore(actor Actor, r io.Reader, replace bool) error {
	// Refuse early, before reading the backup, when the store is not empty.
	if err := s.restoreAllowed(replace); err != nil {
		return err
	}
	// Reading the backup (over SSH: the session's stdin, which may stall) and
	// checking it happen without holding writers back.
	scratch, err := badger.Open(badgerOptions(""))
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer scratch.Close()
	backup := &countingReader{r: r}
	if err := scratch.Load(&frameReader{r: backup}, 256); err != nil {
		return fmt.Errorf("%w: cannot read it: %w", ErrInvalidBackup, err)
	}
	var orphans map[string]bool
	if err := scratch.View(func(txn *badger.Txn) error {
		var err error
		orphans, err = checkBackup(txn)
		return err
	}); err != nil {
		return err
	}

	// From here to the switch, no write may slip in: it would be lost.
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := s.restoreAllowed(replace); err != nil {
		return err
	}
	// The restored database is written beside the old one: room for its
	// logs and for twice the backup's bytes, or no start.
	if err := s.space.checkFor(2*backup.n, "a restore"); err != nil {
		return fmt.Errorf("restore: %w (the database is as it was)", err)
	}
	fresh, freshDir, err := s.openFresh()
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := s.fillFresh(fresh, scratch, orphans, actor, replace); err != nil {
		_ = fresh.Close()
		if freshDir != "" {
			_ = os.RemoveAll(freshDir)
		}
		return fmt.Errorf("restore: %w (the database is as it was)", err)
	}
	if freshDir != "" {
		// Closed before the switch: the switch reopens it from its directory.
		if err := fresh.Close(); err != nil {
			_ = os.RemoveAll(freshDir)
			return fmt.Errorf("restore: %w (the database is as it was)", err)
		}
	}
	if err := s.swapIn(fresh, freshDir); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := s.loadPolicy(); err != nil {
		return err
	}
	s.prunedHour.Store(0) // the backup's history may be older: the next sweep prunes it
	s.feed.publish(Change{Kind: ChangeReload})
	return nil
}

// openFresh opens an empty database for a restore to write: in a new data
// directory, or in memory for an in-memory store (freshDir "").
func (s *Store) openFresh() (fresh *badger.DB, freshDir string, err error) {
	if s.dir == "" {
		fresh, err = badger.Open(badgerOptions(""))
		return fresh, "", err
	}
	if freshDir, err = newDataDir(s.dir); err != nil {
		return nil, "", err
	}
	if fresh, err = badger.Open(badgerOptions(freshDir)); err != nil {
		_ = os.RemoveAll(freshDir)
		return nil, "", err
	}
	return fresh, freshDir, nil
}

// fillFresh writes the restored database: without replace, the store's own
// records (an empty store can still hold its audit trail and policy); then the
// backup's checked records but orphans; then the layout migration (a backup
// of an older layout) and the restore's audit event; and syncs it.
func (s *Store) fillFresh(fresh, scratch *badger.DB, orphans map[string]bool, actor Actor, replace bool) error {
	written := 0
	if !replace {
		// All but the layout key: the backup's says whether it needs migrating.
		err := s.view(func(txn *badger.Txn) error {
			return copyRecords(txn, fresh, map[string]bool{keyLayout: true}, &written, s.restoreHook)
		})
		if err != nil {
			return err
		}
	}
	// scratch is ours alone: what was checked is what is copied.
	if err := scratch.View(func(txn *badger.Txn) error {
		return copyRecords(txn, fresh, orphans, &written, s.restoreHook)
	}); err != nil {
		return err
	}
	if err := migrate(fresh); err != nil {
		return err
	}
	now := s.now().UTC()
	if err := fresh.Update(func(txn *badger.Txn) error {
		return s.addEvent(txn, now, actor, ActionRestore, "", "")
	}); err != nil {
		return err
	}
	return fresh.Sync()
}

// restoreAllowed refuses a restore over tokens unless replace is set. It counts
// keys only: no token is decoded.
func (s *Store) restoreAllowed(replace bool) error {
	if replace {
		return nil
	}
	n := 0
	err := s.view(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte(pfxToken)
		opts.PrefetchValues = false
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("database already holds %d tokens; restore needs an empty database (or --replace): %w", n, ErrNotEmpty)
	}
	return nil
}

// copyRecords writes every live record that txn sees but the skipped keys into
// dst, counting them in written; hook (tests) is called before each.
func copyRecords(txn *badger.Txn, dst *badger.DB, skip map[string]bool, written *int, hook func(int) error) error {
	wb := dst.NewWriteBatch()
	defer wb.Cancel()
	it := txn.NewIterator(badger.DefaultIteratorOptions)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		if skip[string(item.Key())] {
			continue
		}
		if hook != nil {
			if err := hook(*written); err != nil {
				return err
			}
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		if err := wb.Set(item.KeyCopy(nil), v); err != nil {
			return err
		}
		*written++
	}
	return wb.Flush()
}

// maxFrame bounds one frame of a backup stream. Badger writes frames of about
// 16 MB (at most ~100 MB) and trusts the size in a frame's header, allocating it
// before reading: a crafted header would make it panic or take all memory.
const maxFrame = 256 << 20

// frameReader passes a backup stream (frames of a little-endian uint64 size and
// that many bytes) on to Badger's Load only once each frame has fully arrived
// and is of a sane size.
type frameReader struct {
	r    io.Reader
	next bytes.Buffer // the frame being passed on
}

func (f *frameReader) Read(p []byte) (int, error) {
	if f.next.Len() == 0 {
		var hdr [8]byte
		if _, err := io.ReadFull(f.r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return 0, io.EOF
			}
			return 0, fmt.Errorf("truncated frame header: %w", err)
		}
		size := binary.LittleEndian.Uint64(hdr[:])
		if size > maxFrame {
			return 0, fmt.Errorf("frame of %d bytes (at most %d)", size, maxFrame)
		}
		f.next.Reset()
		f.next.Write(hdr[:])
		// CopyN grows the buffer as bytes arrive, not by the size announced.
		if n, err := io.CopyN(&f.next, f.r, int64(size)); err != nil {
			return 0, fmt.Errorf("truncated frame: %d of %d bytes: %w", n, size, err)
		}
	}
	return f.next.Read(p)
}

// checkBackup checks every record of a loaded backup. It returns the keys of
// usage, block and last-used records whose token is gone (left behind when
// clearing a deleted token's usage failed): harmless, and not restored.
func checkBackup(txn *badger.Txn) (orphans map[string]bool, err error) {
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
	layout := false

	it := txn.NewIterator(badger.DefaultIteratorOptions)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		key := item.KeyCopy(nil)
		v, err := item.ValueCopy(nil)
		if err != nil {
			return nil, fmt.Errorf("%w: cannot read it: %w", ErrInvalidBackup, err)
		}
		k := string(key)
		switch {
		case strings.HasPrefix(k, pfxToken):
			t, err := checkTokenRecord(strings.TrimPrefix(k, pfxToken), v)
			if err != nil {
				return nil, bad("token", key, err)
			}
			tokens[t.ID] = t
		case strings.HasPrefix(k, pfxName):
			if !validID(string(v)) {
				return nil, bad("name index", key, errors.New("holds no token id"))
			}
			names[strings.TrimPrefix(k, pfxName)] = string(v)
		case strings.HasPrefix(k, pfxDigest):
			if len(key) != len(pfxDigest)+len(secret.Digest{}) || !validID(string(v)) {
				return nil, bad("digest index", key, errors.New("is malformed"))
			}
			digests[k] = string(v)
		case strings.HasPrefix(k, pfxUsage):
			owner, blocked, err := checkUsageRecord(k, v)
			if err != nil {
				return nil, bad("usage", key, err)
			}
			usage = append(usage, usageRec{key, owner})
			if blocked {
				oldBlocks = append(oldBlocks, key)
			}
		case strings.HasPrefix(k, pfxBlock):
			owner, err := checkBlockRecord(k, v)
			if err != nil {
				return nil, bad("block", key, err)
			}
			usage = append(usage, usageRec{key, owner})
		case strings.HasPrefix(k, pfxHourToken), strings.HasPrefix(k, pfxHourIP):
			owner, err := checkHourRecord(k, v)
			if err != nil {
				return nil, bad("usage history", key, err)
			}
			usage = append(usage, usageRec{key, owner})
		case strings.HasPrefix(k, pfxLastUsed):
			owner := strings.TrimPrefix(k, pfxLastUsed)
			if _, err := decodeLastUsed(v); err != nil || !validID(owner) {
				return nil, bad("last-used", key, errors.New("is malformed"))
			}
			usage = append(usage, usageRec{key, owner})
		case k == keyLayout:
			if string(v) != layoutVersion {
				return nil, bad("layout", key, fmt.Errorf("is version %s; this apptokens reads version %s", quote(string(v)), layoutVersion))
			}
			layout = true
		case strings.HasPrefix(k, pfxEvent):
			if err := checkEventRecord(key, v); err != nil {
				return nil, bad("audit", key, err)
			}
		case k == keyPolicy:
			if n, err := strconv.ParseInt(string(v), 10, 64); err != nil || n < 0 {
				return nil, bad("policy", key, errors.New("is not a duration"))
			}
		default:
			return nil, bad("unknown", key, errors.New("is not an apptokens record"))
		}
	}

	// Both indexes point at every token, and at nothing else: together with
	// the one name key per lower-cased name, names are unique case-insensitively.
	for id, t := range tokens {
		if names[strings.ToLower(t.Name)] != id {
			return nil, bad("token", tokenKey(id), fmt.Errorf("name %s is not indexed to it (name taken twice?)", quote(t.Name)))
		}
		if digests[string(digestKey(t.Digest))] != id {
			return nil, bad("token", tokenKey(id), errors.New("its secret digest is not indexed to it"))
		}
	}
	for low, id := range names {
		if t, ok := tokens[id]; !ok || strings.ToLower(t.Name) != low {
			return nil, bad("name index", nameKey(low), errors.New("points at no token of that name"))
		}
	}
	for dk, id := range digests {
		if t, ok := tokens[id]; !ok || string(digestKey(t.Digest)) != dk {
			return nil, bad("digest index", []byte(dk), errors.New("points at no token with that digest"))
		}
	}
	// A backup of layout 2 keeps blocks in b/ records: a blocked flag in a
	// usage row would be lost. One of layout 1 is migrated after the copy.
	if layout && len(oldBlocks) > 0 {
		return nil, bad("usage", oldBlocks[0], errors.New("holds a blocked flag (blocks are b/ records in this layout)"))
	}
	orphans = map[string]bool{}
	for _, u := range usage {
		if _, ok := tokens[u.owner]; !ok {
			orphans[string(u.key)] = true
		}
	}
	return orphans, nil
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

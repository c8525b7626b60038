package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apptokens/apptokens/internal/secret"
)

// A backup and the store's keys: keyCollector turns the keys of the layout
// (store.go, layout.go, history.go) into a BackupFile, for a backup of the
// store and to read a backup of the previous release, which was those keys
// as they were (Badger's stream); BackupFile.writeKeys turns a backup back
// into keys, for a restore.

// keyCollector gathers a store's keys into the records of a backup. Usage,
// last use and hourly buckets given more than once for one (token, address,
// hour) are merged: counts add up, the first use is the earliest, the last
// use the latest.
type keyCollector struct {
	// legacy: the keys are an old backup, from outside: every key must be a
	// record of the layout, and the indexes must agree with the tokens.
	legacy bool

	tokens    map[string]Token
	names     map[string]string // n/ index: lower(name) → id
	digests   map[string]string // d/ index: digest key → id
	lastUsed  map[string]time.Time
	usage     map[[2]string]*Usage
	blocks    map[[2]string]bool
	allows    map[[2]string]bool
	warned    map[warnedRecord]bool
	oldBlocks []string // usage keys with a blocked flag (layout 1)
	hours     map[hourID]*[2]uint64
	events    []keyedEvent
	policy    *time.Duration
	delAfter  *time.Duration
	layout    string
}

// keyedEvent is an audit event and its key, which orders events of one time.
type keyedEvent struct {
	key string
	e   Event
}

type hourID struct {
	id, ip string
	h      uint32
}

func newKeyCollector(legacy bool) *keyCollector {
	return &keyCollector{
		legacy:   legacy,
		tokens:   map[string]Token{},
		names:    map[string]string{},
		digests:  map[string]string{},
		lastUsed: map[string]time.Time{},
		usage:    map[[2]string]*Usage{},
		blocks:   map[[2]string]bool{},
		allows:   map[[2]string]bool{},
		warned:   map[warnedRecord]bool{},
		hours:    map[hourID]*[2]uint64{},
	}
}

// keyError is an old backup's record refused: its key and why.
func keyError(key []byte, err error) error {
	return &BackupError{Where: "record " + quote(string(key)), Err: err}
}

// add takes one key and its value.
func (k *keyCollector) add(key, v []byte) error {
	err := k.addKey(string(key), v)
	switch {
	case err == nil:
		return nil
	case k.legacy:
		return keyError(key, err)
	default: // the store's own record is damaged: no backup's fault
		return fmt.Errorf("record %s: %w", quote(string(key)), err)
	}
}

func (k *keyCollector) addKey(key string, v []byte) error {
	switch {
	case strings.HasPrefix(key, pfxToken):
		var t Token
		if err := decodeToken(v, &t); err != nil {
			return err
		}
		if !bytes.Equal(encodeTokenVersion(&t, v[0]), v) {
			return errBadToken
		}
		if id := key[len(pfxToken):]; t.ID != id || !validID(id) {
			return fmt.Errorf("holds token id %s", quote(t.ID))
		}
		k.tokens[t.ID] = t
	case strings.HasPrefix(key, pfxName):
		if !validID(string(v)) {
			return errors.New("name index: holds no token id")
		}
		k.names[key[len(pfxName):]] = string(v)
	case strings.HasPrefix(key, pfxDigest):
		if len(key) != len(pfxDigest)+len(secret.Digest{}) || !validID(string(v)) {
			return errors.New("digest index: is malformed")
		}
		k.digests[key] = string(v)
	case strings.HasPrefix(key, pfxUsage):
		var u Usage
		if err := strictJSON(v, &u); err != nil {
			return fmt.Errorf("usage: %w", err)
		}
		if ip, err := ParseIP(u.IP); err != nil {
			return fmt.Errorf("usage: %w", err)
		} else if ip != u.IP || !validID(u.TokenID) || !k.ofNode(key, string(usageKey(u.TokenID, u.IP))) {
			return errors.New("usage: does not match its key")
		}
		if u.Blocked {
			k.oldBlocks = append(k.oldBlocks, key)
			k.blocks[[2]string{u.TokenID, u.IP}] = true
			u.Blocked = false
		}
		k.addUsage(u)
	case strings.HasPrefix(key, pfxBlock):
		id, ip, ok := strings.Cut(key[len(pfxBlock):], "/")
		if !ok || !validID(id) || len(v) != 0 {
			return errors.New("block: is malformed")
		}
		k.blocks[[2]string{id, ip}] = true
	case strings.HasPrefix(key, pfxAllow):
		id, c, ok := strings.Cut(key[len(pfxAllow):], "/")
		if !ok || !validID(id) || len(v) != 0 {
			return errors.New("allow-list: is malformed")
		}
		k.allows[[2]string{id, c}] = true
	case strings.HasPrefix(key, pfxWarned):
		// w/<id>/<event>/<unix nanos>
		parts := strings.Split(key[len(pfxWarned):], "/")
		if len(parts) != 3 || !validID(parts[0]) || len(v) != 0 {
			return errors.New("warned: is malformed")
		}
		n, err := strconv.ParseInt(parts[2], 10, 64)
		if err != nil {
			return errors.New("warned: is malformed")
		}
		k.warned[warnedRecord{TokenID: parts[0], Event: parts[1], At: time.Unix(0, n).UTC()}] = true
	case strings.HasPrefix(key, pfxOutbox):
		// Deliveries of the store's past: not backed up (backupfile.go).
	case key == keyDeleteAfter:
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil || n < 0 {
			return errors.New("policy: is not a duration")
		}
		d := time.Duration(n)
		k.delAfter = &d
	case strings.HasPrefix(key, pfxLastUsed):
		at, err := decodeLastUsed(v)
		id, _, _ := strings.Cut(key[len(pfxLastUsed):], "/")
		if err != nil || !validID(id) || !k.ofNode(key, string(lastUsedKey(id))) {
			return errors.New("last use: is malformed")
		}
		if at.After(k.lastUsed[id]) {
			k.lastUsed[id] = at
		}
	case strings.HasPrefix(key, pfxHourToken), strings.HasPrefix(key, pfxHourIP):
		h, err := k.parseHourKey(key)
		if err != nil {
			return fmt.Errorf("usage history: %w", err)
		}
		a, d, err := decodeHour(v)
		if err != nil {
			return fmt.Errorf("usage history: %w", err)
		}
		c := k.hours[h]
		if c == nil {
			c = new([2]uint64)
			k.hours[h] = c
		}
		c[0] += a
		c[1] += d
	case strings.HasPrefix(key, pfxEvent):
		if k.legacy && len(key) != len(pfxEvent)+16 {
			return errors.New("audit event: key is malformed")
		}
		var e Event
		if err := strictJSON(v, &e); err != nil {
			return fmt.Errorf("audit event: %w", err)
		}
		e.Time = e.Time.UTC()
		k.events = append(k.events, keyedEvent{key, e})
	case key == keyPolicy:
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil || n < 0 {
			return errors.New("policy: is not a duration")
		}
		d := time.Duration(n)
		k.policy = &d
	case key == keyLayout:
		if string(v) != layoutVersion {
			return fmt.Errorf("layout is version %s; this apptokens reads version %s", quote(string(v)), layoutVersion)
		}
		k.layout = string(v)
	default:
		if k.legacy {
			return errors.New("is not an apptokens record")
		}
	}
	return nil
}

// ofNode reports whether key is base, or (not in an old backup) base as one
// node of a shared engine writes it: base/<node>.
func (k *keyCollector) ofNode(key, base string) bool {
	if key == base {
		return true
	}
	node, ok := strings.CutPrefix(key, base+"/")
	return ok && !k.legacy && node != "" && !strings.Contains(node, "/")
}

// addUsage merges one usage row into the one of its (token, address).
func (k *keyCollector) addUsage(u Usage) {
	id := [2]string{u.TokenID, u.IP}
	m := k.usage[id]
	if m == nil {
		u.Blocked = false
		k.usage[id] = &u
		return
	}
	if !u.FirstUsedAt.IsZero() && (m.FirstUsedAt.IsZero() || u.FirstUsedAt.Before(m.FirstUsedAt)) {
		m.FirstUsedAt = u.FirstUsedAt
	}
	if u.LastUsedAt.After(m.LastUsedAt) {
		m.LastUsedAt = u.LastUsedAt
	}
	m.Allowed += u.Allowed
	m.Denied += u.Denied
}

// parseHourKey splits ht/<id>/<hour> and hi/<id>/<ip>/<hour> (hour: 4
// bytes, which may hold a '/'), each maybe with a node's /<node> after it.
func (k *keyCollector) parseHourKey(key string) (hourID, error) {
	bad := errors.New("key is malformed")
	var h hourID
	var rest string
	var ok bool
	if body, isToken := strings.CutPrefix(key, pfxHourToken); isToken {
		h.id, rest, ok = strings.Cut(body, "/")
	} else {
		h.id, rest, ok = strings.Cut(key[len(pfxHourIP):], "/")
		if ok {
			h.ip, rest, ok = strings.Cut(rest, "/")
			ok = ok && h.ip != ""
		}
	}
	if !ok || !validID(h.id) || len(rest) < 4 {
		return hourID{}, bad
	}
	h.h = binary.BigEndian.Uint32([]byte(rest[:4]))
	if len(rest) > 4 && !k.ofNode(rest, rest[:4]) {
		return hourID{}, bad
	}
	return h, nil
}

// file is what was gathered, as a backup in the file's order. The usage,
// blocks, last uses and hours of tokens that are not there (left behind when
// clearing a deleted token's usage failed) are harmless and left out. For an
// old backup it checks that the indexes agree with the tokens.
func (k *keyCollector) file() (*BackupFile, error) {
	b := &BackupFile{inactiveAfter: DefaultInactiveAfter, deleteAfter: DefaultDeleteAfter}
	if k.policy != nil {
		b.inactiveAfter = *k.policy
	}
	if k.delAfter != nil {
		b.deleteAfter = *k.delAfter
	}
	if k.legacy {
		if err := k.checkIndexes(); err != nil {
			return nil, err
		}
	}
	for id, t := range k.tokens {
		if at := k.lastUsed[id]; at.After(t.LastUsedAt) {
			t.LastUsedAt = at
		}
		b.tokens = append(b.tokens, t)
	}
	for id := range k.blocks {
		if _, ok := k.tokens[id[0]]; ok {
			b.blocks = append(b.blocks, blockRecord{TokenID: id[0], IP: id[1]})
		}
	}
	for id := range k.allows {
		if _, ok := k.tokens[id[0]]; ok {
			b.allows = append(b.allows, blockRecord{TokenID: id[0], IP: id[1]})
		}
	}
	for w := range k.warned {
		if _, ok := k.tokens[w.TokenID]; ok {
			b.warned = append(b.warned, w)
		}
	}
	for id, u := range k.usage {
		if _, ok := k.tokens[id[0]]; ok {
			b.usage = append(b.usage, *u)
		}
	}
	for id, c := range k.hours {
		if _, ok := k.tokens[id.id]; ok {
			b.hours = append(b.hours, hourRecord{TokenID: id.id, IP: id.ip, Hour: hourTime(id.h), Allowed: c[0], Denied: c[1]})
		}
	}
	slices.SortFunc(k.events, func(x, y keyedEvent) int { return strings.Compare(x.key, y.key) })
	b.events = make([]Event, len(k.events))
	for i, ke := range k.events {
		b.events[i] = ke.e
	}
	b.sort()
	return b, nil
}

// checkIndexes checks an old backup's name and digest indexes: both point at
// every token, and at nothing else (as the store wrote them).
func (k *keyCollector) checkIndexes() error {
	if k.layout != "" && len(k.oldBlocks) > 0 {
		return keyError([]byte(k.oldBlocks[0]), errors.New("holds a blocked flag (blocks are b/ records in this layout)"))
	}
	for id, t := range k.tokens {
		if k.names[strings.ToLower(t.Name)] != id {
			return keyError(tokenKey(id), fmt.Errorf("name %s is not indexed to it (name taken twice?)", quote(t.Name)))
		}
		if k.digests[string(digestKey(t.Digest))] != id {
			return keyError(tokenKey(id), errors.New("its secret digest is not indexed to it"))
		}
	}
	for low, id := range k.names {
		if t, ok := k.tokens[id]; !ok || strings.ToLower(t.Name) != low {
			return keyError(nameKey(low), errors.New("points at no token of that name"))
		}
	}
	for dk, id := range k.digests {
		if t, ok := k.tokens[id]; !ok || string(digestKey(t.Digest)) != dk && (isZeroDigest(t.OldDigest) || string(digestKey(t.OldDigest)) != dk) {
			return keyError([]byte(dk), errors.New("points at no token with that digest"))
		}
	}
	return nil
}

// readLegacyBackup reads a backup of the previous release through legacy and
// checks its records as a backup file's.
func readLegacyBackup(r io.Reader, legacy LegacyReader) (*BackupFile, error) {
	k := newKeyCollector(true)
	if err := legacy(r, k.add); err != nil {
		var be *BackupError
		if errors.As(err, &be) {
			return nil, err
		}
		return nil, &BackupError{Err: fmt.Errorf("cannot read it as a backup of the previous release: %w", err)}
	}
	b, err := k.file()
	if err != nil {
		return nil, err
	}
	return recheck(b, "(previous release's format)")
}

// recheck puts a BackupFile gathered from keys through the rules a backup
// file's records are checked by.
func recheck(b *BackupFile, where string) (*BackupFile, error) {
	c := newBackupChecker()
	wrap := func(err error) error { return &BackupError{Where: where, Err: err} }
	if err := c.addPolicy(b.inactiveAfter); err != nil {
		return nil, wrap(err)
	}
	c.b.deleteAfter = b.deleteAfter
	for _, t := range b.tokens {
		if err := c.addToken(t); err != nil {
			return nil, wrap(err)
		}
	}
	for _, r := range b.blocks {
		if err := c.addBlock(r); err != nil {
			return nil, wrap(err)
		}
	}
	for _, r := range b.allows {
		if err := c.addAllow(r); err != nil {
			return nil, wrap(err)
		}
	}
	for _, r := range b.warned {
		if err := c.addWarned(r); err != nil {
			return nil, wrap(err)
		}
	}
	for _, u := range b.usage {
		if err := c.addUsage(u); err != nil {
			return nil, wrap(err)
		}
	}
	for _, h := range b.hours {
		if err := c.addHour(h); err != nil {
			return nil, wrap(err)
		}
	}
	for _, e := range b.events {
		if err := c.addEvent(e); err != nil {
			return nil, wrap(err)
		}
	}
	return c.b, nil
}

// restoredEventKey is the key of the i-th audit event of a restored backup:
// in time order, then in the backup's order; the high bit keeps it apart from
// the keys this process gives events of the same nanosecond (eventKey).
func restoredEventKey(t time.Time, i int) []byte {
	k := make([]byte, 0, len(pfxEvent)+16)
	k = append(k, pfxEvent...)
	k = binary.BigEndian.AppendUint64(k, uint64(t.UnixNano()))
	return binary.BigEndian.AppendUint64(k, 1<<63|uint64(i))
}

// writeKeys writes the backup as the store's keys (the current layout).
func (b *BackupFile) writeKeys(w Writer) error {
	if err := w.Set([]byte(keyLayout), []byte(layoutVersion)); err != nil {
		return err
	}
	if err := w.Set([]byte(keyPolicy), []byte(strconv.FormatInt(int64(b.inactiveAfter), 10))); err != nil {
		return err
	}
	if err := w.Set([]byte(keyDeleteAfter), []byte(strconv.FormatInt(int64(b.deleteAfter), 10))); err != nil {
		return err
	}
	for i := range b.tokens {
		t := &b.tokens[i]
		if err := putToken(w, t); err != nil {
			return err
		}
		if err := w.Set(nameKey(t.Name), []byte(t.ID)); err != nil {
			return err
		}
		if err := w.Set(digestKey(t.Digest), []byte(t.ID)); err != nil {
			return err
		}
		if !isZeroDigest(t.OldDigest) {
			if err := w.Set(digestKey(t.OldDigest), []byte(t.ID)); err != nil {
				return err
			}
		}
		if !t.LastUsedAt.IsZero() {
			if err := w.Set(lastUsedKey(t.ID), encodeLastUsed(t.LastUsedAt)); err != nil {
				return err
			}
		}
	}
	for _, r := range b.blocks {
		if err := w.Set(blockKey(r.TokenID, r.IP), nil); err != nil {
			return err
		}
	}
	for _, r := range b.allows {
		if err := w.Set(allowKey(r.TokenID, r.IP), nil); err != nil {
			return err
		}
	}
	for _, r := range b.warned {
		if err := w.Set(warnedKey(r.TokenID, r.Event, r.At), nil); err != nil {
			return err
		}
	}
	for _, u := range b.usage {
		u.Blocked = false
		if err := setJSON(w, usageKey(u.TokenID, u.IP), u); err != nil {
			return err
		}
	}
	for _, h := range b.hours {
		n, _ := hourNum(h.Hour)
		key := withHour(hourTokenPrefix(h.TokenID), n)
		if h.IP != "" {
			key = hourIPKey(h.TokenID, h.IP, n)
		}
		if err := w.Set(key, encodeHour(h.Allowed, h.Denied)); err != nil {
			return err
		}
	}
	for i, e := range b.events {
		if err := setJSON(w, restoredEventKey(e.Time, i), e); err != nil {
			return err
		}
	}
	return nil
}

// backupOf gathers every key r sees (one snapshot) into a backup. Keys that
// hold no record of a backup (the engine's own, the change key) are skipped.
func backupOf(r Reader) (*BackupFile, error) {
	k := newKeyCollector(false)
	it := r.Scan(nil, ScanOptions{})
	defer it.Close()
	for it.Next() {
		if err := k.add(it.Key(), it.Value()); err != nil {
			return nil, err
		}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	return k.file()
}

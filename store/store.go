package store

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Key layout. Every value is JSON except the indexes, which hold a token ID.
// What the gate writes every second (usage rows, last use, hourly buckets)
// has a key per node on a SharedEngine (Node), so that gates on many nodes
// never conflict; on a plain engine (Badger, Node "") the keys are as they
// always were. ChangesKey ("x") holds a shared engine's latest changes.
const (
	pfxToken  = "t/" // t/<id>            → Token
	pfxName   = "n/" // n/<lower(name)>   → id
	pfxDigest = "d/" // d/<digest bytes>  → id
	pfxUsage  = "u/" // u/<id>/<ip>[/<node>] → Usage (usage.go)
	pfxEvent  = "e/" // e/<nanos><seq>    → Event
	keyPolicy = "m/inactive_after"
	// keyDeleteAfter holds the auto-delete policy as keyPolicy holds the
	// inactivity one (decimal nanoseconds; absent: DefaultDeleteAfter).
	keyDeleteAfter = "m/delete_after"
	pfxAllow       = "a/" // a/<id>/<cidr>         → empty: the token's allow-list
	pfxWarned      = "w/" // w/<id>/<event>/<at>   → empty: a lifecycle event done once (lifecycle.go)
	pfxOutbox      = "o/" // o/<nanos><seq>        → WebhookEvent, until acked
)

// ErrNoSpace is wrapped by the error of an Open or a write refused because the
// database's filesystem has too little free space (the Badger engine's guard).
var ErrNoSpace = errors.New("no space left")

// Options configure New.
type Options struct {
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// LegacyBackup reads the previous release's backups (Badger's stream) for
	// Restore: store/badger.ReadLegacyBackup. nil: they are refused.
	LegacyBackup LegacyReader
	// Webhooks makes the sweep and RevokeByReport queue WebhookEvents in the
	// outbox (PendingWebhooks); without it nothing is queued (nobody would
	// take them), but each warning is still marked done, so that turning
	// webhooks on later does not send old warnings.
	Webhooks bool
}

// Store is the token store, written over an Engine. It is safe for concurrent
// use.
type Store struct {
	eng Engine
	// shared is eng when it is a SharedEngine (changes come from its watch),
	// else nil (changes are published here after each commit).
	shared SharedEngine
	// node is this process's name among the shared engine's nodes ("" for a
	// plain engine): the usage it records goes to keys of its own (usage.go).
	node string
	// stopWatch ends the shared engine's watch of ChangesKey.
	stopWatch context.CancelFunc
	// echoes: a write on a shared engine waits for its changes (remote.go).
	echoes echoes
	now    func() time.Time
	feed   feed
	// legacy reads the previous release's backups (Options.LegacyBackup).
	legacy LegacyReader

	// restoreHook, when set (tests only), is called before each record a
	// restore writes, with how many it has written: an error it returns fails
	// the restore there.
	restoreHook func(written int) error

	// eventSeq orders audit events written at the same time.
	eventSeq atomic.Uint64

	webhooks bool

	mu            sync.RWMutex
	inactiveAfter time.Duration
	deleteAfter   time.Duration

	// writeMu is held shared by every transactional write and exclusively by
	// BulkLoad and Restore, which write outside transactions: a Create of this
	// process cannot slip between their checks and their writes.
	writeMu sync.RWMutex

	// prunedHour is the cutoff hour (hours since the epoch) up to which
	// PruneHistory has deleted the usage history; 0 after a restore.
	prunedHour atomic.Int64
	// noHistory (benchmarks only) makes RecordUsage write the totals alone,
	// to measure what the usage history costs.
	noHistory bool
}

// New opens the store over eng: it brings the key layout up to date (the
// migration writes, so on an engine whose Writable refuses writes it fails
// with that error when one is needed), reads the policy and, for a
// SharedEngine, starts watching ChangesKey. From the call on, eng is the
// Store's: Close closes it, and New closes it when it fails.
func New(eng Engine, opts Options) (*Store, error) {
	s := &Store{eng: eng, now: opts.Now, legacy: opts.LegacyBackup, webhooks: opts.Webhooks, inactiveAfter: DefaultInactiveAfter, deleteAfter: DefaultDeleteAfter}
	if s.now == nil {
		s.now = time.Now
	}
	if sh, ok := eng.(SharedEngine); ok {
		s.shared, s.node = sh, sh.Node()
		// Nodes write audit events at once: a random start keeps their
		// keys apart (each process's own events stay in order).
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		s.eventSeq.Store(binary.BigEndian.Uint64(b[:]) >> 2)
		s.echoes.prefix = newID() + "-"
	}
	fail := func(err error) (*Store, error) {
		_ = eng.Close()
		return nil, err
	}
	done, err := s.layoutCurrent()
	if err != nil {
		return fail(err)
	}
	if !done {
		// Opened on a full disk: the layout migration would write.
		if err := s.Writable(); err != nil {
			return fail(err)
		}
		if err := s.migrate(); err != nil {
			return fail(err)
		}
	}
	if err := s.loadPolicy(); err != nil {
		return fail(err)
	}
	if s.shared != nil {
		ctx, cancel := context.WithCancel(context.Background())
		s.stopWatch = cancel
		if err := s.shared.Watch(ctx, []byte(ChangesKey), s.applyRemote, s.resetRemote); err != nil {
			cancel()
			return fail(fmt.Errorf("watch %s: %w", eng, err))
		}
	}
	return s, nil
}

// Engine is the engine the store is written over.
func (s *Store) Engine() Engine { return s.eng }

// Close ends every subscription and closes the engine (see the engine's Close
// for what it may return).
func (s *Store) Close() error {
	if s.stopWatch != nil {
		s.stopWatch()
	}
	s.feed.closeAll()
	return s.eng.Close()
}

// Writable reports why writes are refused now by the engine's own guard (the
// Badger engine's: a full disk, errors.Is ErrNoSpace), or nil. An engine
// without one is always writable as far as the store knows.
func (s *Store) Writable() error {
	if w, ok := s.eng.(interface{ Writable() error }); ok {
		return w.Writable()
	}
	return nil
}

// healthTimeout bounds a shared engine's health check.
const healthTimeout = 2 * time.Second

// Health is nil when a write would be accepted now, or the reason it would
// not: the Badger engine's space guard (errors.Is ErrNoSpace), a shared
// engine without quorum (errors.Is ErrUnavailable; its text names the engine).
func (s *Store) Health() error {
	if s.shared != nil {
		ctx, cancel := context.WithTimeout(context.Background(), healthTimeout)
		defer cancel()
		return s.shared.Health(ctx)
	}
	return s.Writable()
}

// Announce tells processes that the engine refuses (the Badger engine's
// directory lock) that `serve` holds it and listens for SSH on sshAddr; it does
// nothing on an engine without such a lock.
func (s *Store) Announce(sshAddr string) error {
	if a, ok := s.eng.(interface{ Announce(string) error }); ok {
		return a.Announce(sshAddr)
	}
	return nil
}

// Now is the store's clock.
func (s *Store) Now() time.Time { return s.now() }

// InactiveAfter is the inactivity policy in force (0: off).
func (s *Store) InactiveAfter() time.Duration {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.inactiveAfter
}

// SetInactiveAfter changes and persists the inactivity policy (0 turns it off).
func (s *Store) SetInactiveAfter(d time.Duration) error {
	if d < 0 {
		return errors.New("inactive-after must not be negative")
	}
	return s.setPolicyKey(keyPolicy, d, func(c *Change) { c.InactiveAfter = d })
}

// DeleteAfter is the auto-delete policy in force (0: off): a token unused
// for that long (since Since) is deleted by the sweep.
func (s *Store) DeleteAfter() time.Duration {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.deleteAfter
}

// SetDeleteAfter changes and persists the auto-delete policy (0 turns it off).
func (s *Store) SetDeleteAfter(d time.Duration) error {
	if d < 0 {
		return errors.New("delete-after must not be negative")
	}
	return s.setPolicyKey(keyDeleteAfter, d, func(c *Change) { c.DeleteAfter = d })
}

// setPolicyKey writes one policy key; the ChangePolicy carries both policies
// as they are after it (set changes the one written).
func (s *Store) setPolicyKey(key string, d time.Duration, set func(*Change)) error {
	var c Change
	err := s.commit(func(txn Txn) ([]Change, error) {
		in, del, err := readPolicy(txn)
		if err != nil {
			return nil, err
		}
		c = Change{Kind: ChangePolicy, InactiveAfter: in, DeleteAfter: del}
		set(&c)
		return []Change{c}, txn.Set([]byte(key), []byte(strconv.FormatInt(int64(d), 10)))
	})
	if err != nil {
		return err
	}
	s.setPolicy(c.InactiveAfter, c.DeleteAfter)
	return nil
}

func (s *Store) setPolicy(inactive, del time.Duration) {
	s.mu.Lock()
	s.inactiveAfter, s.deleteAfter = inactive, del
	s.mu.Unlock()
}

// readPolicy reads both stored policies (the defaults where none is stored).
func readPolicy(txn Reader) (inactive, del time.Duration, err error) {
	inactive, del = DefaultInactiveAfter, DefaultDeleteAfter
	for _, p := range [...]struct {
		key  string
		what string
		dst  *time.Duration
	}{{keyPolicy, "inactivity", &inactive}, {keyDeleteAfter, "auto-delete", &del}} {
		v, err := txn.Get([]byte(p.key))
		if errors.Is(err, ErrNoKey) {
			continue
		}
		if err != nil {
			return 0, 0, err
		}
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("read %s policy: %w", p.what, err)
		}
		*p.dst = time.Duration(n)
	}
	return inactive, del, nil
}

// loadPolicy reads the stored policies (the defaults when none is stored, as
// after restoring a backup that kept the default).
func (s *Store) loadPolicy() error {
	var in, del time.Duration
	err := s.view(func(txn Reader) error {
		var err error
		in, del, err = readPolicy(txn)
		return err
	})
	if err != nil {
		return err
	}
	s.setPolicy(in, del)
	return nil
}

// view runs fn over a snapshot.
func (s *Store) view(fn func(txn Reader) error) error { return s.eng.View(fn) }

// commit runs fn in one transaction of the engine; fn returns the changes its
// writes make, as subscribers must see them. On a plain engine they are
// published here once the transaction committed. On a SharedEngine they are
// written, encoded, to ChangesKey in that same transaction and published by
// the watch (applyRemote), in every process alike, this one included.
func (s *Store) commit(fn func(txn Txn) ([]Change, error)) error {
	s.writeMu.RLock()
	defer s.writeMu.RUnlock()
	return s.commitLocked(fn)
}

// commitLocked is commit for a caller that already holds writeMu.
func (s *Store) commitLocked(fn func(txn Txn) ([]Change, error)) error {
	var changes []Change
	var id string
	var echo chan struct{}
	if s.shared != nil {
		id, echo = s.echoes.expect()
		defer s.echoes.done(id)
	}
	err := s.eng.Update(func(txn Txn) error {
		var err error
		if changes, err = fn(txn); err != nil {
			return err
		}
		if s.shared == nil || len(changes) == 0 {
			return nil
		}
		b, err := encodeChanges(id, changes)
		if err != nil {
			return err
		}
		return txn.Set([]byte(ChangesKey), b)
	})
	if err != nil {
		return err
	}
	if s.shared == nil {
		s.feed.publish(changes...)
	} else if len(changes) > 0 {
		s.echoes.wait(echo)
	}
	return nil
}

// announce publishes changes made outside a transaction (Load, Replace): on a
// shared engine by writing them to ChangesKey in a transaction of their own.
func (s *Store) announce(changes ...Change) error {
	if s.shared == nil {
		s.feed.publish(changes...)
		return nil
	}
	id, echo := s.echoes.expect()
	defer s.echoes.done(id)
	b, err := encodeChanges(id, changes)
	if err != nil {
		return err
	}
	if err := s.eng.Update(func(txn Txn) error { return txn.Set([]byte(ChangesKey), b) }); err != nil {
		return err
	}
	s.echoes.wait(echo)
	return nil
}

func newID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b[:])
}

func getJSON(txn Reader, key []byte, v any) error {
	b, err := txn.Get(key)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func setJSON(txn Writer, key []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return txn.Set(key, b)
}

// eventKey orders events by time, then by the order this process wrote them
// (events of one transaction share a time).
func (s *Store) eventKey(t time.Time) []byte {
	k := make([]byte, 0, len(pfxEvent)+16)
	k = append(k, pfxEvent...)
	k = binary.BigEndian.AppendUint64(k, uint64(t.UnixNano()))
	return binary.BigEndian.AppendUint64(k, s.eventSeq.Add(1))
}

func (s *Store) addEvent(txn Writer, now time.Time, actor Actor, action, token, details string) error {
	return setJSON(txn, s.eventKey(now), Event{Time: now, Actor: actor.String(), Action: action, Token: token, Details: details})
}

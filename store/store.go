package store

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// Key layout. Every value is JSON except the indexes, which hold a token ID.
const (
	pfxToken  = "t/" // t/<id>            → Token
	pfxName   = "n/" // n/<lower(name)>   → id
	pfxDigest = "d/" // d/<digest bytes>  → id
	pfxUsage  = "u/" // u/<id>/<ip>       → Usage
	pfxEvent  = "e/" // e/<nanos><rand>   → Event
	keyPolicy = "m/inactive_after"
)

// Options configure Open.
type Options struct {
	// Dir is the database directory; ignored when InMemory.
	Dir string
	// InMemory keeps everything in memory (tests).
	InMemory bool
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// ValueLogGCInterval is how often the value log is garbage-collected
	// (gc.go); DefaultValueLogGCInterval when 0, never when negative.
	ValueLogGCInterval time.Duration
}

// Store is the Badger-backed token store. It is safe for concurrent use.
type Store struct {
	db   *badger.DB
	lock *os.File
	// space refuses writes when the disk is too full (space.go); nil in memory.
	space *spaceGuard
	now   func() time.Time
	feed  feed

	// dbMu: db is the open database, and Restore swaps in a new one. A read
	// holds dbMu shared (view), a write holds writeMu shared, and the swap
	// holds both exclusively.
	dbMu sync.RWMutex
	// dir is the database directory ("" in memory); dataDir is where the
	// Badger files are in it (see data.go).
	dir, dataDir string
	gc           gcLoop
	// restoreHook, when set (tests only), is called before each record a
	// restore writes, with how many it has written: an error it returns fails
	// the restore there.
	restoreHook func(written int) error

	// eventSeq orders audit events written at the same time.
	eventSeq atomic.Uint64

	mu            sync.RWMutex
	inactiveAfter time.Duration

	// writeMu is held shared by every transactional write and exclusively by
	// BulkLoad and Restore, which write outside transactions: a Create cannot slip
	// between their checks and their writes.
	writeMu sync.RWMutex

	// prunedHour is the cutoff hour (hours since the epoch) up to which
	// PruneHistory has deleted the usage history; 0 after a restore.
	prunedHour atomic.Int64
	// noHistory (benchmarks only) makes RecordUsage write the totals alone,
	// to measure what the usage history costs.
	noHistory bool
}

// Open opens (creating if needed) the store. When another process has the
// directory open it fails at once with a *LockedError (errors.Is ErrLocked);
// when the filesystem has too little free space to replay the database's log
// it fails with a *NoSpaceError (errors.Is ErrNoSpace). With that room but less
// than the guard's reserve it opens, and every change is refused with a
// *NoSpaceError until space returns (see Writable).
func Open(opts Options) (*Store, error) {
	s := &Store{now: opts.Now, inactiveAfter: DefaultInactiveAfter}
	if s.now == nil {
		s.now = time.Now
	}
	var bopts badger.Options
	if opts.InMemory {
		bopts = badgerOptions("")
	} else {
		if opts.Dir == "" {
			return nil, errors.New("no database directory given")
		}
		if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("create database directory: %w", err)
		}
		lock, err := lockDir(opts.Dir)
		if err != nil {
			return nil, err
		}
		s.lock = lock
		s.dir = opts.Dir
		if s.dataDir, err = currentDataDir(opts.Dir); err != nil {
			s.unlock()
			return nil, err
		}
		bopts = badgerOptions(s.dataDir)
		s.space = newSpaceGuard(opts.Dir, s.dataDir, bopts)
		if err := s.space.canOpen(); err != nil {
			s.unlock()
			return nil, err
		}
	}
	db, err := badger.Open(bopts)
	if err != nil {
		s.unlock()
		return nil, fmt.Errorf("open database %s: %w", opts.Dir, err)
	}
	s.db = db
	if !opts.InMemory {
		removeStaleData(s.dir, s.dataDir)
	}
	if err := s.space.check(); err != nil {
		// Opened on a full disk: a layout migration would write.
		if done, lerr := layoutCurrent(db); lerr != nil || !done {
			_ = s.Close()
			return nil, err
		}
	}
	if err := migrate(db); err != nil {
		_ = s.Close()
		return nil, err
	}
	if err := s.loadPolicy(); err != nil {
		_ = s.Close()
		return nil, err
	}
	if !opts.InMemory {
		s.gc.start(s, opts.ValueLogGCInterval)
	}
	return s, nil
}

// badgerOptions are the store's Badger options, sized for a small footprint;
// dir "" is an in-memory database.
func badgerOptions(dir string) badger.Options {
	o := badger.DefaultOptions(dir).
		WithLogger(nil).
		WithSyncWrites(true).
		WithMemTableSize(8 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(4).
		WithBlockCacheSize(8 << 20).
		WithIndexCacheSize(4 << 20).
		WithValueLogFileSize(16 << 20).
		WithValueThreshold(1 << 10).
		WithCompression(options.Snappy).
		WithNumCompactors(2)
	if dir == "" {
		// In memory there is no value log: every value must fit the LSM tree.
		o = o.WithInMemory(true).WithDir("").WithValueDir("").WithValueThreshold(1 << 20)
	}
	return o
}

// Close flushes and closes the database and releases the directory. With too
// little free space to flush the memtables into tables it leaves them to the
// next Open, which replays their synced log (nothing is lost), and returns an
// error wrapping ErrNoSpace that says so.
func (s *Store) Close() error {
	s.feed.closeAll()
	s.gc.stop()
	var err error
	if s.db != nil {
		if err = s.space.canClose(); err == nil {
			err = s.db.Close()
		} else {
			// No room to flush the memtables: the synced log keeps every
			// committed write, and the next Open replays it.
			err = fmt.Errorf("%w: left for the next start to replay its log (nothing saved is lost)", err)
		}
	}
	s.unlock()
	return err
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
	err := s.update(func(txn *badger.Txn) error {
		return txn.Set([]byte(keyPolicy), []byte(strconv.FormatInt(int64(d), 10)))
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.inactiveAfter = d
	s.mu.Unlock()
	s.feed.publish(Change{Kind: ChangePolicy, InactiveAfter: d})
	return nil
}

// loadPolicy reads the stored policy (the default when none is stored, as after
// restoring a backup that kept the default).
func (s *Store) loadPolicy() error {
	d := DefaultInactiveAfter
	err := s.view(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(keyPolicy))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				return fmt.Errorf("read inactivity policy: %w", err)
			}
			d = time.Duration(n)
			return nil
		})
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.inactiveAfter = d
	s.mu.Unlock()
	return nil
}

// view runs fn in a read-only transaction.
func (s *Store) view(fn func(txn *badger.Txn) error) error {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	return s.db.View(fn)
}

// update runs fn in a read-write transaction, retrying on conflicts.
func (s *Store) update(fn func(txn *badger.Txn) error) error {
	s.writeMu.RLock()
	defer s.writeMu.RUnlock()
	return s.updateLocked(fn)
}

// updateLocked is update for a caller that already holds writeMu.
func (s *Store) updateLocked(fn func(txn *badger.Txn) error) error {
	if err := s.space.check(); err != nil {
		return err
	}
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		err = s.db.Update(fn)
		if errors.Is(err, badger.ErrTxnTooBig) {
			return errTxnTooBig
		}
		if !errors.Is(err, badger.ErrConflict) {
			return err
		}
		time.Sleep(time.Duration(attempt+1) * 100 * time.Microsecond)
	}
	return fmt.Errorf("too many concurrent changes, try again: %w", err)
}

func newID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b[:])
}

func getJSON(txn *badger.Txn, key []byte, v any) error {
	item, err := txn.Get(key)
	if err != nil {
		return err
	}
	return item.Value(func(b []byte) error { return json.Unmarshal(b, v) })
}

// setter is what both a transaction and a write batch offer.
type setter interface{ Set(key, val []byte) error }

func setJSON(txn setter, key []byte, v any) error {
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

func (s *Store) addEvent(txn *badger.Txn, now time.Time, actor Actor, action, token, details string) error {
	return setJSON(txn, s.eventKey(now), Event{Time: now, Actor: actor.String(), Action: action, Token: token, Details: details})
}

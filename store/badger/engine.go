// Package badger is the store's embedded engine (the default): one process
// owns one directory, holding it with a lock file (lock.go), refusing writes
// before the disk is full (space.go), replacing its data atomically by
// switching data directories (data.go) and reclaiming its value log (gc.go).
package badger

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	bdb "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/apptokens/apptokens/store"
)

// Options configure Open.
type Options struct {
	// Dir is the database directory; ignored when InMemory.
	Dir string
	// InMemory keeps everything in memory (tests).
	InMemory bool
	// ValueLogGCInterval is how often the value log is garbage-collected
	// (gc.go); DefaultValueLogGCInterval when 0, never when negative.
	ValueLogGCInterval time.Duration
}

// Engine is a Badger database implementing store.Engine. It is safe for
// concurrent use. Besides the Engine methods it offers Writable (why writes
// are refused now: a full disk) and Announce (who holds the directory).
type Engine struct {
	db   *bdb.DB
	lock *os.File
	// space refuses writes when the disk is too full (space.go); nil in memory.
	space *spaceGuard
	gc    gcLoop

	// dbMu: db is the open database, and Replace swaps in a new one. Every
	// read and write holds dbMu shared, the swap holds it exclusively.
	dbMu sync.RWMutex
	// writeMu is held shared by Update and Load and exclusively by Replace,
	// so that no write made meanwhile is lost with the old data.
	writeMu sync.RWMutex
	// dir is the database directory ("" in memory); dataDir is where the
	// Badger files are in it (see data.go).
	dir, dataDir string
}

var _ store.Engine = (*Engine)(nil)

// Open opens (creating if needed) the database. When another process has the
// directory open it fails at once with a *LockedError (errors.Is
// store.ErrLocked); when the filesystem has too little free space to replay
// the database's log it fails with a *NoSpaceError (errors.Is
// store.ErrNoSpace). With that room but less than the guard's reserve it
// opens, and every write is refused with a *NoSpaceError until space returns
// (see Writable).
func Open(opts Options) (*Engine, error) {
	e := &Engine{}
	var bopts bdb.Options
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
		e.lock = lock
		e.dir = opts.Dir
		if e.dataDir, err = currentDataDir(opts.Dir); err != nil {
			e.unlock()
			return nil, err
		}
		bopts = badgerOptions(e.dataDir)
		e.space = newSpaceGuard(opts.Dir, e.dataDir, bopts)
		if err := e.space.canOpen(); err != nil {
			e.unlock()
			return nil, err
		}
	}
	db, err := bdb.Open(bopts)
	if err != nil {
		e.unlock()
		return nil, fmt.Errorf("open database %s: %w", opts.Dir, err)
	}
	e.db = db
	if !opts.InMemory {
		removeStaleData(e.dir, e.dataDir)
		e.gc.start(e, opts.ValueLogGCInterval)
	}
	return e, nil
}

// badgerOptions are the store's Badger options, sized for a small footprint;
// dir "" is an in-memory database.
func badgerOptions(dir string) bdb.Options {
	o := bdb.DefaultOptions(dir).
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

// String names the database: "database DIR", or "in-memory database".
func (e *Engine) String() string {
	if e.dir == "" {
		return "in-memory database"
	}
	return "database " + e.dir
}

// Limits are Badger's bound of one transaction: 15% of the memtable in bytes
// (about 1.2 MB; a value above the value threshold counts as a pointer), and
// no bound on the keys beyond it.
func (e *Engine) Limits() store.Limits {
	return store.Limits{MaxBytes: int(15 * badgerOptions("").MemTableSize / 100)}
}

// Close stops the value-log GC, flushes and closes the database and releases
// the directory. With too little free space to flush the memtables into
// tables it leaves them to the next Open, which replays their synced log
// (nothing is lost), and returns an error wrapping store.ErrNoSpace that says
// so.
func (e *Engine) Close() error {
	e.gc.stop()
	var err error
	if e.db != nil {
		if err = e.space.canClose(); err == nil {
			err = e.db.Close()
		} else {
			// No room to flush the memtables: the synced log keeps every
			// committed write, and the next Open replays it.
			err = fmt.Errorf("%w: left for the next start to replay its log (nothing saved is lost)", err)
		}
	}
	e.unlock()
	return err
}

// DB is the open Badger database, for benchmark floors (a bare Set). It
// changes when Replace runs.
func (e *Engine) DB() *bdb.DB {
	e.dbMu.RLock()
	defer e.dbMu.RUnlock()
	return e.db
}

// View runs fn in a read-only transaction.
func (e *Engine) View(fn func(store.Reader) error) error {
	e.dbMu.RLock()
	defer e.dbMu.RUnlock()
	return e.db.View(func(txn *bdb.Txn) error { return fn(reader{txn}) })
}

// maxAttempts is how often Update runs a transaction that conflicts.
const maxAttempts = 50

// Update runs fn in a read-write transaction, retrying on conflicts with a
// growing pause (100 µs more each time), at most maxAttempts times. It is
// refused with a *NoSpaceError when the disk is too full (space.go). In an
// Update, Badger's Scan sees the transaction's own writes and adds the keys
// it reads to the conflict check (stricter than store.Engine asks; the
// domain relies on neither).
func (e *Engine) Update(fn func(store.Txn) error) error {
	e.writeMu.RLock()
	defer e.writeMu.RUnlock()
	e.dbMu.RLock()
	defer e.dbMu.RUnlock()
	if err := e.space.check(); err != nil {
		return err
	}
	var err error
	for attempt := 0; attempt < maxAttempts; attempt++ {
		err = e.db.Update(func(txn *bdb.Txn) error { return fn(rwTxn{reader{txn}}) })
		if errors.Is(err, bdb.ErrTxnTooBig) {
			return errTooBig
		}
		if !errors.Is(err, bdb.ErrConflict) {
			return err
		}
		time.Sleep(time.Duration(attempt+1) * 100 * time.Microsecond)
	}
	return store.ErrConflict
}

// Load writes through a write batch, which commits in batches Badger can
// hold, then syncs.
func (e *Engine) Load(fn func(store.Writer) error) error {
	e.writeMu.RLock()
	defer e.writeMu.RUnlock()
	e.dbMu.RLock()
	defer e.dbMu.RUnlock()
	if err := e.space.check(); err != nil {
		return err
	}
	wb := e.db.NewWriteBatch()
	defer wb.Cancel()
	if err := fn(batchWriter{wb}); err != nil {
		return err
	}
	if err := wb.Flush(); err != nil {
		return err
	}
	return e.db.Sync()
}

// RoomFor reports a *NoSpaceError when the filesystem lacks the room for a
// step (what) that writes extra bytes more than a change, such as a Replace
// of that size: the new data is written beside the old.
func (e *Engine) RoomFor(extra int64, what string) error {
	return e.space.checkFor(extra, what)
}

// Replace writes a whole new database with fn, into a fresh data directory
// (a new in-memory database in memory), syncs it and switches to it with one
// rename (data.go). A failure before the rename (fn's, a write error, a full
// disk, a crash) leaves the old data whole and in use, and its error says so;
// after it, the new data is complete. Other writers wait meanwhile; readers go
// on, and fn may read the old data (View).
func (e *Engine) Replace(fn func(store.Writer) error) error {
	e.writeMu.Lock()
	defer e.writeMu.Unlock()
	asWas := func(err error) error { return fmt.Errorf("%w (the database is as it was)", err) }
	if err := e.space.check(); err != nil {
		return asWas(err)
	}
	fresh, freshDir, err := e.openFresh()
	if err != nil {
		return asWas(err)
	}
	discard := func(err error) error {
		_ = fresh.Close()
		if freshDir != "" {
			_ = os.RemoveAll(freshDir)
		}
		return asWas(err)
	}
	wb := fresh.NewWriteBatch()
	if err := fn(batchWriter{wb}); err != nil {
		wb.Cancel()
		return discard(err)
	}
	if err := wb.Flush(); err != nil {
		return discard(err)
	}
	if err := fresh.Sync(); err != nil {
		return discard(err)
	}
	if freshDir != "" {
		// Closed before the switch: the switch reopens it from its directory.
		if err := fresh.Close(); err != nil {
			_ = os.RemoveAll(freshDir)
			return asWas(err)
		}
	}
	return e.swapIn(fresh, freshDir)
}

// openFresh opens an empty database for Replace to write: in a new data
// directory, or in memory for an in-memory engine (freshDir "").
func (e *Engine) openFresh() (fresh *bdb.DB, freshDir string, err error) {
	if e.dir == "" {
		fresh, err = bdb.Open(badgerOptions(""))
		return fresh, "", err
	}
	if freshDir, err = newDataDir(e.dir); err != nil {
		return nil, "", err
	}
	if fresh, err = bdb.Open(badgerOptions(freshDir)); err != nil {
		_ = os.RemoveAll(freshDir)
		return nil, "", err
	}
	return fresh, freshDir, nil
}

// swapIn makes fresh (a database in the data directory freshDir, already
// closed, or an open in-memory one) the engine's database. The caller holds
// writeMu exclusively. When the switch fails, the old database stays in use.
func (e *Engine) swapIn(fresh *bdb.DB, freshDir string) error {
	e.dbMu.Lock()
	defer e.dbMu.Unlock()
	if e.dir == "" { // in memory: nothing on disk to switch
		old := e.db
		e.db = fresh
		_ = old.Close()
		return nil
	}
	oldDir := e.dataDir
	reopenOld := func(cause error) error {
		db, err := bdb.Open(badgerOptions(oldDir))
		if err != nil {
			return fmt.Errorf("%w; reopening the old database failed too: %w", cause, err)
		}
		e.db = db
		return cause
	}
	if err := e.db.Close(); err != nil {
		return reopenOld(fmt.Errorf("close the old database: %w", err))
	}
	if err := setDataDir(e.dir, freshDir); err != nil {
		return reopenOld(fmt.Errorf("switch to the restored database: %w", err))
	}
	db, err := bdb.Open(badgerOptions(freshDir))
	if err != nil {
		cause := fmt.Errorf("open the restored database: %w", err)
		if err := setDataDir(e.dir, oldDir); err != nil {
			return fmt.Errorf("%w; switching back failed too: %w", cause, err)
		}
		return reopenOld(cause)
	}
	e.db, e.dataDir = db, freshDir
	e.space.setData(freshDir)
	// The old data is no longer named: what is not removed now, Open removes.
	removeStaleData(e.dir, freshDir)
	return nil
}

// errTooBig replaces Badger's raw "Txn is too big to fit into one request".
var errTooBig error = tooBigError{}

type tooBigError struct{}

func (tooBigError) Error() string {
	return "change too large for one database transaction; make it in smaller parts"
}
func (tooBigError) Unwrap() error { return store.ErrTooMany }

// reader is a store.Reader over a Badger transaction.
type reader struct{ txn *bdb.Txn }

func (r reader) Get(key []byte) ([]byte, error) {
	item, err := r.txn.Get(key)
	if errors.Is(err, bdb.ErrKeyNotFound) {
		return nil, store.ErrNoKey
	}
	if err != nil {
		return nil, err
	}
	return item.ValueCopy(nil)
}

// GetMany reads the keys one by one: Badger reads cost no round trip.
func (r reader) GetMany(keys [][]byte) ([][]byte, error) {
	out := make([][]byte, len(keys))
	for i, k := range keys {
		v, err := r.Get(k)
		if errors.Is(err, store.ErrNoKey) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if v == nil {
			v = []byte{}
		}
		out[i] = v
	}
	return out, nil
}

// ScanMany scans the prefixes one by one: Badger reads cost no round trip.
func (r reader) ScanMany(prefixes [][]byte) ([][]store.KV, error) {
	out := make([][]store.KV, len(prefixes))
	for i, p := range prefixes {
		it := r.Scan(p, store.ScanOptions{})
		for it.Next() {
			out[i] = append(out[i], store.KV{Key: bytes.Clone(it.Key()), Value: bytes.Clone(it.Value())})
		}
		err := it.Err()
		it.Close()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (r reader) Scan(prefix []byte, opts store.ScanOptions) store.Iterator {
	o := bdb.DefaultIteratorOptions
	o.Prefix = prefix
	o.Reverse = opts.Reverse
	o.PrefetchValues = !opts.KeysOnly
	start := opts.Start
	if start == nil {
		start = prefix
		if opts.Reverse {
			// Reverse iteration must seek past the last key with the prefix.
			start = append(bytes.Clone(prefix), bytes.Repeat([]byte{0xff}, 32)...)
		}
	}
	return &iterator{it: r.txn.NewIterator(o), prefix: prefix, start: start, keysOnly: opts.KeysOnly}
}

// rwTxn is a store.Txn over a Badger read-write transaction.
type rwTxn struct{ reader }

func (t rwTxn) Set(key, value []byte) error { return mapWrite(t.txn.Set(key, value)) }
func (t rwTxn) Delete(key []byte) error     { return mapWrite(t.txn.Delete(key)) }

func mapWrite(err error) error {
	if errors.Is(err, bdb.ErrTxnTooBig) {
		return errTooBig
	}
	return err
}

// iterator is a store.Iterator over a Badger iterator.
type iterator struct {
	it            *bdb.Iterator
	prefix, start []byte
	keysOnly      bool
	started       bool
	val           []byte
	err           error
}

func (i *iterator) Next() bool {
	if i.err != nil {
		return false
	}
	if !i.started {
		i.started = true
		i.it.Seek(i.start)
	} else {
		i.it.Next()
	}
	if !i.it.ValidForPrefix(i.prefix) {
		return false
	}
	if i.keysOnly {
		i.val = nil
		return true
	}
	i.val, i.err = i.it.Item().ValueCopy(i.val[:0])
	return i.err == nil
}

func (i *iterator) Key() []byte   { return i.it.Item().Key() }
func (i *iterator) Value() []byte { return i.val }
func (i *iterator) Err() error    { return i.err }
func (i *iterator) Close()        { i.it.Close() }

// batchWriter is a store.Writer over a write batch.
type batchWriter struct{ wb *bdb.WriteBatch }

func (w batchWriter) Set(key, value []byte) error { return w.wb.Set(key, value) }
func (w batchWriter) Delete(key []byte) error     { return w.wb.Delete(key) }

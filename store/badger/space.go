package badger

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	bdb "github.com/dgraph-io/badger/v4"

	"github.com/apptokens/apptokens/store"
)

// Why a full disk needs a guard, and why this one.
//
// Badger writes through memory-mapped files: the write-ahead log of the memtable
// (*.mem, 2×MemTableSize), the value log (*.vlog, 2×ValueLogFileSize) and every
// new table are created with ftruncate, which makes them sparse, and are then
// written through the mapping. On a full filesystem the first touch of a page
// that has no block behind it is not an error but SIGBUS, and Go dies: the
// gate, which never needs the disk to verify, goes down with it. The write
// itself happens on Badger's own goroutines (the writer, the memtable flusher,
// the compactors), so debug.SetPanicOnFault on the caller's goroutine cannot
// catch it: the fault has to be prevented, not handled. So:
//
//   - the files Badger writes through (*.mem, *.vlog, DISCARD) are allocated with
//     fallocate, as far as Badger writes into them (allocateLimits), at the
//     first check after they appear (Open makes one), so writes into them never
//     need a block the filesystem does not have; a failed allocation refuses
//     writes. A new log gets the first request of its own before that check:
//     the reserve covers it;
//   - before every write the guard asks the filesystem (statfs) for its free
//     space and refuses the write with ErrNoSpace when less than a reserve is
//     left; the reserve covers what Badger may still allocate because of the
//     writes let through: the next memtable log and value log, the tables of
//     the memtables waiting for a flush and one level-0 compaction
//     (spaceReserve: 107 MiB with the store's options). The same goes for
//     files (inodes), which a filesystem can run out of with bytes to spare:
//     a flush that cannot create its table is retried by Badger for ever, and
//     Close waits for it (fileReserve: 27 files with the store's options);
//   - Open refuses to start when there is not even the room to replay the
//     memtable logs left by the last run (openNeed), instead of dying in the
//     replay; with that room but less than the reserve it opens, and every
//     write is refused until space returns: the read-only start;
//   - Close does not flush the memtable into a new table when there is no room
//     for it: the synced write-ahead log already holds every committed write,
//     and the next Open replays it, as after a crash.
//
// Reads never need new blocks (a hole reads as zeros), so verification and
// every read go on; the gate keeps usage in memory within its bound meanwhile.

// NoSpaceError says how much space there is and how much the refused step needs.
type NoSpaceError struct {
	Dir  string
	Free int64  // bytes free for this process
	Need int64  // bytes the refused step needs free
	What string // the refused step: "a change", "a restore", "opening", "closing"
	// FreeInodes and NeedInodes are the files (inodes) free and needed, when
	// they are what is short (NeedInodes > 0); the bytes may then suffice.
	FreeInodes, NeedInodes int64
}

func (e *NoSpaceError) Error() string {
	if e.NeedInodes > 0 {
		return fmt.Sprintf("no space left on %s (%d free inodes; %s needs %d)", e.Dir, e.FreeInodes, e.What, e.NeedInodes)
	}
	return fmt.Sprintf("no space left on %s (%d MiB free; %s needs %d MiB)", e.Dir, e.Free>>20, e.What, (e.Need+1<<20-1)>>20)
}

// room reports a *NoSpaceError for the step what when dir's filesystem has
// less than need bytes or needFiles files (inodes) free.
func room(dir string, need, needFiles int64, what string) error {
	free, ok := freeBytes(dir)
	if ok && free < need {
		return &NoSpaceError{Dir: dir, Free: free, Need: need, What: what}
	}
	if files, ok := freeFiles(dir); ok && files < needFiles {
		return &NoSpaceError{Dir: dir, Free: free, Need: need, What: what, FreeInodes: files, NeedInodes: needFiles}
	}
	return nil
}

func (e *NoSpaceError) Unwrap() error { return store.ErrNoSpace }

// spaceReserve is the free space (bytes) the guard keeps: what Badger may
// allocate after the last write let through, with options o.
func spaceReserve(o bdb.Options) int64 {
	mt := o.MemTableSize
	return 2*mt + // the next memtable's log
		2*o.ValueLogFileSize + // the next value log
		int64(o.NumMemtables)*mt + // flushes of the memtables waiting
		int64(o.NumLevelZeroTablesStall)*mt + o.BaseLevelSize + // one level-0 compaction
		1<<20 // manifest, discard stats, headers
}

// fileReserve is the files (inodes) the guard keeps free: what Badger may
// create after the last write let through (spaceReserve's, in files): the next
// memtable log and value log, a table for each memtable waiting, the tables of
// one level-0 compaction, a manifest rewrite and a spare.
func fileReserve(o bdb.Options) int64 {
	compaction := (int64(o.NumLevelZeroTablesStall)*o.MemTableSize + o.BaseLevelSize) / o.BaseTableSize
	return 2 + int64(o.NumMemtables) + compaction + 2
}

// closeNeed is the free space (bytes) Badger's Close needs to flush the
// memtables into tables.
func closeNeed(o bdb.Options) int64 {
	return int64(o.NumMemtables+1)*o.MemTableSize + 1<<20
}

// closeFiles is the files (inodes) Close needs: a table for each memtable and
// a manifest rewrite.
func closeFiles(o bdb.Options) int64 { return int64(o.NumMemtables+1) + 1 }

// spaceGuard refuses writes before Badger would need space the filesystem does
// not have. A nil guard (an in-memory store) allows everything.
type spaceGuard struct {
	dir     string // the database directory: its filesystem, and the name in messages
	reserve int64
	close   int64
	// files and closeFiles are reserve and close in files (inodes).
	files, closeFiles int64
	// memLog and valueLog are how much of a memtable log and of a value log
	// Badger can write into before it starts the next one (allocateLimits).
	memLog, valueLog int64

	mu        sync.Mutex
	data      string                 // where Badger's files are (dir, or a data directory in it)
	allocated map[string]os.FileInfo // files already allocated, by name

	last atomic.Pointer[spaceState] // the latest check's answer
}

func newSpaceGuard(dir, data string, o bdb.Options) *spaceGuard {
	g := &spaceGuard{dir: dir, data: data, reserve: spaceReserve(o), close: closeNeed(o),
		files: fileReserve(o), closeFiles: closeFiles(o), allocated: map[string]os.FileInfo{}}
	g.memLog, g.valueLog = allocateLimits(o)
	return g
}

// allocateLimits are the bytes of a memtable log and of a value log that
// Badger writes into: it maps them at twice their size, but starts the next one
// as soon as a write request passes MemTableSize (ValueLogFileSize), and a
// request holds at most maxBatchSize (15% of MemTableSize) bytes. Allocating
// that much, with a request to spare, rather than the whole mapping saves
// 6 MiB per memtable log and 14 MiB per value log with the store's options.
func allocateLimits(o bdb.Options) (memLog, valueLog int64) {
	maxBatch := 15 * o.MemTableSize / 100
	return o.MemTableSize + 2*maxBatch, o.ValueLogFileSize + 2*maxBatch
}

// setData moves the guard to the data directory a restore switched to.
func (g *spaceGuard) setData(data string) {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.data = data
	clear(g.allocated)
}

// check allocates new log files and reports a *NoSpaceError when they cannot be
// allocated or less than the reserve is free.
func (g *spaceGuard) check() error {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	err := g.allocate()
	switch {
	case errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT):
		free, _ := freeBytes(g.dir)
		err = &NoSpaceError{Dir: g.dir, Free: free, Need: g.reserve, What: "a change"}
	case err == nil:
		err = room(g.dir, g.reserve, g.files, "a change")
	}
	g.last.Store(&spaceState{at: time.Now(), err: err})
	return err
}

// checkFor is check for a step (what) that writes extra bytes more than a
// change: a restore.
func (g *spaceGuard) checkFor(extra int64, what string) error {
	if err := g.check(); err != nil {
		return err
	}
	if g == nil {
		return nil
	}
	return room(g.dir, g.reserve+extra, g.files, what)
}

// canClose reports a *NoSpaceError when Close has no room to flush the
// memtables into tables.
func (g *spaceGuard) canClose() error {
	if g == nil {
		return nil
	}
	return room(g.dir, g.close, g.closeFiles, "closing")
}

// canOpen refuses to open a database whose memtable logs cannot be replayed
// into tables with the space left.
func (g *spaceGuard) canOpen() error {
	need, files := openNeed(g.data)
	return room(g.dir, need, files, "opening")
}

// openNeed is the free space (bytes) and files (inodes) Open needs: room to
// flush every memtable log left in dir into a table (twice its allocated size,
// for the table's index and filter), and for the new logs' first pages.
func openNeed(dir string) (need, files int64) {
	need, files = 2<<20, 4 // new memtable log and value log, manifest rewrite, a spare
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".mem") {
			need += 2 * allocatedBytes(filepath.Join(dir, e.Name()))
			files++
		}
	}
	return need, files
}

// allocate fallocates the files that Badger writes through a mapping and that
// the guard has not allocated yet: the memtable logs, the value logs and the
// value log's discard statistics.
func (g *spaceGuard) allocate() error {
	entries, err := os.ReadDir(g.data)
	if err != nil {
		return fmt.Errorf("read database directory: %w", err)
	}
	seen := make(map[string]bool, len(entries))
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".mem") && !strings.HasSuffix(name, ".vlog") && name != "DISCARD" {
			continue
		}
		seen[name] = true
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // flushed and removed meanwhile
		}
		if err != nil {
			return err
		}
		if prev, ok := g.allocated[name]; ok && os.SameFile(prev, fi) {
			continue // (a name made again after DropAll is another file)
		}
		limit := fi.Size() // DISCARD
		switch filepath.Ext(name) {
		case ".mem":
			limit = g.memLog
		case ".vlog":
			limit = g.valueLog
		}
		if err := allocateFile(filepath.Join(g.data, name), limit); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return err
		}
		g.allocated[name] = fi
	}
	for name := range g.allocated {
		if !seen[name] {
			delete(g.allocated, name)
		}
	}
	return nil
}

// spaceState is a check's answer and when it was given.
type spaceState struct {
	at  time.Time
	err error
}

// writableFor is how long Writable answers from the last check.
const writableFor = 250 * time.Millisecond

// Writable reports why changes are refused now (errors.Is store.ErrNoSpace),
// or nil when they can be made. It asks the filesystem at most every 250 ms,
// so that it stays cheap under a flood of health checks.
func (e *Engine) Writable() error {
	g := e.space
	if g == nil {
		return nil
	}
	if st := g.last.Load(); st != nil && time.Since(st.at) < writableFor {
		return st.err
	}
	return g.check()
}

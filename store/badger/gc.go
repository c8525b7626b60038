package badger

import (
	"sync"
	"time"
)

// DefaultValueLogGCInterval is how often Open's value-log GC runs.
const DefaultValueLogGCInterval = time.Minute

// gcDiscardRatio is the share of a value-log file that must be dead before GC
// rewrites it: the value log then holds at most about twice its live data.
const gcDiscardRatio = 0.5

// gcLoop runs Badger's value-log GC on a ticker, from Open to Close.
//
// Why: Badger never reclaims the value log by itself. Values above the value
// threshold (token records with long descriptions: up to 4 KB, kept out of the
// LSM tree so that a MaxBatch transaction fits; see limits.go) leave a dead copy
// there each time they are rewritten. Compaction of the LSM tree records how
// much of each file is dead; RunValueLogGC rewrites the live rest of the
// emptiest file and deletes it. It is called in a loop while it finds a file to
// rewrite, so a burst of edits is reclaimed in one round, and once right after
// Open, so that a restart gives back what a run before left. The small, often
// rewritten records (usage rows, last-used times, blocks) stay inline in the
// LSM tree, where compaction drops overwritten versions without any GC.
type gcLoop struct {
	quit chan struct{}
	done sync.WaitGroup
}

func (g *gcLoop) start(s *Engine, every time.Duration) {
	if every == 0 {
		every = DefaultValueLogGCInterval
	}
	if every < 0 {
		return
	}
	g.quit = make(chan struct{})
	g.done.Add(1)
	go func() {
		defer g.done.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			s.collectValueLog(g.quit)
			select {
			case <-g.quit:
				return
			case <-t.C:
			}
		}
	}()
}

// stop ends the loop and waits for a round under way.
func (g *gcLoop) stop() {
	if g.quit != nil {
		close(g.quit)
		g.done.Wait()
		g.quit = nil
	}
}

// collectValueLog rewrites value-log files while one is mostly dead, until quit.
func (s *Engine) collectValueLog(quit <-chan struct{}) {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	for {
		select {
		case <-quit:
			return
		default:
		}
		// Any error ends the round: ErrNoRewrite (nothing to reclaim),
		// ErrRejected (closing), or a failed rewrite, retried next round.
		// A rewrite writes: not on a full disk (space.go).
		if s.space.check() != nil || s.db.RunValueLogGC(gcDiscardRatio) != nil {
			return
		}
	}
}

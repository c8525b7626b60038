package gate

import (
	"sync/atomic"
	"time"
)

// wallClock reads the wall clock in unix nanoseconds from the monotonic clock
// plus an offset. time.Now reads two clocks, and its serializing time-stamp
// reads cost a verification more than the clock itself; time.Since reads one.
// Run re-syncs the offset at each flush, so a stepped system clock is followed
// within a second.
type wallClock struct {
	start  time.Time
	offset atomic.Int64
}

func newWallClock() *wallClock {
	c := &wallClock{start: time.Now()}
	c.sync()
	return c
}

func (c *wallClock) now() int64 { return c.offset.Load() + int64(time.Since(c.start)) }

func (c *wallClock) sync() {
	c.offset.Store(time.Now().UnixNano() - int64(time.Since(c.start)))
}

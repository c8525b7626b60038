package gate

import (
	"testing"
	"time"
)

func TestWallClock(t *testing.T) {
	c := newWallClock()
	for range 3 {
		before := time.Now().UnixNano()
		got := c.now()
		after := time.Now().UnixNano()
		if got < before-int64(time.Millisecond) || got > after+int64(time.Millisecond) {
			t.Fatalf("now %d outside [%d, %d]", got, before, after)
		}
		// A stepped wall clock is followed after a sync.
		c.offset.Add(int64(time.Hour))
		if c.now()-after < int64(59*time.Minute) {
			t.Fatal("offset not applied")
		}
		c.sync()
		time.Sleep(time.Millisecond)
	}
}

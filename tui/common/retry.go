package common

import (
	"fmt"
	"time"

	tea "github.com/charmbracelet/bubbletea"
)

// Backoff spaces the retries of a failed load: 1 s after the first failure,
// doubling up to 30 s, back to 1 s after a success. The zero value is ready.
type Backoff struct{ failures int }

// Retry delays, in order.
const (
	firstRetry = time.Second
	lastRetry  = 30 * time.Second
)

// Next is the delay before the next retry; each call counts one more failure.
func (b *Backoff) Next() time.Duration {
	d := firstRetry << min(b.failures, 5)
	b.failures++
	return min(d, lastRetry)
}

// Reset forgets the failures after a success.
func (b *Backoff) Reset() { b.failures = 0 }

// RetryLater reports a failed load of what in the status line and sends msg
// after the backoff's next delay, for the screen to load again.
func RetryLater(b *Backoff, what string, err error, msg tea.Msg) tea.Cmd {
	d := b.Next()
	return tea.Batch(
		Error(fmt.Errorf("could not load %s: %w; retrying in %s", what, err, d)),
		tea.Tick(d, func(time.Time) tea.Msg { return msg }))
}

// Loader is a screen's load cycle, the same on every screen that loads from
// the store: one load at a time; changes that arrive during a load make one
// more after it; a failed load is said in the status line and retried with
// Backoff, and changes wait for that retry. The zero value is idle.
type Loader struct {
	loading  bool
	dirty    bool // a change came while loading: load again
	retrying bool // a load failed: a retry is due after backoff
	backoff  Backoff
}

// Start marks a load as begun; call it where the load command is made.
func (l *Loader) Start() { l.loading = true }

// Loading reports whether a load is under way.
func (l *Loader) Loading() bool { return l.loading }

// Done takes a load's result. On failure it returns the command that says so
// and sends retry after the backoff (what names what failed to load); on
// success again reports whether changes came meanwhile and the screen must
// load once more.
func (l *Loader) Done(what string, err error, retry tea.Msg) (cmd tea.Cmd, again bool) {
	l.loading = false
	if err != nil {
		// Changes that came meanwhile are covered by the retry.
		l.dirty, l.retrying = false, true
		return RetryLater(&l.backoff, what, err, retry), false
	}
	l.backoff.Reset()
	again, l.dirty = l.dirty, false
	return nil, again
}

// Retry takes the retry message that Done scheduled; it reports whether the
// screen must load now.
func (l *Loader) Retry() bool {
	if !l.retrying {
		return false
	}
	l.retrying = false
	return !l.loading
}

// Changed takes a store change that concerns the screen; it reports whether
// the screen must load now (not while a load runs or a retry is due).
func (l *Loader) Changed() bool {
	switch {
	case l.retrying:
		return false
	case l.loading:
		l.dirty = true
		return false
	}
	return true
}

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

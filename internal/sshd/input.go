package sshd

import (
	"bytes"
	"image/color"
	"io"
	"sync"
	"time"

	"github.com/charmbracelet/x/ansi"
)

const (
	// probeWait bounds how long a session waits for the terminal to say its
	// background colour before the TUI starts.
	probeWait = 100 * time.Millisecond
	// lateReplies is how long after the probe a late reply is still taken out
	// of the keys (a slow link answers after probeWait).
	lateReplies = 5 * time.Second
	// partialHold is how long the start of what may be a late reply is held
	// back from the TUI waiting for the rest of it.
	partialHold = 50 * time.Millisecond
	// maxPending bounds the keys read ahead of the TUI.
	maxPending = 64 << 10
)

// sessionInput reads a session's keystrokes in one goroutine so that the
// terminal probe and the TUI share them: the probe takes only the replies to
// its own queries, and every other byte reaches the TUI, in order. Reading
// never blocks the probe: a terminal that does not answer costs probeWait.
type sessionInput struct {
	mu      sync.Mutex
	buf     []byte
	err     error
	data    chan struct{} // a byte or an error arrived
	space   chan struct{} // the reader took bytes
	strip   bool          // replies may still arrive: take them out
	stripTo time.Time
	partial time.Time // when buf began to end with the start of a reply
	closed  bool
}

func newSessionInput(src io.Reader) *sessionInput {
	in := &sessionInput{data: make(chan struct{}, 1), space: make(chan struct{}, 1)}
	go in.pump(src)
	return in
}

func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (in *sessionInput) pump(src io.Reader) {
	b := make([]byte, 4096)
	for {
		n, err := src.Read(b)
		in.mu.Lock()
		for len(in.buf) >= maxPending && !in.closed {
			in.mu.Unlock()
			<-in.space
			in.mu.Lock()
		}
		if !in.closed {
			in.buf = append(in.buf, b[:n]...)
		}
		if err != nil {
			in.err = err
		}
		in.mu.Unlock()
		notify(in.data)
		if err != nil {
			return
		}
	}
}

// Read gives the TUI the keys, without the terminal's replies to the probe.
func (in *sessionInput) Read(p []byte) (int, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for {
		avail := len(in.buf)
		var wait time.Duration = -1
		if in.strip {
			if time.Now().After(in.stripTo) {
				in.strip = false
			} else {
				rest, _, done, partialAt := cutReplies(in.buf)
				in.buf = rest
				avail = len(rest)
				if done {
					in.strip = false
				} else if partialAt >= 0 {
					if partialAt == 0 && in.err == nil {
						if in.partial.IsZero() {
							in.partial = time.Now()
						}
						if left := partialHold - time.Since(in.partial); left > 0 {
							avail, wait = 0, left
						}
					} else {
						avail = partialAt
					}
				}
			}
		}
		if avail > 0 {
			n := copy(p, in.buf[:avail])
			in.buf = in.buf[n:]
			in.partial = time.Time{}
			notify(in.space)
			return n, nil
		}
		if in.err != nil {
			return 0, in.err
		}
		in.mu.Unlock()
		if wait >= 0 {
			t := time.NewTimer(wait)
			select {
			case <-in.data:
			case <-t.C:
			}
			t.Stop()
		} else {
			<-in.data
		}
		in.mu.Lock()
	}
}

// Close ends reading: Read returns io.EOF and what arrives later is dropped.
func (in *sessionInput) Close() error {
	in.mu.Lock()
	in.closed = true
	in.buf = nil
	if in.err == nil {
		in.err = io.EOF
	}
	in.mu.Unlock()
	notify(in.data)
	notify(in.space)
	return nil
}

// probeBackground asks the terminal on out for its background colour and
// waits at most wait for the answer; it never takes a key. A reply that comes
// later is taken out of the keys for a while.
func (in *sessionInput) probeBackground(out io.Writer, wait time.Duration) (color.Color, bool) {
	if _, err := io.WriteString(out, ansi.RequestBackgroundColor+ansi.RequestPrimaryDeviceAttributes); err != nil {
		return nil, false
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	var bg color.Color
	in.mu.Lock()
	defer in.mu.Unlock()
	for {
		rest, c, done, _ := cutReplies(in.buf)
		in.buf = rest
		if c != nil {
			bg = c
		}
		if done || in.err != nil {
			return bg, bg != nil
		}
		in.mu.Unlock()
		select {
		case <-in.data:
			in.mu.Lock()
		case <-deadline.C:
			in.mu.Lock()
			// One more look: the answer may have come with the deadline.
			rest, c, done, _ := cutReplies(in.buf)
			in.buf = rest
			if c != nil {
				bg = c
			}
			if !done {
				in.strip, in.stripTo = true, time.Now().Add(lateReplies)
			}
			if len(in.buf) > 0 {
				notify(in.data)
			}
			return bg, bg != nil
		}
	}
}

// cutReplies takes the terminal's replies to the probe out of b: an OSC 11
// background colour (ESC ] 11 ; … BEL or ST) and the primary device attributes
// (ESC [ ? … c), which terminals send last. It returns the rest, the colour if
// one was there, whether the attributes came, and where an unfinished reply
// starts at the end of b (-1 if none).
func cutReplies(b []byte) (rest []byte, bg color.Color, done bool, partialAt int) {
	partialAt = -1
	out := b[:0:0]
	i := 0
	for i < len(b) {
		j := bytes.IndexByte(b[i:], 0x1b)
		if j < 0 {
			out = append(out, b[i:]...)
			break
		}
		out = append(out, b[i:i+j]...)
		i += j
		seq := b[i:]
		switch {
		case bytes.HasPrefix(seq, []byte("\x1b]11;")):
			end, n := oscEnd(seq)
			if end < 0 {
				partialAt = len(out)
				out = append(out, seq...)
				i = len(b)
				continue
			}
			if c := ansi.XParseColor(string(seq[len("\x1b]11;"):end])); c != nil {
				bg = c
			}
			i += n
		case bytes.HasPrefix(seq, []byte("\x1b[?")):
			k := 3
			for k < len(seq) && (seq[k] >= '0' && seq[k] <= '9' || seq[k] == ';') {
				k++
			}
			switch {
			case k == len(seq):
				partialAt = len(out)
				out = append(out, seq...)
				i = len(b)
			case seq[k] == 'c':
				done = true
				i += k + 1
			default:
				out = append(out, seq[:k]...)
				i += k
			}
		case isReplyPrefix(seq):
			partialAt = len(out)
			out = append(out, seq...)
			i = len(b)
		default:
			out = append(out, 0x1b)
			i++
		}
	}
	return out, bg, done, partialAt
}

// oscEnd finds the terminator of the OSC sequence at the start of seq: the
// index where its text ends and the length of the whole sequence, or -1.
func oscEnd(seq []byte) (int, int) {
	for k := 2; k < len(seq); k++ {
		switch seq[k] {
		case 0x07:
			return k, k + 1
		case 0x1b:
			if k+1 < len(seq) && seq[k+1] == '\\' {
				return k, k + 2
			}
			if k+1 == len(seq) {
				return -1, 0
			}
			return k, k // cut short: end it here
		}
	}
	return -1, 0
}

// isReplyPrefix reports whether seq is the beginning of a reply cut by a read.
func isReplyPrefix(seq []byte) bool {
	for _, r := range []string{"\x1b]11;", "\x1b[?"} {
		if len(seq) < len(r) && bytes.HasPrefix([]byte(r), seq) {
			return true
		}
	}
	return false
}

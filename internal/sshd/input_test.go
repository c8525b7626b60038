package sshd

import (
	"bytes"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// readAll reads from in until want bytes came or the test's bound passes.
func readN(t *testing.T, in io.Reader, want int) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		var b bytes.Buffer
		p := make([]byte, 64)
		for b.Len() < want {
			n, err := in.Read(p)
			b.Write(p[:n])
			if err != nil {
				break
			}
		}
		got <- b.String()
	}()
	select {
	case s := <-got:
		return s
	case <-time.After(10 * time.Second):
		t.Fatalf("no %d bytes of keys within 10 s", want)
		return ""
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestProbeTakesOnlyTheTerminalsReplies(t *testing.T) {
	pr, pw := io.Pipe()
	in := newSessionInput(pr)
	defer in.Close()
	var out lockedBuffer
	go func() {
		// Keys typed before, between and after the replies, which a slow link
		// cuts across writes.
		for _, part := range []string{"jj", "\x1b]11;rgb:ffff/ffff/f", "fff\x1b\\", "k", "\x1b[?62;", "22c", "q\x1b[A"} {
			pw.Write([]byte(part))
			time.Sleep(5 * time.Millisecond)
		}
	}()
	bg, ok := in.probeBackground(&out, 5*time.Second)
	if !ok {
		t.Fatal("the background colour was not read")
	}
	if r, g, b, _ := bg.RGBA(); r < 0xf000 || g < 0xf000 || b < 0xf000 {
		t.Fatalf("background %v, want white", bg)
	}
	if out.String() != "\x1b]11;?\x07\x1b[c" {
		t.Fatalf("query %q", out.String())
	}
	if got := readN(t, in, 6); got != "jjkq\x1b[A" {
		t.Fatalf("keys %q, want jjkq and the up arrow", got)
	}
}

func TestProbeOfASilentTerminalIsBoundedAndKeepsTheKeys(t *testing.T) {
	pr, pw := io.Pipe()
	in := newSessionInput(pr)
	defer in.Close()
	go pw.Write([]byte("/edr\r"))
	start := time.Now()
	_, ok := in.probeBackground(io.Discard, probeWait)
	if ok {
		t.Fatal("a colour from a terminal that said nothing")
	}
	// The bound is 100 ms; the check is generous for a loaded machine and
	// fails for the old wait (a second, then until the next key).
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Fatalf("the probe took %s", d)
	}
	if got := readN(t, in, 5); got != "/edr\r" {
		t.Fatalf("keys typed during the probe: %q", got)
	}
	// A reply that comes late is still taken out, even cut in two.
	go func() {
		pw.Write([]byte("a\x1b]11;rgb:0000/0000/0000\x07\x1b[?6"))
		time.Sleep(20 * time.Millisecond)
		pw.Write([]byte("2c"))
		time.Sleep(20 * time.Millisecond)
		pw.Write([]byte("b\x1b"))
	}()
	if got := readN(t, in, 3); got != "ab\x1b" {
		t.Fatalf("keys around a late reply: %q", got)
	}
}

func TestCutRepliesLeavesOtherSequences(t *testing.T) {
	rest, bg, done, partial := cutReplies([]byte("x\x1b[?1;2R\x1b]10;rgb:1/2/3\x07\x1bOA\x1b[?"))
	if bg != nil || done {
		t.Fatalf("bg %v done %v", bg, done)
	}
	if want := "x\x1b[?1;2R\x1b]10;rgb:1/2/3\x07\x1bOA\x1b[?"; string(rest) != want {
		t.Fatalf("rest %q", rest)
	}
	if !strings.HasSuffix(string(rest[partial:]), "\x1b[?") {
		t.Fatalf("partial at %d", partial)
	}
}

package main

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// memFullEnv runs TestServeMemoryWithSessions at the full size
// (100,000 tokens; 0, 10 and 30 sessions). Without it the test runs at 20,000
// tokens with 0 and 10 sessions, which CI can afford on every run.
const memFullEnv = "APPTOKENS_MEM_FULL"

// rssMiB is the resident set of process pid, in MiB.
func rssMiB(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc to read the resident set from: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatal(err)
			}
			return float64(kb) / 1024
		}
	}
	t.Fatal("VmRSS not found")
	return 0
}

// settledRSS is the resident set once it holds still: the median of the
// last eight samples, a quarter of a second apart, once they lie within 3 MiB
// of each other (start-up work, or a session's first screen, has finished),
// or after 30 s whatever they are. A measurement: nothing is asserted on time.
func settledRSS(t *testing.T, pid int) float64 {
	t.Helper()
	const window = 8
	var samples []float64
	deadline := time.Now().Add(30 * time.Second)
	for {
		samples = append(samples, rssMiB(t, pid))
		if len(samples) > window {
			samples = samples[1:]
		}
		if len(samples) == window {
			sorted := slices.Sorted(slices.Values(samples))
			if sorted[window-1]-sorted[0] <= 3 || time.Now().After(deadline) {
				return sorted[window/2]
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// screenWatch is a TUI session's output: it notes when text appeared, keeping
// only a tail of the stream.
type screenWatch struct {
	mu   sync.Mutex
	tail []byte
	want []byte
	seen chan struct{}
	once sync.Once
}

func (w *screenWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.tail = append(w.tail, p...)
	if bytes.Contains(w.tail, w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	if len(w.tail) > 4096 {
		w.tail = append(w.tail[:0], w.tail[len(w.tail)-256:]...)
	}
	return len(p), nil
}

// openTUI opens a TUI session with a PTY over its own SSH connection and
// waits until its first screen shows want.
func openTUI(t *testing.T, s *server, want string) func() {
	t.Helper()
	cfg := &gossh.ClientConfig{
		User:            "admin",
		Auth:            []gossh.AuthMethod{gossh.PublicKeys(s.admin.signer)},
		HostKeyCallback: gossh.InsecureIgnoreHostKey(),
		Timeout:         10 * time.Second,
	}
	conn, err := gossh.Dial("tcp", s.sshAddr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := conn.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	w := &screenWatch{want: []byte(want), seen: make(chan struct{})}
	sess.Stdout = w
	sess.Stderr = w
	if err := sess.RequestPty("xterm-256color", 40, 120, gossh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	if err := sess.Shell(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.seen:
	case <-time.After(60 * time.Second):
		w.mu.Lock()
		t.Fatalf("the session did not show %q; last output %q", want, w.tail)
	}
	return func() { _ = sess.Close(); _ = conn.Close() }
}

// TestServeMemoryWithSessions measures the resident set of the real `serve`
// with 0 and more TUI sessions open over SSH with a PTY (each has drawn its
// first screen), and holds it to issue 8's bars: sessions share one copy of
// the tokens, so 30 of them add at most 60 MiB at 100,000 tokens, and serve
// holds at most 120 MiB idle. By default it runs at 20,000 tokens with 10
// sessions (the same bars); APPTOKENS_MEM_FULL=1 runs the issue's own sizes.
func TestServeMemoryWithSessions(t *testing.T) {
	tokens, steps := 20000, []int{10}
	if os.Getenv(memFullEnv) == "1" {
		tokens, steps = 100000, []int{10, 30}
	} else if testing.Short() {
		t.Skip("-short: skipping the memory measurement")
	}
	const (
		idleBar     = 120.0 // MiB, serve with no session
		sessionsBar = 60.0  // MiB, added by the sessions
	)
	s := startServe(t)
	s.stop()
	// Seed a fresh database, as an operator seeds before serving. (Seeding one
	// that serve wrote first leaves Badger compacting the seed's tables at the
	// next start, holding ~60 MiB more of Badger's buffers for minutes: that is
	// the store's to tune, apart from the TUI sessions measured here.)
	if err := os.RemoveAll(s.db); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := runBin(t, s.db, "seed", "--tokens", strconv.Itoa(tokens), "--ips", "1"); code != 0 {
		t.Fatalf("seed: %s%s", out, errOut)
	}
	s.start()
	pid := s.cmd.Process.Pid
	idle := settledRSS(t, pid)
	t.Logf("serve at %d tokens, 0 sessions: RSS %.1f MiB", tokens, idle)
	heading := fmt.Sprintf("%d tokens,", tokens)
	var closers []func()
	var most float64
	for _, n := range steps {
		for len(closers) < n {
			closers = append(closers, openTUI(t, s, heading))
		}
		rss := settledRSS(t, pid)
		most = rss
		t.Logf("serve at %d tokens, %d sessions: RSS %.1f MiB (+%.1f MiB, %.2f MiB per session)", tokens, n, rss, rss-idle, (rss-idle)/float64(n))
	}
	for _, c := range closers {
		c()
	}
	t.Logf("serve at %d tokens after the sessions closed: RSS %.1f MiB", tokens, settledRSS(t, pid))
	if idle > idleBar {
		t.Errorf("serve holds %.1f MiB idle at %d tokens, bar %.0f MiB", idle, tokens, idleBar)
	}
	if add := most - idle; add > sessionsBar {
		t.Errorf("%d sessions add %.1f MiB at %d tokens, bar %.0f MiB", len(closers), add, tokens, sessionsBar)
	}
}

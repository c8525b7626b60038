package sshd

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Startups is OpenSSH's MaxStartups start:rate:full for connections that have
// not authenticated yet (the login phase).
type Startups struct {
	// Start is how many login-phase connections are always admitted.
	Start int
	// Rate is the drop probability, in percent, at Start.
	Rate int
	// Full is how many login-phase connections refuse every new one.
	Full int
}

// DefaultStartups is OpenSSH's default, 10:30:100.
func DefaultStartups() Startups { return Startups{Start: 10, Rate: 30, Full: 100} }

func (m Startups) valid() bool {
	return m.Start >= 0 && m.Full > m.Start && m.Rate >= 0 && m.Rate <= 100
}

// String is the OpenSSH spelling, start:rate:full.
func (m Startups) String() string { return fmt.Sprintf("%d:%d:%d", m.Start, m.Rate, m.Full) }

// shouldDrop reports whether a new connection is dropped when n connections are
// in the login phase, as OpenSSH's sshd does: never below Start, always from Full
// on, in between with a probability rising linearly from Rate% at Start to 100%
// at Full. intn returns a uniform integer in [0, n).
func (m Startups) shouldDrop(n int, intn func(int) int) bool {
	if n < m.Start {
		return false
	}
	if n >= m.Full || m.Rate >= 100 {
		return true
	}
	p := 100 - m.Rate
	p *= n - m.Start
	p /= m.Full - m.Start
	p += m.Rate
	return intn(100) < p
}

// sourceOf is the address block a connection is counted under: the IPv4
// address, or the IPv6 /64 (one host usually holds a whole /64).
func sourceOf(addr net.Addr) netip.Prefix {
	ip := addrIP(addr)
	if !ip.IsValid() {
		return netip.Prefix{}
	}
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}

func sourceString(p netip.Prefix) string {
	if !p.IsValid() {
		return "unknown"
	}
	if p.Addr().Is4() {
		return p.Addr().String()
	}
	return p.String()
}

// loginGate admits connections into the login phase (key exchange and
// authentication) and counts them apart from authenticated ones.
//
// A source with no connection in the login phase is never dropped at random:
// a flood from a few addresses cannot push an admin from another address out.
// A source that already has some is held to perSource and dropped with the
// MaxStartups probability. When the login phase is full, a new source takes the
// place of a login-phase connection of the source that failed to log in most
// often lately (connections that did not log in, refused keys: see failures),
// then of the sources
// that hold the most, the one silent the longest. Talk is no sign of an admin
// (an attacker can send more than a client over a slow link does); failing to
// log in, again and again, is a sign of an attacker.
type loginGate struct {
	limits    Startups
	perSource int
	maxAuthed int
	intn      func(int) int
	mu        sync.Mutex
	pending   map[netip.Prefix][]*trackedConn // oldest first
	n         int
	authed    int
	// failures counts, per source, the connections admitted into the login
	// phase that have not logged in (each counts from its admission until it
	// logs in, then no more) and the keys refused, halved for each
	// failurePeriod since the last one.
	failures map[netip.Prefix]failureCount
	now      func() time.Time
}

// failurePeriod halves a source's count of failures to log in (OpenSSH's
// PerSourcePenalties also forget with time).
const failurePeriod = time.Minute

type failureCount struct {
	n  int
	at time.Time
}

// failuresLocked is src's count of failures to log in, halved for each
// failurePeriod since the last one.
func (g *loginGate) failuresLocked(src netip.Prefix, now time.Time) int {
	f, ok := g.failures[src]
	if !ok {
		return 0
	}
	halvings := now.Sub(f.at) / failurePeriod
	if halvings >= 31 {
		return 0
	}
	return f.n >> halvings
}

// failed counts a failed authentication attempt (a refused key) of src.
func (g *loginGate) failed(src netip.Prefix) {
	g.mu.Lock()
	g.failedLocked(src)
	g.mu.Unlock()
}

// failedLocked counts a failure of src: a connection admitted into the login
// phase (until it logs in), or a refused key.
func (g *loginGate) failedLocked(src netip.Prefix) {
	now := g.now()
	if len(g.failures) >= 4096 {
		for k := range g.failures {
			if g.failuresLocked(k, now) == 0 {
				delete(g.failures, k)
			}
		}
	}
	g.failures[src] = failureCount{n: min(g.failuresLocked(src, now)+1, 1<<20), at: now}
}

// refusal says why a connection was not admitted.
type refusal string

const (
	refusedPerSource refusal = "too many connections in the login phase from this source"
	refusedStartups  refusal = "random early drop: too many connections in the login phase (MaxStartups)"
)

func newLoginGate(limits Startups, perSource, maxAuthed int, intn func(int) int) *loginGate {
	return &loginGate{limits: limits, perSource: perSource, maxAuthed: maxAuthed, intn: intn,
		pending: map[netip.Prefix][]*trackedConn{}, failures: map[netip.Prefix]failureCount{}, now: time.Now}
}

// admit takes c into the login phase, or says why not. victim, when not nil,
// is a login-phase connection that c displaced: the caller closes it.
func (g *loginGate) admit(c *trackedConn) (victim *trackedConn, why refusal, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	held := len(g.pending[c.source])
	switch {
	case held >= g.perSource:
		return nil, refusedPerSource, false
	case held > 0 && g.limits.shouldDrop(g.n, g.intn):
		return nil, refusedStartups, false
	case held == 0 && g.n >= g.limits.Full:
		victim = g.quietestOfLargest()
		g.removeLocked(victim)
	}
	g.pending[c.source] = append(g.pending[c.source], c)
	g.n++
	g.failedLocked(c.source)
	return victim, "", true
}

// quietestOfLargest is the login-phase connection that gives up its place: of
// the sources that failed to log in most often lately, then of those holding
// the most, the one silent the longest (a client logging
// in talks every round trip, a stalled one trickles at best).
func (g *loginGate) quietestOfLargest() *trackedConn {
	now := g.now()
	var victim *trackedConn
	var worst, most int
	var quiet int64
	for src, list := range g.pending {
		failed := g.failuresLocked(src, now)
		switch {
		case victim != nil && failed < worst:
			continue
		case victim != nil && failed == worst && len(list) < most:
			continue
		case victim == nil || failed > worst || len(list) > most:
			victim, worst, most = nil, failed, len(list)
		}
		for _, c := range list {
			if at := c.lastRead.Load(); victim == nil || at < quiet {
				victim, quiet = c, at
			}
		}
	}
	return victim
}

// removeLocked takes c out of the login phase; it reports whether c was in it.
func (g *loginGate) removeLocked(c *trackedConn) bool {
	if c == nil {
		return false
	}
	list := g.pending[c.source]
	for i, x := range list {
		if x == c {
			list = append(list[:i:i], list[i+1:]...)
			if len(list) == 0 {
				delete(g.pending, c.source)
			} else {
				g.pending[c.source] = list
			}
			g.n--
			return true
		}
	}
	return false
}

// promote moves c from the login phase to the authenticated connections; it
// reports false when the authenticated cap is reached (c is then counted nowhere).
func (g *loginGate) promote(c *trackedConn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.removeLocked(c) {
		// It logged in: its admission no longer counts against its source.
		if f, ok := g.failures[c.source]; ok && f.n > 0 {
			f.n--
			g.failures[c.source] = f
		}
	}
	if g.authed >= g.maxAuthed {
		return false
	}
	g.authed++
	return true
}

func (g *loginGate) releaseAuthed() {
	g.mu.Lock()
	g.authed--
	g.mu.Unlock()
}

func (g *loginGate) release(c *trackedConn) {
	g.mu.Lock()
	g.removeLocked(c)
	g.mu.Unlock()
}

// loginPhase is how many connections are in the login phase.
func (g *loginGate) loginPhase() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n
}

// closeAll closes every login-phase connection (on shutdown).
func (g *loginGate) closeAll() {
	g.mu.Lock()
	var all []*trackedConn
	for _, list := range g.pending {
		all = append(all, list...)
	}
	g.mu.Unlock()
	for _, c := range all {
		_ = c.Conn.Close()
	}
}

// connState is where a connection is in its life.
type connState int

const (
	stateLogin  connState = iota // key exchange and authentication
	stateAuthed                  // authenticated, counted against the cap
	stateOver                    // authenticated past the cap: its sessions are refused
	stateClosed
)

// trackedConn is an accepted connection: it holds its place in the login phase
// until authentication succeeds (or the login grace time ends it), then its
// place among the authenticated connections, and counts its sessions.
type trackedConn struct {
	net.Conn
	srv    *Server
	source netip.Prefix
	start  time.Time
	grace  *time.Timer
	// lastRead is when a byte last came, in Unix nanoseconds.
	lastRead atomic.Int64

	mu       sync.Mutex
	state    connState
	sessions int
}

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.lastRead.Store(time.Now().UnixNano())
	}
	return n, err
}

// authenticated is called once the handshake's authentication succeeded.
func (c *trackedConn) authenticated() {
	c.grace.Stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stateLogin {
		return
	}
	if c.srv.gate.promote(c) {
		c.state = stateAuthed
	} else {
		// Counted nowhere: it may open a session to read why it is refused,
		// and is closed after the grace time in any case.
		c.state = stateOver
		c.grace.Reset(c.srv.cfg.LoginGrace)
	}
}

// graceExpired closes a connection still in the login phase, or one
// authenticated past the cap on connections.
func (c *trackedConn) graceExpired() {
	c.mu.Lock()
	state := c.state
	c.mu.Unlock()
	if state == stateOver {
		_ = c.Conn.Close()
		return
	}
	if state != stateLogin {
		return
	}
	c.srv.logLimited("grace", c.source, "ssh connection closed: login grace time exceeded",
		"grace", c.srv.cfg.LoginGrace.String())
	_ = c.Conn.Close()
}

// openSession counts a new session channel. When refused it says why, and
// whether the whole connection must go (it is past the cap on connections).
func (c *trackedConn) openSession() (why string, closeConn, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.state == stateOver:
		return fmt.Sprintf("too many SSH connections (at most %d); try again later", c.srv.cfg.MaxConnections), true, false
	case c.sessions >= c.srv.cfg.MaxSessionsPerConn:
		return fmt.Sprintf("too many sessions on this connection (at most %d)", c.srv.cfg.MaxSessionsPerConn), false, false
	}
	c.sessions++
	return "", false, true
}

func (c *trackedConn) closeSession() {
	c.mu.Lock()
	c.sessions--
	c.mu.Unlock()
}

// Close releases the connection's place.
func (c *trackedConn) Close() error {
	c.mu.Lock()
	prev := c.state
	c.state = stateClosed
	c.mu.Unlock()
	switch prev {
	case stateLogin:
		c.grace.Stop()
		c.srv.gate.release(c)
	case stateAuthed:
		c.srv.gate.releaseAuthed()
	}
	return c.Conn.Close()
}

// refuse tells a refused client why in one line before the version exchange
// (RFC 4253 allows lines before it; OpenSSH's client shows them) and closes.
func refuse(c net.Conn, why refusal) {
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = io.WriteString(c, "apptokens: "+string(why)+"; try again later\r\n")
	_ = c.Close()
}

// rateLog lets one line per key through per period, counting what it held back.
type rateLog struct {
	period time.Duration
	now    func() time.Time
	mu     sync.Mutex
	last   map[string]rateEntry
}

type rateEntry struct {
	at   time.Time
	held int
}

func newRateLog(period time.Duration, now func() time.Time) *rateLog {
	return &rateLog{period: period, now: now, last: map[string]rateEntry{}}
}

// allow reports whether a line for key may be logged now, and how many were
// held back since the last one.
func (r *rateLog) allow(key string) (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	e, seen := r.last[key]
	if seen && now.Sub(e.at) < r.period {
		e.held++
		r.last[key] = e
		return false, 0
	}
	if len(r.last) > 4096 {
		for k, v := range r.last {
			if now.Sub(v.at) >= r.period {
				delete(r.last, k)
			}
		}
	}
	r.last[key] = rateEntry{at: now}
	return true, e.held
}

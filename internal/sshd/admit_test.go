package sshd

import (
	"math/rand/v2"
	"net"
	"testing"
	"time"
)

// fixed is a "random" source that always draws r.
func fixed(r int) func(int) int { return func(int) int { return r } }

func TestStartupsDropFollowsOpenSSH(t *testing.T) {
	m := DefaultStartups()
	for _, c := range []struct {
		n, r int
		drop bool
	}{
		{0, 0, false}, {9, 0, false}, // below start: never
		{10, 29, true}, {10, 30, false}, // at start: 30%
		{55, 64, true}, {55, 65, false}, // half way: 30 + 70*45/90 = 65%
		{99, 98, true}, {99, 99, false}, // 30 + 70*89/90 = 99%
		{100, 99, true}, {150, 0, true}, // full: always
	} {
		if got := m.shouldDrop(c.n, fixed(c.r)); got != c.drop {
			t.Errorf("n=%d r=%d: drop %v, want %v", c.n, c.r, got, c.drop)
		}
	}
	if !(Startups{Start: 1, Rate: 100, Full: 5}).shouldDrop(1, fixed(99)) {
		t.Error("rate 100 must drop everything from start on")
	}
}

func TestStartupsDropRateWithSeededSource(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	m := DefaultStartups()
	for _, c := range []struct {
		n    int
		want float64
	}{{5, 0}, {10, 0.30}, {40, 0.30 + 0.70*30/90}, {70, 0.30 + 0.70*60/90}, {99, 0.99}, {100, 1}} {
		const trials = 20000
		drops := 0
		for range trials {
			if m.shouldDrop(c.n, rng.IntN) {
				drops++
			}
		}
		if got := float64(drops) / trials; got < c.want-0.02 || got > c.want+0.02 {
			t.Errorf("n=%d: dropped %.3f, want %.3f", c.n, got, c.want)
		}
	}
}

func conn(ip string, port int) *trackedConn {
	a := &net.TCPAddr{IP: net.ParseIP(ip), Port: port}
	c := &trackedConn{source: sourceOf(a), start: time.Now()}
	c.lastRead.Store(c.start.UnixNano())
	return c
}

func TestLoginGateLimitsEachSourceAndNeverDropsANewSourceAtRandom(t *testing.T) {
	g := newLoginGate(Startups{Start: 2, Rate: 100, Full: 6}, 3, 1, fixed(0))
	var held []*trackedConn
	for i := range 3 {
		c := conn("127.0.0.2", 1000+i)
		_, why, ok := g.admit(c)
		if i < 2 && !ok {
			t.Fatalf("connection %d from one source refused below start: %s", i, why)
		}
		if i == 2 {
			if ok || why != refusedStartups {
				t.Fatalf("third from one source past start (rate 100%%): ok %v, %q", ok, why)
			}
			break
		}
		held = append(held, c)
	}
	// A source with nothing in the login phase is admitted past start.
	for i, ip := range []string{"127.0.0.3", "127.0.0.4", "127.0.0.5", "::1"} {
		if _, why, ok := g.admit(conn(ip, 2000+i)); !ok {
			t.Fatalf("new source %s refused with %d in the login phase: %s", ip, g.loginPhase(), why)
		}
	}
	if g.loginPhase() != 6 {
		t.Fatalf("login phase holds %d, want 6", g.loginPhase())
	}
	// Full: a new source displaces the connection of the largest source that
	// has been silent the longest.
	held[0].lastRead.Store(time.Now().UnixNano())
	victim, _, ok := g.admit(conn("127.0.0.9", 3000))
	if !ok || victim != held[1] {
		t.Fatalf("at full: ok %v, victim %v, want the quieter of 127.0.0.2's two", ok, victim)
	}
	if g.loginPhase() != 6 {
		t.Fatalf("after displacing, login phase holds %d", g.loginPhase())
	}
	// The per-source limit holds whatever the total.
	g2 := newLoginGate(DefaultStartups(), 2, 1, fixed(99))
	g2.admit(conn("10.0.0.1", 1))
	g2.admit(conn("10.0.0.1", 2))
	if _, why, ok := g2.admit(conn("10.0.0.1", 3)); ok || why != refusedPerSource {
		t.Fatalf("third from one source with a limit of 2: ok %v %q", ok, why)
	}
	// IPv6 sources are counted by /64.
	g2.admit(conn("2001:db8::1", 1))
	g2.admit(conn("2001:db8::2", 1))
	if _, why, ok := g2.admit(conn("2001:db8::3", 1)); ok || why != refusedPerSource {
		t.Fatalf("third from one /64: ok %v %q", ok, why)
	}
}

func TestLoginGatePromotesUpToTheAuthenticatedCap(t *testing.T) {
	g := newLoginGate(DefaultStartups(), 10, 1, fixed(0))
	a, b := conn("127.0.0.1", 1), conn("127.0.0.1", 2)
	g.admit(a)
	g.admit(b)
	if !g.promote(a) || g.loginPhase() != 1 {
		t.Fatal("first authenticated connection not promoted")
	}
	if g.promote(b) || g.loginPhase() != 0 {
		t.Fatal("second promoted past a cap of 1, or left in the login phase")
	}
	g.releaseAuthed()
	if !g.promote(conn("127.0.0.1", 3)) {
		t.Fatal("the cap was not released")
	}
}

func TestRateLogOncePerKeyPerPeriod(t *testing.T) {
	now := time.Unix(1000, 0)
	r := newRateLog(time.Minute, func() time.Time { return now })
	if ok, _ := r.allow("a"); !ok {
		t.Fatal("first line held back")
	}
	for range 5 {
		if ok, _ := r.allow("a"); ok {
			t.Fatal("a second line within the minute")
		}
	}
	if ok, _ := r.allow("b"); !ok {
		t.Fatal("another source held back")
	}
	now = now.Add(time.Minute)
	if ok, held := r.allow("a"); !ok || held != 5 {
		t.Fatalf("after a minute: ok %v, held %d, want 5", ok, held)
	}
}

func TestLoginGateDisplacesTheSourceThatFailsNotTheQuietOne(t *testing.T) {
	g := newLoginGate(Startups{Start: 1, Rate: 100, Full: 3}, 10, 1, fixed(99))
	// An attacker's address tried once before (a refused key) and holds a
	// connection that talks all the time; another holds one too.
	attacker, other := conn("127.0.0.2", 1), conn("127.0.0.3", 1)
	g.failed(attacker.source)
	g.admit(attacker)
	g.admit(other)
	// The admin's client, over a slow link, has been silent the longest.
	admin := conn("127.0.0.1", 1)
	admin.lastRead.Store(time.Now().Add(-time.Second).UnixNano())
	g.admit(admin)
	attacker.lastRead.Store(time.Now().UnixNano())
	victim, _, ok := g.admit(conn("127.0.0.4", 1))
	if !ok || victim != attacker {
		t.Fatalf("at full: ok %v, victim from %v, want the connection of the address that failed", ok, victim.source)
	}
	// A login clears what its own connection counted against its source.
	g.promote(admin)
	if n := g.failuresLocked(admin.source, time.Now()); n != 0 {
		t.Fatalf("after the admin logged in, its address counts %d failures", n)
	}
	// Failures are forgotten with time: halved each period.
	g.now = func() time.Time { return time.Now().Add(2 * failurePeriod) }
	if n := g.failuresLocked(attacker.source, g.now()); n != 0 {
		t.Fatalf("two periods later the attacker's 2 failures count %d", n)
	}
}

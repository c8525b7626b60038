package sshd

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// slowConn delays each write, as a link with a long round trip does: between
// two of its messages the server hears nothing from it for that long.
type slowConn struct {
	net.Conn
	delay time.Duration
}

func (c slowConn) Write(p []byte) (int, error) {
	time.Sleep(c.delay)
	return c.Conn.Write(p)
}

// chatter logs in again and again from src with keys the server does not know,
// one attempt every few milliseconds: its connections talk far more often than
// an admin's over a slow link, and each ends in the login phase (too many
// attempts) to be followed by a new one.
func chatter(ctx context.Context, src, addr string) {
	for ctx.Err() == nil {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: time.Second}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		stop := context.AfterFunc(ctx, func() { c.Close() })
		unknown := gossh.RetryableAuthMethod(gossh.PublicKeysCallback(func() ([]gossh.Signer, error) {
			time.Sleep(5 * time.Millisecond)
			_, k, _ := ed25519.GenerateKey(rand.Reader)
			s, err := gossh.NewSignerFromKey(k)
			return []gossh.Signer{s}, err
		}), 100)
		_, _, _, _ = gossh.NewClientConn(c, addr, &gossh.ClientConfig{User: "x", Auth: []gossh.AuthMethod{unknown},
			HostKeyCallback: gossh.InsecureIgnoreHostKey()})
		stop()
		c.Close()
	}
}

// Attackers at many addresses that keep trying unknown keys talk more than an
// admin whose link has a long round trip; the login phase is full of them, and
// each of their new connections takes someone's place. It must never be the
// admin's: a source whose connections keep ending without logging in is the
// one that gives up its places.
func TestLoginFloodOfChattyFailuresCannotKeepASlowAdminOut(t *testing.T) {
	s := startServer(t, func(c *Config) {
		c.Startups = Startups{Start: 4, Rate: 30, Full: 12}
		c.LoginGrace = 10 * time.Second
	})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range 24 {
		for range 2 {
			wg.Go(func() { chatter(ctx, fmt.Sprintf("127.0.0.%d", 2+i), s.addr) })
		}
	}
	defer func() { cancel(); wg.Wait() }()
	waitFor(t, "the login phase to fill", func() bool { return s.srv.gate.loginPhase() >= 12 })
	time.Sleep(500 * time.Millisecond)
	for i := range 5 {
		raw, err := net.DialTimeout("tcp", s.addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conn, chans, reqs, err := gossh.NewClientConn(slowConn{raw, 100 * time.Millisecond}, s.addr,
			&gossh.ClientConfig{User: "admin", Auth: []gossh.AuthMethod{gossh.PublicKeys(s.signer)},
				HostKeyCallback: gossh.InsecureIgnoreHostKey()})
		if err != nil {
			raw.Close()
			t.Fatalf("admin login %d of 5 during the flood: %v\n%s", i+1, err, s.logs)
		}
		gossh.NewClient(conn, chans, reqs).Close()
	}
}

// Package sshd serves apptokens to admins over SSH (charmbracelet/wish): public-key
// authentication against an authorized_keys file, the TUI for PTY sessions and the
// CLI command tree for sessions with a command.
package sshd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anmitsu/go-shlex"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/ssh"
	"github.com/charmbracelet/wish"
	bm "github.com/charmbracelet/wish/bubbletea"
	"github.com/muesli/termenv"
	gossh "golang.org/x/crypto/ssh"

	"github.com/apptokens/apptokens/internal/cli"
	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/tui"
)

// Config configures the SSH server.
type Config struct {
	Addr               string
	HostKeyPath        string
	AuthorizedKeysPath string
	Store              *store.Store
	Logger             *slog.Logger
	// IdleTimeout closes connections without traffic; default 30 minutes.
	IdleTimeout time.Duration
	// MaxConnections caps concurrent connections; default 32.
	MaxConnections int
	// MaxAuthTries caps authentication attempts per connection; default 6.
	MaxAuthTries int
}

// Server is the SSH server.
type Server struct {
	cfg  Config
	srv  *ssh.Server
	keys *keyring
	log  *slog.Logger

	conns atomic.Int64

	mu       sync.Mutex
	programs map[*tea.Program]struct{}
	closing  bool
}

// New checks the keys (host key generated on first start; at least one usable
// authorized key) and builds the server.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("sshd: no store")
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 30 * time.Minute
	}
	if cfg.MaxConnections == 0 {
		cfg.MaxConnections = 32
	}
	if cfg.MaxAuthTries == 0 {
		cfg.MaxAuthTries = 6
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	keys, err := newKeyring(cfg.AuthorizedKeysPath)
	if err != nil {
		return nil, fmt.Errorf("ssh: %w", err)
	}
	signer, err := loadOrCreateHostKey(cfg.HostKeyPath)
	if err != nil {
		return nil, fmt.Errorf("ssh: %w", err)
	}
	s := &Server{cfg: cfg, keys: keys, log: logger, programs: map[*tea.Program]struct{}{}}
	srv, err := wish.NewServer(
		wish.WithAddress(cfg.Addr),
		func(srv *ssh.Server) error { srv.AddHostKey(signer); return nil },
		wish.WithPublicKeyAuth(func(ctx ssh.Context, key ssh.PublicKey) bool {
			_, ok := keys.lookup(key, ctx.RemoteAddr())
			return ok
		}),
		wish.WithIdleTimeout(cfg.IdleTimeout),
		func(srv *ssh.Server) error {
			srv.ServerConfigCallback = func(ssh.Context) *gossh.ServerConfig {
				return &gossh.ServerConfig{MaxAuthTries: cfg.MaxAuthTries}
			}
			srv.ConnCallback = s.limitConn
			return nil
		},
		// wish applies these in order, so the last is the outermost.
		wish.WithMiddleware(
			bm.MiddlewareWithProgramHandler(s.program, termenv.Ascii),
			s.identity,
			s.logging,
			s.recover,
		),
	)
	if err != nil {
		return nil, fmt.Errorf("ssh: %w", err)
	}
	s.srv = srv
	return s, nil
}

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	err := s.srv.Serve(ln)
	if errors.Is(err, ssh.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown ends TUI sessions politely, stops accepting and waits for sessions to
// finish until ctx is done, then closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for p := range s.programs {
		p.Quit()
	}
	s.mu.Unlock()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close()
	}
	if errors.Is(err, ssh.ErrServerClosed) {
		return nil
	}
	return err
}

// limitConn caps concurrent connections.
func (s *Server) limitConn(_ ssh.Context, c net.Conn) net.Conn {
	if s.conns.Add(1) > int64(s.cfg.MaxConnections) {
		s.conns.Add(-1)
		s.log.Warn("ssh connection refused: too many connections", "remote", c.RemoteAddr().String(), "max", s.cfg.MaxConnections)
		return nil
	}
	return &countedConn{Conn: c, done: func() { s.conns.Add(-1) }}
}

type countedConn struct {
	net.Conn
	once sync.Once
	done func()
}

func (c *countedConn) Close() error {
	c.once.Do(c.done)
	return c.Conn.Close()
}

// actorOf is who acts in a session: the SSH user and the fingerprint of the key
// that completed the handshake.
func actorOf(sess ssh.Session) store.Actor {
	a := store.Actor{User: sess.User()}
	if pk := sess.PublicKey(); pk != nil {
		a.Fingerprint = gossh.FingerprintSHA256(pk)
	}
	return a
}

// recover is the outermost middleware: a panic in a session ends that session
// with an error, never the server. The panic value is escaped and logged with
// the stack; secrets are never panic values.
func (s *Server) recover(next ssh.Handler) ssh.Handler {
	return func(sess ssh.Session) {
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("ssh session panic", "panic", store.Printable(fmt.Sprint(r)), "stack", string(debug.Stack()))
				fmt.Fprintln(sess.Stderr(), "apptokens: internal error; the session was closed")
				_ = sess.Exit(1)
			}
		}()
		next(sess)
	}
}

func (s *Server) logging(next ssh.Handler) ssh.Handler {
	return func(sess ssh.Session) {
		start := time.Now()
		a := actorOf(sess)
		kind := "tui"
		if cmd := sess.Command(); len(cmd) > 0 {
			kind = "command " + store.Printable(cmd[0])
		}
		s.log.Info("ssh session start", "user", store.Printable(a.User), "key", a.Fingerprint,
			"remote", sess.RemoteAddr().String(), "kind", kind)
		next(sess)
		s.log.Info("ssh session end", "user", store.Printable(a.User), "key", a.Fingerprint,
			"kind", kind, "duration", time.Since(start).Round(time.Millisecond).String())
	}
}

// identity admits only sessions whose completed handshake used a key that is
// authorized now (it never trusts what the auth callback saw), applies that
// key's options, runs the session's command, refuses a session with neither a
// command nor a terminal, and hands PTY sessions on to the TUI.
func (s *Server) identity(next ssh.Handler) ssh.Handler {
	return func(sess ssh.Session) {
		entry, ok := s.keys.lookup(sess.PublicKey(), sess.RemoteAddr())
		if !ok {
			fmt.Fprintln(sess.Stderr(), "apptokens: this key is not authorized")
			_ = sess.Exit(1)
			return
		}
		if entry.hasCommand {
			// A forced command (command= in authorized_keys) runs instead of
			// whatever the client asked for, as OpenSSH does.
			args, err := shlex.Split(entry.command, true)
			if err != nil || len(args) == 0 {
				fmt.Fprintln(sess.Stderr(), "apptokens: this key's forced command cannot be parsed")
				_ = sess.Exit(1)
				return
			}
			s.command(sess, args)
			return
		}
		if args := sess.Command(); len(args) > 0 {
			s.command(sess, args)
			return
		}
		if entry.noPTY {
			fmt.Fprintln(sess.Stderr(), "apptokens: this key may run commands only (no-pty): give a command, e.g. list --json")
			_ = sess.Exit(1)
			return
		}
		if _, _, ok := sess.Pty(); !ok {
			fmt.Fprintln(sess.Stderr(), "apptokens: no terminal: use ssh -t for the TUI, or give a command, e.g. list --json")
			_ = sess.Exit(1)
			return
		}
		next(sess)
	}
}

// program builds the TUI of a PTY session, with its own renderer and the
// session's actor.
func (s *Server) program(sess ssh.Session) *tea.Program {
	pty, _, _ := sess.Pty()
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing {
		fmt.Fprintln(sess.Stderr(), "apptokens: the server is shutting down")
		_ = sess.Exit(1)
		return nil
	}
	// The OSC 52 copy goes where the program's output goes.
	var clip io.Writer = sess
	if !sess.EmulatedPty() && pty.Slave != nil {
		clip = pty.Slave
	}
	model := tui.New(tui.Deps{
		Store:     s.cfg.Store,
		Actor:     actorOf(sess),
		Renderer:  bm.MakeRenderer(sess),
		Clipboard: clip,
	})
	opts := append(bm.MakeOptions(sess), tea.WithAltScreen(), tea.WithMouseCellMotion(), tea.WithoutSignalHandler())
	p := tea.NewProgram(model, opts...)
	s.mu.Lock()
	s.programs[p] = struct{}{}
	s.mu.Unlock()
	go func() {
		<-sess.Context().Done()
		s.mu.Lock()
		delete(s.programs, p)
		s.mu.Unlock()
		// A dropped connection never sends q: end the model's store subscription here.
		if c, ok := model.(io.Closer); ok {
			_ = c.Close()
		}
	}()
	return p
}

// command runs the CLI command tree against the server's store, with the
// command's exit status.
func (s *Server) command(sess ssh.Session, args []string) {
	root := cli.NewRoot(cli.Env{
		Stdin:  sess,
		Stdout: sess,
		Stderr: sess.Stderr(),
		Actor:  actorOf(sess),
		Remote: true,
		Open: func(string) (*store.Store, func(), error) {
			return s.cfg.Store, func() {}, nil
		},
	})
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(sess.Stderr(), "apptokens: "+store.Printable(err.Error()))
		_ = sess.Exit(1)
		return
	}
	_ = sess.Exit(0)
}

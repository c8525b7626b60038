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
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"time"

	"github.com/anmitsu/go-shlex"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/ssh"
	"github.com/charmbracelet/wish"
	"github.com/charmbracelet/x/ansi"
	"github.com/prometheus/client_golang/prometheus"
	gossh "golang.org/x/crypto/ssh"

	"github.com/apptokens/apptokens/internal/cli"
	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/tui"
	"github.com/apptokens/apptokens/tui/recent"
	"github.com/apptokens/apptokens/tui/tokenset"
)

// Config configures the SSH server.
type Config struct {
	Addr               string
	HostKeyPath        string
	AuthorizedKeysPath string
	Store              *store.Store
	Logger             *slog.Logger
	// Columns and ChartWindow are config.toml's tokens-screen columns and
	// usage chart window for every session's TUI (see tui.Deps); zero: defaults.
	Columns     []string
	ChartWindow time.Duration
	// IdleTimeout closes connections without traffic; default 30 minutes.
	IdleTimeout time.Duration
	// LoginGrace is how long a connection has for the key exchange and
	// authentication together, however it trickles bytes (OpenSSH's
	// LoginGraceTime); default 30 s.
	LoginGrace time.Duration
	// Startups limits connections in the login phase (OpenSSH's MaxStartups);
	// default 10:30:100.
	Startups Startups
	// MaxStartupsPerSource caps login-phase connections from one source (an IPv4
	// address, an IPv6 /64); default 10.
	MaxStartupsPerSource int
	// MaxConnections caps concurrent authenticated connections; default 32.
	MaxConnections int
	// MaxSessionsPerConn caps concurrent session channels on one connection;
	// default 4.
	MaxSessionsPerConn int
	// MaxAuthTries caps authentication attempts per connection; default 6.
	MaxAuthTries int
	// Metrics is where the server registers its Prometheus metrics (sessions
	// open, authentication failures by method); nil keeps none.
	Metrics prometheus.Registerer

	// newModel builds a PTY session's model; tui.New unless a test injects one.
	newModel func(tui.Deps) tea.Model
	// intn draws the random early drop; math/rand/v2's IntN unless a test injects one.
	intn func(int) int
}

// Server is the SSH server.
type Server struct {
	cfg      Config
	srv      *ssh.Server
	keys     *keyring
	log      *slog.Logger
	gate     *loginGate
	refusals *rateLog
	// tokens is the token list every TUI session of this server shares.
	tokens  *tokenset.Hub
	metrics *metrics // nil: none

	// recent is the tokens' last 24 hours, shared by every session's table.
	recent *recent.Counts

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
	if cfg.LoginGrace == 0 {
		cfg.LoginGrace = 30 * time.Second
	}
	if cfg.Startups == (Startups{}) {
		cfg.Startups = DefaultStartups()
	}
	if cfg.MaxStartupsPerSource == 0 {
		cfg.MaxStartupsPerSource = 10
	}
	if cfg.MaxConnections == 0 {
		cfg.MaxConnections = 32
	}
	if cfg.MaxSessionsPerConn == 0 {
		cfg.MaxSessionsPerConn = 4
	}
	if cfg.MaxAuthTries == 0 {
		cfg.MaxAuthTries = 6
	}
	if cfg.newModel == nil {
		cfg.newModel = tui.New
	}
	if cfg.intn == nil {
		cfg.intn = rand.IntN
	}
	switch {
	case cfg.LoginGrace < 0:
		return nil, fmt.Errorf("ssh: login grace time %s: want a positive duration", cfg.LoginGrace)
	case !cfg.Startups.valid():
		return nil, fmt.Errorf("ssh: startups %s: want start:rate:full with start < full and rate 0-100", cfg.Startups)
	case cfg.MaxStartupsPerSource < 0, cfg.MaxConnections < 0, cfg.MaxSessionsPerConn < 0:
		return nil, errors.New("ssh: connection and session caps must be positive")
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
	s := &Server{cfg: cfg, keys: keys, log: logger, programs: map[*tea.Program]struct{}{},
		gate:     newLoginGate(cfg.Startups, cfg.MaxStartupsPerSource, cfg.MaxConnections, cfg.intn),
		refusals: newRateLog(time.Minute, time.Now), tokens: tokenset.NewHub(cfg.Store)}
	// Reading every token leaves transient memory behind, and so does the
	// last session leaving: return it to the OS at once.
	s.tokens.Release = debug.FreeOSMemory
	s.recent = recent.New(cfg.Store, nil)
	if cfg.Metrics != nil {
		if s.metrics, err = newMetrics(cfg.Metrics); err != nil {
			return nil, fmt.Errorf("ssh: metrics: %w", err)
		}
	}
	srv, err := wish.NewServer(
		wish.WithAddress(cfg.Addr),
		func(srv *ssh.Server) error { srv.AddHostKey(signer); return nil },
		wish.WithPublicKeyAuth(func(ctx ssh.Context, key ssh.PublicKey) bool {
			_, ok := keys.lookup(key, ctx.RemoteAddr())
			return ok
		}),
		wish.WithIdleTimeout(cfg.IdleTimeout),
		func(srv *ssh.Server) error {
			srv.ServerConfigCallback = func(ctx ssh.Context) *gossh.ServerConfig {
				return &gossh.ServerConfig{
					MaxAuthTries: cfg.MaxAuthTries,
					// Called with a nil error only when authentication has
					// succeeded (a key query or a partial success is not).
					// A refused key counts against the connection's source
					// (the "none" that every client tries first does not).
					AuthLogCallback: func(_ gossh.ConnMetadata, method string, err error) {
						s.metrics.authAttempt(method, err)
						c, ok := ctx.Value(connKey{}).(*trackedConn)
						switch {
						case !ok:
						case err == nil:
							c.authenticated()
						case method != "none":
							s.gate.failed(c.source)
						}
					},
				}
			}
			srv.ConnCallback = s.accept
			srv.ChannelHandlers = map[string]ssh.ChannelHandler{"session": s.limitSessions(ssh.DefaultSessionHandler)}
			return nil
		},
		// wish applies these in order, so the last is the outermost.
		wish.WithMiddleware(
			s.tui,
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
	s.gate.closeAll()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close()
	}
	// Connections accepted while the listener was closing.
	s.gate.closeAll()
	if errors.Is(err, ssh.ErrServerClosed) {
		return nil
	}
	return err
}

// connKey holds a connection's *trackedConn in its ssh.Context.
type connKey struct{}

// accept admits a new connection into the login phase, or refuses it with a
// line saying why; the login grace timer starts now.
func (s *Server) accept(ctx ssh.Context, c net.Conn) net.Conn {
	tc := &trackedConn{Conn: c, srv: s, source: sourceOf(c.RemoteAddr()), start: time.Now()}
	tc.lastRead.Store(tc.start.UnixNano())
	tc.grace = time.AfterFunc(s.cfg.LoginGrace, tc.graceExpired)
	victim, why, ok := s.gate.admit(tc)
	if !ok {
		tc.grace.Stop()
		tc.mu.Lock()
		tc.state = stateClosed
		tc.mu.Unlock()
		s.logLimited("refused", tc.source, "ssh connection refused", "reason", string(why),
			"login_phase", s.gate.loginPhase(), "max_startups", s.cfg.Startups.String(),
			"per_source", s.cfg.MaxStartupsPerSource)
		refuse(c, why)
		return nil
	}
	if victim != nil {
		s.logLimited("displaced", victim.source, "ssh connection in the login phase closed to make room for another source",
			"max_startups", s.cfg.Startups.String())
		_ = victim.Conn.Close()
	}
	ctx.SetValue(connKey{}, tc)
	return tc
}

// logLimited logs msg at most once a minute for each kind and source, with the
// number of lines held back since the last one.
func (s *Server) logLimited(kind string, src netip.Prefix, msg string, args ...any) {
	ok, held := s.refusals.allow(kind + " " + src.String())
	if !ok {
		return
	}
	args = append([]any{"source", sourceString(src)}, args...)
	if held > 0 {
		args = append(args, "more_since_last_line", held)
	}
	s.log.Warn(msg, args...)
}

// limitSessions caps the session channels of a connection and refuses every
// session of a connection authenticated past the cap on connections.
func (s *Server) limitSessions(next ssh.ChannelHandler) ssh.ChannelHandler {
	return func(srv *ssh.Server, conn *gossh.ServerConn, ch gossh.NewChannel, ctx ssh.Context) {
		tc, ok := ctx.Value(connKey{}).(*trackedConn)
		if !ok {
			_ = ch.Reject(gossh.Prohibited, "connection not tracked")
			return
		}
		if why, closeConn, ok := tc.openSession(); !ok {
			s.logLimited("session refused", tc.source, "ssh session refused", "user", store.Printable(conn.User()),
				"reason", why)
			_ = ch.Reject(gossh.ResourceShortage, why)
			if closeConn {
				_ = conn.Close()
			}
			return
		}
		defer tc.closeSession()
		s.metrics.sessionOpened()
		defer s.metrics.sessionClosed()
		next(srv, conn, ch, ctx)
	}
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
// with an error, never the server. It is logged through the server's logger
// with the session's identity, the panic value escaped (secrets are never
// panic values) and the stack; a PTY session's terminal is put back (main
// screen, cursor shown, mouse and bracketed paste off) in case the TUI was
// drawing when it happened.
func (s *Server) recover(next ssh.Handler) ssh.Handler {
	return func(sess ssh.Session) {
		defer func() {
			if r := recover(); r != nil {
				s.sessionLog(sess).Error("ssh session panic", "panic", store.Printable(fmt.Sprint(r)),
					"stack", string(debug.Stack()))
				if _, _, ok := sess.Pty(); ok {
					_, _ = io.WriteString(sess, restoreTerminal)
				}
				fmt.Fprintln(sess.Stderr(), "apptokens: internal error; the session was closed")
				_ = sess.Exit(1)
			}
		}()
		next(sess)
	}
}

// sessionLog is the server's logger with the session's identity: the SSH user
// (escaped), the key's SHA256: fingerprint and the client's address.
func (s *Server) sessionLog(sess ssh.Session) *slog.Logger {
	a := actorOf(sess)
	return s.log.With("user", store.Printable(a.User), "key", a.Fingerprint, "remote", sess.RemoteAddr().String())
}

// restoreTerminal undoes what the TUI turns on.
const restoreTerminal = ansi.ResetModeBracketedPaste + ansi.ResetModeMouseButtonEvent + ansi.ResetModeMouseExtSgr +
	ansi.ResetModeAltScreenSaveCursor + ansi.SetModeTextCursorEnable

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

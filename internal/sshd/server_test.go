package sshd

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	gossh "golang.org/x/crypto/ssh"

	"github.com/apptokens/apptokens/store/storetest"
	"github.com/apptokens/apptokens/tui"
	"github.com/apptokens/apptokens/tui/common"
)

// testServer is an in-process SSH server on 127.0.0.1 and a random port, over
// a real store, with one authorized admin key.
type testServer struct {
	srv    *Server
	addr   string
	signer gossh.Signer
	logs   *lockedBuffer
}

func startServer(t *testing.T, mod func(*Config)) *testServer {
	t.Helper()
	dir := t.TempDir()
	st, err := storetest.OpenWith(storetest.Options{Dir: filepath.Join(dir, "db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(keys, gossh.MarshalAuthorizedKey(signer.PublicKey()), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	cfg := Config{Addr: "127.0.0.1:0", HostKeyPath: filepath.Join(dir, "host_key"), AuthorizedKeysPath: keys,
		Store: st, Logger: slog.New(slog.NewTextHandler(logs, nil))}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return &testServer{srv: srv, addr: ln.Addr().String(), signer: signer, logs: logs}
}

func (s *testServer) dial(t *testing.T) *gossh.Client {
	t.Helper()
	c, err := gossh.Dial("tcp", s.addr, &gossh.ClientConfig{User: "admin", Auth: []gossh.AuthMethod{gossh.PublicKeys(s.signer)},
		HostKeyCallback: gossh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ptySession opens a session with a PTY of w×h and a shell; its output goes
// to the returned buffer.
func ptySession(t *testing.T, c *gossh.Client, w, h int) (*gossh.Session, io.WriteCloser, *lockedBuffer) {
	t.Helper()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	if err := sess.RequestPty("xterm-256color", h, w, gossh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	out := &lockedBuffer{}
	sess.Stdout, sess.Stderr = out, out
	stdin, err := sess.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.Shell(); err != nil {
		t.Fatal(err)
	}
	return sess, stdin, out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSessionsPerConnectionAreCapped(t *testing.T) {
	s := startServer(t, nil)
	c := s.dial(t)
	var open []*gossh.Session
	for i := range 4 {
		sess, err := c.NewSession()
		if err != nil {
			t.Fatalf("session %d of 4: %v", i+1, err)
		}
		open = append(open, sess)
	}
	_, err := c.NewSession()
	var open5 *gossh.OpenChannelError
	if !errors.As(err, &open5) || open5.Reason != gossh.ResourceShortage ||
		open5.Message != "too many sessions on this connection (at most 4)" {
		t.Fatalf("fifth session: %v, want refused as too many sessions on this connection", err)
	}
	// A closed session gives its place back.
	open[0].Close()
	waitFor(t, "a session's place to come back", func() bool {
		sess, err := c.NewSession()
		if err != nil {
			return false
		}
		open[0] = sess
		return true
	})
	if !strings.Contains(s.logs.String(), "too many sessions on this connection") {
		t.Fatalf("the refusal was not logged:\n%s", s.logs.String())
	}
}

// sizeModel shows the window size and the status line it was given.
type sizeModel struct {
	w, h   int
	status string
}

func (m *sizeModel) Init() tea.Cmd { return nil }

func (m *sizeModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.w, m.h = msg.Width, msg.Height
	case common.StatusMsg:
		m.status = msg.Text
	case tea.KeyMsg:
		return m, tea.Quit
	}
	return m, nil
}

func (m *sizeModel) View() string { return fmt.Sprintf("size %dx%d [%s]", m.w, m.h, m.status) }

func TestHugePtyIsDrawnAt1000x500(t *testing.T) {
	s := startServer(t, func(c *Config) { c.newModel = func(tui.Deps) tea.Model { return &sizeModel{} } })
	sess, _, out := ptySession(t, s.dial(t), 10000, 10000)
	want := "size 1000x500 [The terminal is 10000×10000: drawn at 1000×500, the largest size served]"
	waitFor(t, want, func() bool { return strings.Contains(out.String(), want) })
	if err := sess.WindowChange(3, 20000); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a window change clamped", func() bool { return strings.Contains(out.String(), "size 1000x3 [The terminal is 20000×3") })
	if err := sess.WindowChange(40, 120); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "an ordinary size passed as it is", func() bool { return strings.Contains(out.String(), "size 120x40") })
}

func TestHugePtyStatusLineInTheTUI(t *testing.T) {
	s := startServer(t, nil)
	_, stdin, out := ptySession(t, s.dial(t), 5000, 100)
	waitFor(t, "the status line", func() bool {
		return strings.Contains(out.String(), "The terminal is 5000×100: drawn at 1000×100")
	})
	stdin.Write([]byte("q"))
}

// panicModel panics where it is told to.
type panicModel struct{ in string }

func (m *panicModel) Init() tea.Cmd { return nil }

func (m *panicModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	if k, ok := msg.(tea.KeyMsg); ok && k.String() == "p" {
		switch m.in {
		case "update":
			panic("boom in update")
		case "command":
			// Inside a batch, inside a sequence: Bubble Tea runs these itself.
			noop := func() tea.Msg { return nil }
			return m, tea.Batch(noop, tea.Sequence(noop, func() tea.Msg { panic("boom in command") }))
		case "view":
			m.in = "viewing"
		}
	}
	return m, nil
}

func (m *panicModel) View() string {
	if m.in == "viewing" {
		panic("boom in view")
	}
	return "ready to panic"
}

func TestPanicInASessionIsLoggedWithItsIdentityAndRestoresTheTerminal(t *testing.T) {
	for _, where := range []string{"update", "command", "view"} {
		t.Run(where, func(t *testing.T) {
			s := startServer(t, func(c *Config) {
				c.newModel = func(tui.Deps) tea.Model { return &panicModel{in: where} }
			})
			sess, stdin, out := ptySession(t, s.dial(t), 80, 24)
			waitFor(t, "the model", func() bool { return strings.Contains(out.String(), "ready to panic") })
			stdin.Write([]byte("p"))
			err := sess.Wait()
			var exit *gossh.ExitError
			if !errors.As(err, &exit) || exit.ExitStatus() != 1 {
				t.Fatalf("session ended with %v, want exit status 1", err)
			}
			o := out.String()
			if !strings.Contains(o, "apptokens: internal error; the session was closed") {
				t.Fatalf("no error line for the client:\n%q", o)
			}
			// The client's terminal is back on the main screen.
			if enter, leave := strings.LastIndex(o, "\x1b[?1049h"), strings.LastIndex(o, "\x1b[?1049l"); enter < 0 || leave < enter {
				t.Fatalf("left in the alternate screen (enter at %d, leave at %d):\n%q", enter, leave, o)
			}
			logs := s.logs.String()
			fp := gossh.FingerprintSHA256(s.signer.PublicKey())
			if !strings.Contains(logs, "ssh session panic") || !strings.Contains(logs, "user=admin") ||
				!strings.Contains(logs, "key="+fp) || !strings.Contains(logs, "boom in "+where) {
				t.Fatalf("the panic was not logged with the session's identity:\n%s", logs)
			}
			// The server goes on serving.
			sess2, _, out2 := ptySession(t, s.dial(t), 80, 24)
			waitFor(t, "a new session after the panic", func() bool { return strings.Contains(out2.String(), "ready to panic") })
			sess2.Close()
		})
	}
}

func TestPanicOutsideTheTUIIsLoggedWithItsIdentity(t *testing.T) {
	s := startServer(t, func(c *Config) {
		c.newModel = func(tui.Deps) tea.Model { panic("boom while building the model") }
	})
	sess, _, out := ptySession(t, s.dial(t), 80, 24)
	err := sess.Wait()
	var exit *gossh.ExitError
	if !errors.As(err, &exit) || exit.ExitStatus() != 1 {
		t.Fatalf("session ended with %v, want exit status 1", err)
	}
	if o := out.String(); !strings.Contains(o, restoreTerminal) || !strings.Contains(o, "apptokens: internal error") {
		t.Fatalf("output %q: want the terminal restored and an error line", o)
	}
	fp := gossh.FingerprintSHA256(s.signer.PublicKey())
	if logs := s.logs.String(); !strings.Contains(logs, "ssh session panic") || !strings.Contains(logs, "key="+fp) ||
		!strings.Contains(logs, "boom while building the model") {
		t.Fatalf("the panic was not logged with the session's identity:\n%s", logs)
	}
}

func TestAuthenticatedConnectionsHaveTheirOwnCap(t *testing.T) {
	s := startServer(t, func(c *Config) { c.MaxConnections = 1 })
	// Connections in the login phase do not take the authenticated place.
	for range 5 {
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	first := s.dial(t)
	if _, err := first.NewSession(); err != nil {
		t.Fatalf("the only authenticated connection: %v", err)
	}
	second := s.dial(t)
	_, err := second.NewSession()
	var refused *gossh.OpenChannelError
	if !errors.As(err, &refused) || refused.Message != "too many SSH connections (at most 1); try again later" {
		t.Fatalf("a session past the cap: %v", err)
	}
	first.Close()
	waitFor(t, "the authenticated place to come back", func() bool {
		c, err := gossh.Dial("tcp", s.addr, &gossh.ClientConfig{User: "admin", Auth: []gossh.AuthMethod{gossh.PublicKeys(s.signer)},
			HostKeyCallback: gossh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
		if err != nil {
			return false
		}
		defer c.Close()
		sess, err := c.NewSession()
		if err != nil {
			return false
		}
		sess.Close()
		return true
	})
}

// TestSessionsGetConfiguredColumnsAndChartWindow: config.toml's tokens-screen
// columns and chart window reach every SSH session's TUI, not only the local one.
func TestSessionsGetConfiguredColumnsAndChartWindow(t *testing.T) {
	var got tui.Deps
	s := startServer(t, func(c *Config) {
		c.Columns = []string{"last_used", "name"}
		c.ChartWindow = 7 * 24 * time.Hour
		c.newModel = func(d tui.Deps) tea.Model { got = d; return &panicModel{} }
	})
	_, stdin, out := ptySession(t, s.dial(t), 80, 24)
	waitFor(t, "the model", func() bool { return strings.Contains(out.String(), "ready to panic") })
	stdin.Write([]byte("q"))
	if strings.Join(got.Columns, ",") != "last_used,name" || got.ChartWindow != 7*24*time.Hour {
		t.Fatalf("session TUI got columns %q and chart window %v; want last_used,name and 168h", got.Columns, got.ChartWindow)
	}
}

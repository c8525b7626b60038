package sshd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/ssh"
	"github.com/lucasb-eyer/go-colorful"
	"github.com/muesli/termenv"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/tui"
	"github.com/apptokens/apptokens/tui/common"
)

// The largest terminal the TUI is drawn for: a larger PTY is drawn at this size
// (a frame grows with the cells, and a client chooses its size).
const (
	MaxPtyWidth  = 1000
	MaxPtyHeight = 500
)

// clampWindow is the size the TUI is drawn at for a terminal of w, and whether
// it is smaller than the terminal.
func clampWindow(w ssh.Window) (width, height int, clamped bool) {
	width, height = min(w.Width, MaxPtyWidth), min(w.Height, MaxPtyHeight)
	return width, height, width != w.Width || height != w.Height
}

// tui runs the TUI of a PTY session (identity lets only those through): its
// input read once for the terminal probe and the TUI, its window clamped, a
// panic logged with the session's identity and the terminal restored.
func (s *Server) tui(next ssh.Handler) ssh.Handler {
	return func(sess ssh.Session) {
		pty, windows, ok := sess.Pty()
		if !ok {
			next(sess)
			return
		}
		var src io.Reader = sess
		var out io.Writer = sess
		if !sess.EmulatedPty() && pty.Slave != nil {
			src, out = pty.Slave, pty.Slave
		}
		in := newSessionInput(src)
		defer in.Close()
		p, g := s.program(sess, pty, in, out)
		if p == nil {
			return
		}
		ctx, cancel := context.WithCancel(sess.Context())
		defer cancel()
		go resize(ctx, p, windows)
		_, err := p.Run()
		cancel()
		if v, stack, where, failed := g.failure(); failed {
			s.sessionLog(sess).Error("ssh session panic", "in", where, "panic", store.Printable(fmt.Sprint(v)),
				"stack", string(stack))
			fmt.Fprintln(sess.Stderr(), "apptokens: internal error; the session was closed")
			_ = sess.Exit(1)
			return
		}
		if errors.Is(err, tea.ErrProgramPanic) {
			// A panic inside Bubble Tea itself (it printed the stack on stdout).
			s.sessionLog(sess).Error("ssh session panic inside Bubble Tea")
			fmt.Fprintln(sess.Stderr(), "apptokens: internal error; the session was closed")
			_ = sess.Exit(1)
			return
		}
		next(sess)
	}
}

// resize sends the program the session's window sizes, clamped, with a status
// line when the terminal is larger than what is drawn.
func resize(ctx context.Context, p *tea.Program, windows <-chan ssh.Window) {
	for {
		select {
		case <-ctx.Done():
			p.Quit()
			return
		case w, ok := <-windows:
			if !ok {
				windows = nil
				continue
			}
			width, height, clamped := clampWindow(w)
			p.Send(tea.WindowSizeMsg{Width: width, Height: height})
			if clamped {
				p.Send(common.StatusMsg{Text: fmt.Sprintf("The terminal is %d×%d: drawn at %d×%d, the largest size served",
					w.Width, w.Height, width, height)})
			}
		}
	}
}

// program builds the TUI of a PTY session, with its own renderer and the
// session's actor; nil when the server is shutting down.
func (s *Server) program(sess ssh.Session, pty ssh.Pty, in *sessionInput, out io.Writer) (*tea.Program, *guard) {
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing {
		fmt.Fprintln(sess.Stderr(), "apptokens: the server is shutting down")
		_ = sess.Exit(1)
		return nil, nil
	}
	model := s.cfg.newModel(tui.Deps{
		Store:    s.cfg.Store,
		Actor:    actorOf(sess),
		Renderer: s.renderer(sess, pty, in, out),
		// The OSC 52 copy goes where the program's output goes.
		Clipboard:   out,
		Logger:      s.sessionLog(sess),
		Columns:     s.cfg.Columns,
		ChartWindow: s.cfg.ChartWindow,
		Tokens:      s.tokens,
		Recent:      s.recent,
	})
	g := &guard{inner: model}
	p := tea.NewProgram(g, tea.WithInput(in), tea.WithOutput(out),
		tea.WithAltScreen(), tea.WithMouseCellMotion(), tea.WithoutSignalHandler())
	g.quit = p.Quit
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
	return p, g
}

// renderer is the session's own renderer, for the client's terminal: its TERM
// and environment, and its background colour if it says so within probeWait.
func (s *Server) renderer(sess ssh.Session, pty ssh.Pty, in *sessionInput, out io.Writer) *lipgloss.Renderer {
	if pty.Term == "" || pty.Term == "dumb" {
		return lipgloss.NewRenderer(out, termenv.WithProfile(termenv.Ascii))
	}
	env := sshEnviron(append(sess.Environ(), "TERM="+pty.Term))
	r := lipgloss.NewRenderer(out, termenv.WithEnvironment(env), termenv.WithUnsafe(), termenv.WithColorCache(true))
	if bg, ok := in.probeBackground(out, probeWait); ok {
		if c, ok := colorful.MakeColor(bg); ok {
			_, _, l := c.Hsl()
			r.SetHasDarkBackground(l < 0.5)
		}
	}
	return r
}

// sshEnviron is a session's environment for termenv.
type sshEnviron []string

func (e sshEnviron) Environ() []string { return e }

func (e sshEnviron) Getenv(k string) string {
	for _, v := range e {
		if strings.HasPrefix(v, k+"=") {
			return v[len(k)+1:]
		}
	}
	return ""
}

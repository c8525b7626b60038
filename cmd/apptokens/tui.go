package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/mattn/go-isatty"
	"github.com/muesli/termenv"

	"github.com/apptokens/apptokens/internal/config"
	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/tui"
	"github.com/apptokens/apptokens/tui/recent"
	"github.com/apptokens/apptokens/tui/tokenset"
)

// runTUI starts the TUI on the local database, on this terminal. Every way it
// ends restores the terminal (main screen, cursor shown, mouse reporting off):
// Bubble Tea does so for q, ctrl+c, SIGINT and SIGTERM; SIGHUP (the terminal
// window closed, the link to it dropped) and SIGQUIT stop the program here so
// that it does too, instead of the process dying with the terminal broken.
//
// set is config.toml's: the theme auto (ask the terminal), dark, light or
// none (no colour); the tokens screen's columns in order; the chart window.
func runTUI(st *store.Store, set config.TUI) error {
	if !isatty.IsTerminal(os.Stdin.Fd()) || !isatty.IsTerminal(os.Stdout.Fd()) {
		return errNoTerminal
	}
	m := tui.New(tui.Deps{
		Store:       st,
		Actor:       store.Actor{User: localUser()},
		Renderer:    themed(localRenderer(os.Stdout, os.Getenv), set.Theme),
		Columns:     set.Columns,
		ChartWindow: set.Window(),
		Clipboard:   os.Stdout,
		Tokens:      tokenset.NewHub(st),
		Recent:      recent.New(st, nil),
	})
	p := tea.NewProgram(m, tea.WithAltScreen(), tea.WithMouseCellMotion())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGQUIT)
	defer signal.Stop(sigs)
	stopped := make(chan os.Signal, 1)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case sig := <-sigs:
			stopped <- sig
			// Kill ends the event loop at once (a hung-up terminal takes no
			// more input) and Run restores the terminal on its way out.
			p.Kill()
		case <-done:
		}
	}()
	_, err := p.Run()
	if c, ok := m.(io.Closer); ok {
		_ = c.Close() // a killed program did not quit through the model
	}
	select {
	case sig := <-stopped:
		return fmt.Errorf("stopped by %v", sig)
	default:
	}
	return err
}

// localRenderer is the renderer for this terminal, knowing its background.
// termenv asks the terminal (OSC 11) but never under tmux or screen (TERM
// tmux-* or screen-*), where it falls back to COLORFGBG, and without that
// to dark: a light terminal then gets near-white headings on white. Under a
// multiplexer, COLORFGBG (the terminal's own word, e.g. "0;15" for black on
// white) is honoured first, else the multiplexer is asked: tmux answers OSC 11
// for its pane.
func localRenderer(out *os.File, getenv func(string) string) *lipgloss.Renderer {
	r := lipgloss.NewRenderer(out)
	term := getenv("TERM")
	if !strings.HasPrefix(term, "tmux") && !strings.HasPrefix(term, "screen") {
		return r // termenv asks the terminal, then reads COLORFGBG
	}
	if dark, ok := colorFGBGDark(getenv("COLORFGBG")); ok {
		r.SetHasDarkBackground(dark)
		return r
	}
	// Ask as termenv does for other terminals: it skips the query only
	// because of TERM.
	asked := termenv.NewOutput(out, termenv.WithEnvironment(queryEnv{getenv}))
	r.SetHasDarkBackground(asked.HasDarkBackground())
	return r
}

// themed applies config.toml's theme to r: dark or light set the background
// instead of asking the terminal, none draws without colour; auto keeps r.
func themed(r *lipgloss.Renderer, theme string) *lipgloss.Renderer {
	switch theme {
	case "dark", "light":
		r.SetHasDarkBackground(theme == "dark")
	case "none":
		r.SetColorProfile(termenv.Ascii)
	}
	return r
}

// colorFGBGDark reads COLORFGBG ("fg;bg" or "fg;default;bg", ANSI colour
// numbers): whether the background is dark, and whether it said.
func colorFGBGDark(v string) (dark, ok bool) {
	f := strings.Split(v, ";")
	if len(f) < 2 {
		return false, false
	}
	bg, err := strconv.Atoi(f[len(f)-1])
	if err != nil || bg < 0 || bg > 15 {
		return false, false
	}
	_, _, l := termenv.ConvertToRGB(termenv.ANSIColor(bg)).Hsl()
	return l < 0.5, true
}

// queryEnv is the environment with TERM as a terminal that termenv queries.
type queryEnv struct{ getenv func(string) string }

func (e queryEnv) Environ() []string { return os.Environ() }

func (e queryEnv) Getenv(k string) string {
	if k == "TERM" {
		return "xterm-256color"
	}
	return e.getenv(k)
}

package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/mattn/go-isatty"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/tui"
)

// runTUI starts the TUI on the local database, on this terminal. Every way it
// ends restores the terminal (main screen, cursor shown, mouse reporting off):
// Bubble Tea does so for q, ctrl+c, SIGINT and SIGTERM; SIGHUP (the terminal
// window closed, the link to it dropped) and SIGQUIT stop the program here so
// that it does too, instead of the process dying with the terminal broken.
func runTUI(st *store.Store) error {
	if !isatty.IsTerminal(os.Stdin.Fd()) || !isatty.IsTerminal(os.Stdout.Fd()) {
		return errNoTerminal
	}
	m := tui.New(tui.Deps{
		Store:     st,
		Actor:     store.Actor{User: localUser()},
		Renderer:  lipgloss.NewRenderer(os.Stdout),
		Clipboard: os.Stdout,
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

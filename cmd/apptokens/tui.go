package main

import (
	"os"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/mattn/go-isatty"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/tui"
)

// runTUI starts the TUI on the local database, on this terminal.
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
	_, err := tea.NewProgram(m, tea.WithAltScreen(), tea.WithMouseCellMotion()).Run()
	return err
}

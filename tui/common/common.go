// Package common holds what the screens of the TUI share: the component
// interface, the per-session context and the messages screens send to the root.
// Screens never import each other; they talk through these messages.
package common

import (
	"errors"
	"fmt"
	"time"

	"github.com/charmbracelet/bubbles/help"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/apptokens/apptokens/internal/secret"
	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/tui/styles"
	"github.com/apptokens/apptokens/tui/tokenset"
)

// Context is what every screen of one session needs besides its store.
type Context struct {
	Styles *styles.Styles
	Actor  store.Actor
	Now    func() time.Time
	// Sparklines draws a token's last 24 hours for the tokens table; nil
	// hides that column.
	Sparklines Sparklines
}

// Sparklines draws a token's requests of the last 24 hours as 24 cells, ""
// while they are not known (tui/recent).
type Sparklines interface {
	Sparkline(id string) string
}

// Component is a screen or modal: a model that can be sized and lists its keys.
type Component interface {
	tea.Model
	help.KeyMap
	SetSize(width, height int)
	// Typing reports whether a text field has focus, so that the root leaves
	// global keys such as q to it.
	Typing() bool
}

// Interrupter is a component with its own rule for ctrl+c (DESIGN: ctrl+c never
// loses a secret or typed changes). Interrupt returns the command to run instead
// of quitting and true, or false when quitting loses nothing here.
type Interrupter interface {
	Interrupt() (tea.Cmd, bool)
}

// QuitMsg asks the root to quit (after a question that ctrl+c asked).
type QuitMsg struct{}

// Quit is the command that sends QuitMsg.
func Quit() tea.Msg { return QuitMsg{} }

// StatusMsg is a result or an error for the status line.
type StatusMsg struct {
	Text string
	Err  error
}

// Status returns a command that reports a result in the status line.
func Status(format string, args ...any) tea.Cmd {
	text := fmt.Sprintf(format, args...)
	return func() tea.Msg { return StatusMsg{Text: text} }
}

// Error returns a command that reports err in the status line.
func Error(err error) tea.Cmd {
	return func() tea.Msg { return StatusMsg{Err: err} }
}

// ConfirmMsg asks the root to open a confirmation modal. Yes runs when the user
// confirms. Require is text the user must type (a token name); empty means a y/n question.
type ConfirmMsg struct {
	Title   string
	Lines   []string
	Require string
	Yes     tea.Cmd
}

// PromptMsg asks the root to open a modal that asks for one line of text.
// Submit runs with what was typed when enter is pressed (esc cancels).
type PromptMsg struct {
	Title       string
	Lines       []string
	Placeholder string
	// Value is the answer the field starts with (a default to accept with
	// enter), "" for none.
	Value string
	// Check, when set, tells live what is wrong with the text (shown under
	// the field; enter is refused while it fails), or nil when it is good;
	// its ok text (e.g. what the value means) shows when the text passes.
	Check  func(text string) (ok string, err error)
	Submit func(text string) tea.Cmd
}

// RotatedMsg is sent when a token got a new secret: the root shows it once,
// as it shows a new token's. OldUntil is when the old secret stops working
// (zero or past: it stopped at once).
type RotatedMsg struct {
	Token    store.Token
	Secret   secret.Token
	OldUntil time.Time
}

// CloseModalMsg closes the open modal.
type CloseModalMsg struct{}

// OpenUsageMsg opens the usage screen of a token.
type OpenUsageMsg struct{ ID, Name string }

// OpenDetailMsg opens the detail screen of a token.
type OpenDetailMsg struct{ ID, Name string }

// OpenFormMsg opens the form: Edit nil creates a token, else edits that one.
type OpenFormMsg struct{ Edit *store.Token }

// CloseFormMsg leaves the form for the tokens table.
type CloseFormMsg struct{}

// BackMsg leaves the current screen for the tokens table.
type BackMsg struct{}

// ChangesMsg carries committed store changes to every open screen. Reload means
// changes were dropped and everything shown must be reloaded. Tokens is the
// process's shared token set with those changes applied (nil until loaded);
// TokensErr says why it could not be loaded or brought up to date.
type ChangesMsg struct {
	Changes   []store.Change
	Reload    bool
	Tokens    *tokenset.Set
	TokensErr error
	// TokensRetryIn is when the failed load is tried again.
	TokensRetryIn time.Duration
}

// Plural is "1 token" / "2 tokens".
func Plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

// Time formats a stored time for a table cell; zero is "never".
func Time(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2006-01-02 15:04")
}

// Date formats a stored time as a date.
func Date(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02")
}

// Picked rewords the store's refusal to act on a picked token that no longer
// exists (a *store.GoneError, which knows only the ID) with the name the
// screen showed: ids and names are the picked tokens, in the same order. Any
// other error is returned as it is. The result still matches the store's
// error (errors.Is / errors.As).
func Picked(err error, ids, names []string) error {
	var gone *store.GoneError
	if !errors.As(err, &gone) {
		return err
	}
	name := gone.ID
	for i, id := range ids {
		if id == gone.ID && i < len(names) {
			name = names[i]
		}
	}
	return &pickedError{
		msg: "token " + name + " no longer exists: it was deleted after you picked it; nothing was changed",
		err: err,
	}
}

type pickedError struct {
	msg string
	err error
}

func (e *pickedError) Error() string { return e.msg }
func (e *pickedError) Unwrap() error { return e.err }

// Until is a positive span in words, rounded up: "12 days", "5 h", "9 min".
func Until(d time.Duration) string {
	ceil := func(unit time.Duration) int { return int((d + unit - 1) / unit) }
	switch {
	case d > 24*time.Hour:
		return Plural(ceil(24*time.Hour), "day", "days")
	case d > time.Hour:
		return fmt.Sprintf("%d h", ceil(time.Hour))
	}
	return fmt.Sprintf("%d min", max(1, ceil(time.Minute)))
}

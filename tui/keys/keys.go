// Package keys holds the key maps of every screen as data, one struct per screen,
// so that matching (key.Matches) and help text come from the same bindings.
package keys

import "github.com/charmbracelet/bubbles/key"

func bind(help, desc string, keys ...string) key.Binding {
	return key.NewBinding(key.WithKeys(keys...), key.WithHelp(help, desc))
}

// Global keys work on every screen unless a text field has focus.
type Global struct {
	Quit      key.Binding
	ForceQuit key.Binding
	Help      key.Binding
	Audit     key.Binding
}

// DefaultGlobal is the global key map.
func DefaultGlobal() Global {
	return Global{
		Quit:      bind("q", "quit", "q"),
		ForceQuit: bind("ctrl+c", "quit", "ctrl+c"),
		Help:      bind("?", "help", "?"),
		Audit:     bind("L", "audit log", "L"),
	}
}

// Nav moves the cursor of a table, on every screen with one.
type Nav struct {
	Up, Down, PageUp, PageDown key.Binding
}

// DefaultNav is the table cursor key map of the contract.
func DefaultNav() Nav {
	return Nav{
		Up:       bind("↑/k", "up", "up", "k"),
		Down:     bind("↓/j", "down", "down", "j"),
		PageUp:   bind("pgup", "page up", "pgup"),
		PageDown: bind("pgdn", "page down", "pgdown"),
	}
}

// Tokens is the key map of the tokens table.
type Tokens struct {
	Nav
	Home, End                    key.Binding
	Select, SelectAll            key.Binding
	Create, Activate, Deactivate key.Binding
	Edit, Delete, Open           key.Binding
	Filter, ClearFilter, Sort    key.Binding
	Details                      key.Binding
	// Rotate gives the token under the cursor a new secret (asks the grace window).
	Rotate key.Binding
}

// DefaultTokens is the tokens table key map of the contract.
func DefaultTokens() Tokens {
	return Tokens{
		Nav:         DefaultNav(),
		Home:        bind("home/g", "first", "home", "g"),
		End:         bind("end/G", "last", "end", "G"),
		Select:      bind("space", "select", " "),
		SelectAll:   bind("A", "select all/none", "A"),
		Create:      bind("n/+", "create", "n", "+"),
		Activate:    bind("a", "activate", "a"),
		Deactivate:  bind("d", "deactivate", "d"),
		Edit:        bind("e", "edit", "e"),
		Delete:      bind("x", "delete", "x"),
		Open:        bind("enter", "usage", "enter"),
		Details:     bind("i", "details", "i"),
		Filter:      bind("/", "filter", "/"),
		ClearFilter: bind("esc", "clear filter", "esc"),
		Sort:        bind("s", "sort", "s"),
		Rotate:      bind("r", "rotate", "r"),
	}
}

// FilterInput is the key map while the filter field has focus.
type FilterInput struct {
	Apply, Cancel key.Binding
}

// DefaultFilterInput keeps the filter on enter and clears it on esc.
func DefaultFilterInput() FilterInput {
	return FilterInput{
		Apply:  bind("enter", "keep filter", "enter", "down", "up"),
		Cancel: bind("esc", "clear filter", "esc"),
	}
}

// Form is the key map of the create and edit form.
type Form struct {
	Next, Prev, Toggle, Enter, Submit, Cancel key.Binding
}

// DefaultForm is the form key map of the contract.
func DefaultForm() Form {
	return Form{
		Next:   bind("tab", "next field", "tab"),
		Prev:   bind("shift+tab", "previous field", "shift+tab"),
		Toggle: bind("space", "toggle", " "),
		Enter:  bind("enter", "press button", "enter"),
		Submit: bind("ctrl+s", "submit", "ctrl+s"),
		Cancel: bind("esc", "cancel", "esc"),
	}
}

// Reveal is the key map of the one-time reveal.
type Reveal struct {
	Copy, Close, Yes, No key.Binding
}

// DefaultReveal is the reveal key map of the contract.
func DefaultReveal() Reveal {
	return Reveal{
		Copy:  bind("c", "copy token", "c"),
		Close: bind("enter", "close", "enter"),
		Yes:   bind("y", "yes, close", "y"),
		No:    bind("n/esc", "no, keep open", "n", "esc"),
	}
}

// Confirm is the key map of a confirmation question.
type Confirm struct {
	Yes, No, Submit, Cancel key.Binding
}

// DefaultConfirm answers y/n questions and submits typed confirmations with enter.
func DefaultConfirm() Confirm {
	return Confirm{
		Yes:    bind("y", "yes", "y"),
		No:     bind("n/esc", "no", "n", "esc"),
		Submit: bind("enter", "confirm", "enter"),
		Cancel: bind("esc", "cancel", "esc"),
	}
}

// Usage is the key map of the usage screen.
type Usage struct {
	Nav
	Select, SelectAll    key.Binding
	Block, Unblock, Back key.Binding
	BlockNew             key.Binding // an address or range not seen yet
	UnblockNew           key.Binding // an address or range typed in
	// Allow adds a range to the token's allow-list; Disallow removes one.
	Allow, Disallow key.Binding
	// ChartWindow cycles the chart's window: 24 h, 7 d, 30 d.
	ChartWindow key.Binding
}

// DefaultUsage is the usage key map of the contract.
func DefaultUsage() Usage {
	return Usage{
		Nav:        DefaultNav(),
		Select:     bind("space", "select", " "),
		SelectAll:  bind("A", "select all/none", "A"),
		Block:      bind("b", "block", "b"),
		Unblock:    bind("u", "unblock", "u"),
		BlockNew:   bind("B", "block address/range", "B"),
		UnblockNew: bind("U", "unblock address/range", "U"),
		Allow:      bind("+", "allow range", "+"),
		Disallow:   bind("-", "remove allowed range", "-"),
		Back:       bind("esc", "back", "esc"),

		ChartWindow: bind("w", "chart window", "w"),
	}
}

// Audit is the key map of the audit screen.
type Audit struct {
	Nav
	Filter, Back key.Binding
}

// DefaultAudit is the audit screen key map.
func DefaultAudit() Audit {
	return Audit{Nav: DefaultNav(), Filter: bind("/", "filter", "/"), Back: bind("esc", "back", "esc")}
}

// Detail is the key map of the detail screen.
type Detail struct {
	Nav
	Usage, Back key.Binding
}

// DefaultDetail is the detail screen key map.
func DefaultDetail() Detail {
	return Detail{Nav: DefaultNav(), Usage: bind("enter", "usage", "enter"), Back: bind("esc", "back", "esc")}
}

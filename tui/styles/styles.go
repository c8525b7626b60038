// Package styles holds every lipgloss style of the TUI, built from one renderer.
//
// Each SSH session has its own renderer (its own terminal), so styles are never
// package-level: New builds a fresh set for the renderer it is given.
package styles

import (
	"io"

	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/textarea"
	"github.com/charmbracelet/bubbles/textinput"
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
)

// colours is the palette: adaptive colours, readable on dark and light terminals.
type colours struct {
	accent, text, muted, good, bad, warn, selectBg, border lipgloss.AdaptiveColor
}

// defaultPalette returns the colours; a function, not a variable, so that no
// session can change another's colours.
func defaultPalette() colours {
	return colours{
		accent:   lipgloss.AdaptiveColor{Light: "#5A3FC0", Dark: "#A78BFA"},
		text:     lipgloss.AdaptiveColor{Light: "#1F2328", Dark: "#E6EDF3"},
		muted:    lipgloss.AdaptiveColor{Light: "#6E7781", Dark: "#8B949E"},
		good:     lipgloss.AdaptiveColor{Light: "#1A7F37", Dark: "#3FB950"},
		bad:      lipgloss.AdaptiveColor{Light: "#CF222E", Dark: "#F85149"},
		warn:     lipgloss.AdaptiveColor{Light: "#9A6700", Dark: "#D29922"},
		selectBg: lipgloss.AdaptiveColor{Light: "#DDF4FF", Dark: "#1F3A5F"},
		border:   lipgloss.AdaptiveColor{Light: "#8C959F", Dark: "#6E7681"},
	}
}

// Styles is every style the screens use.
type Styles struct {
	Title    lipgloss.Style // screen headings
	Subtle   lipgloss.Style // counts, hints, secondary text
	Header   lipgloss.Style // table column headers
	Cursor   lipgloss.Style // the row under the cursor
	Selected lipgloss.Style // a checked row
	Active   lipgloss.Style // the word Active
	Inactive lipgloss.Style // the word Inactive
	Allowed  lipgloss.Style // the word Allowed
	Blocked  lipgloss.Style // the word Blocked
	Error    lipgloss.Style // error text beside a field or in the status line
	Status   lipgloss.Style // results in the status line
	Label    lipgloss.Style // form labels
	Focused  lipgloss.Style // the focused form label or control
	Button   lipgloss.Style
	ButtonOn lipgloss.Style // the focused button
	Modal    lipgloss.Style // the box around a modal
	Warning  lipgloss.Style // the one-time warning of the reveal
	Secret   lipgloss.Style // the revealed token
	Help     help.Styles
	// Input is typed text; bubbles' text fields get it through TextInput and
	// TextArea instead of styles from the process's default renderer.
	Input lipgloss.Style
	// Chart bars and axis; allowed and denied also differ by glyph (tui/chart).
	ChartAllowed lipgloss.Style
	ChartDenied  lipgloss.Style
	ChartAxis    lipgloss.Style
}

// New builds the styles for the terminal behind r.
//
// A terminal without colour (NO_COLOR, TERM=dumb, an SSH client that asks for
// none) gets no colour, but still bold and reverse video: they are not colour,
// and without them the text cursor and the table cursor are invisible. r is
// not changed (it may be shared); the styles come from a renderer of their own
// on the same output.
func New(r *lipgloss.Renderer) *Styles {
	palette := defaultPalette()
	mono := r.ColorProfile() == termenv.Ascii
	if mono {
		palette = colours{}
		var w io.Writer = io.Discard
		if o := r.Output(); o != nil {
			w = o
		}
		r = lipgloss.NewRenderer(w)
		r.SetColorProfile(termenv.ANSI)
	}
	st := func() lipgloss.Style { return r.NewStyle() }
	s := &Styles{
		Title:    st().Bold(true).Foreground(palette.accent),
		Subtle:   st().Foreground(palette.muted),
		Header:   st().Bold(true).Foreground(palette.text),
		Cursor:   st().Bold(true).Background(palette.selectBg),
		Selected: st().Foreground(palette.accent),
		Active:   st().Foreground(palette.good),
		Inactive: st().Foreground(palette.bad),
		Allowed:  st().Foreground(palette.good),
		Blocked:  st().Bold(true).Foreground(palette.bad),
		Error:    st().Foreground(palette.bad),
		Status:   st().Foreground(palette.good),
		Label:    st().Foreground(palette.text),
		Focused:  st().Bold(true).Foreground(palette.accent),
		Button:   st().Foreground(palette.text),
		ButtonOn: st().Bold(true).Reverse(true),
		Modal:    st().Border(lipgloss.RoundedBorder()).BorderForeground(palette.accent).Padding(0, 1),
		Warning:  st().Bold(true).Foreground(palette.warn),
		Secret:   st().Bold(true).Foreground(palette.text),
		Input:    st().Foreground(palette.text),
	}
	if mono {
		// No background colour marks the cursor row: reverse video does.
		s.Cursor = s.Cursor.Reverse(true)
	}
	s.ChartAllowed = st().Foreground(palette.good)
	s.ChartDenied = st().Foreground(palette.bad)
	s.ChartAxis = st().Foreground(palette.border)
	s.Help = help.Styles{
		ShortKey:       st().Foreground(palette.accent),
		ShortDesc:      st().Foreground(palette.muted),
		ShortSeparator: st().Foreground(palette.border),
		Ellipsis:       st().Foreground(palette.border),
		FullKey:        st().Foreground(palette.accent),
		FullDesc:       st().Foreground(palette.muted),
		FullSeparator:  st().Foreground(palette.border),
	}
	return s
}

// TextInput styles a text input from this renderer. bubbles builds its styles
// (the cursor among them) from the process's default renderer, which over SSH
// is the server's terminal, not the admin's.
func (s *Styles) TextInput(m *textinput.Model) {
	m.PromptStyle = s.Label
	m.TextStyle = s.Input
	m.PlaceholderStyle = s.Subtle
	m.CompletionStyle = s.Subtle
	m.Cursor.Style = s.Input
	m.Cursor.TextStyle = s.Input
}

// TextArea styles a text area from this renderer, as TextInput does.
func (s *Styles) TextArea(m *textarea.Model) {
	st := textarea.Style{
		Base: s.Input, CursorLine: s.Input, CursorLineNumber: s.Subtle, EndOfBuffer: s.Subtle,
		LineNumber: s.Subtle, Placeholder: s.Subtle, Prompt: s.Subtle, Text: s.Input,
	}
	m.FocusedStyle, m.BlurredStyle = st, st
	m.Cursor.Style = s.Input
	m.Cursor.TextStyle = s.Input
	// The text area keeps a pointer to its current style: point it at ours.
	if m.Focused() {
		m.Focus()
	} else {
		m.Blur()
	}
}

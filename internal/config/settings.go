package config

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// Themes, chart windows and tokens-screen columns that config.toml may name.
var (
	Themes       = []string{"auto", "dark", "light", "none"}
	ChartWindows = []string{"24h", "7d", "30d"}
	Columns      = []string{"name", "state", "access", "days", "expires", "created", "last_used", "last_24h", "hint", "description"}
)

// TUI is what the file sets for the TUI: the colour theme, the columns of the
// tokens screen in their order, and the usage chart's first window.
type TUI struct {
	Theme       string
	Columns     []string
	ChartWindow string
}

// Window is ChartWindow as a duration: 24 h, 7 d or 30 d.
func (t TUI) Window() time.Duration {
	switch t.ChartWindow {
	case "7d":
		return 7 * 24 * time.Hour
	case "30d":
		return 30 * 24 * time.Hour
	}
	return 24 * time.Hour
}

// TUIFlags is the flag set of the TUI's settings (theme, columns,
// chart-window): they have no command-line flags, only their defaults and
// the file, through the same Apply as every other setting.
func TUIFlags(into *TUI) *pflag.FlagSet {
	fs := pflag.NewFlagSet("tui", pflag.ContinueOnError)
	into.Theme, into.ChartWindow = "auto", "24h"
	into.Columns = slices.Clone(Columns)
	fs.Var(&oneOf{p: &into.Theme, of: Themes}, "theme", "colour theme: "+strings.Join(Themes, ", "))
	fs.Var(&columnList{p: &into.Columns}, "columns", "columns of the tokens screen, in order: "+strings.Join(Columns, ", "))
	fs.Var(&oneOf{p: &into.ChartWindow, of: ChartWindows}, "chart-window", "usage chart window: "+strings.Join(ChartWindows, ", "))
	return fs
}

// oneOf is a string flag that takes one of a few words.
type oneOf struct {
	p  *string
	of []string
}

func (o *oneOf) String() string { return *o.p }
func (o *oneOf) Type() string   { return "string" }
func (o *oneOf) Set(s string) error {
	if !slices.Contains(o.of, s) {
		return fmt.Errorf("want one of %s", strings.Join(o.of, ", "))
	}
	*o.p = s
	return nil
}

// columnList is the list of tokens-screen columns: known names, each once, at
// least one.
type columnList struct{ p *[]string }

func (c *columnList) String() string { return strings.Join(*c.p, ",") }
func (c *columnList) Type() string   { return "strings" }
func (c *columnList) Set(s string) error {
	return c.Replace(strings.Split(s, ","))
}
func (c *columnList) Append(s string) error { return c.Replace(append(slices.Clone(*c.p), s)) }
func (c *columnList) GetSlice() []string    { return slices.Clone(*c.p) }
func (c *columnList) Replace(v []string) error {
	if len(v) == 0 {
		return fmt.Errorf("want at least one of %s", strings.Join(Columns, ", "))
	}
	for i, name := range v {
		if !slices.Contains(Columns, name) {
			return fmt.Errorf("unknown column %q: want %s", name, strings.Join(Columns, ", "))
		}
		if slices.Contains(v[:i], name) {
			return fmt.Errorf("column %q twice", name)
		}
	}
	*c.p = slices.Clone(v)
	return nil
}

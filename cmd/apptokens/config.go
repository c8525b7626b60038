package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/apptokens/apptokens/internal/config"
	"github.com/apptokens/apptokens/store"
)

// settings are the effective settings of this run, read from config.toml
// before any command runs.
type settings struct {
	path string // the file read (it may not exist)
	list []config.Setting
	tui  config.TUI
}

// withConfig adds --config and `config show` to root, and reads the file onto
// the flags of root (the top level), the TUI's settings and serve ([serve])
// before any command runs.
func withConfig(root, serve *cobra.Command) *settings {
	s := &settings{}
	tuiFlags := config.TUIFlags(&s.tui)
	var file string
	root.PersistentFlags().StringVar(&file, "config", "", "settings file (default $XDG_CONFIG_HOME/apptokens/"+config.FileName+")")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		s.path = file
		if file == "" {
			s.path = filepath.Join(configDir(), config.FileName)
		}
		list, err := config.Apply(s.path, file != "", []config.Table{
			{Flags: root.PersistentFlags(), Env: map[string]string{"db": "APPTOKENS_DB", "store": "APPTOKENS_STORE"}, Skip: []string{"config"}},
			{Flags: tuiFlags},
			{Name: "serve", Flags: serve.Flags()},
		}, os.Getenv)
		s.list = list
		return err
	}
	show := &cobra.Command{
		Use:   "show",
		Short: "Print the effective settings and where each came from (default, file:LINE, env NAME, flag)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			where := s.path
			if _, err := os.Stat(s.path); errors.Is(err, fs.ErrNotExist) {
				where += " (not found: defaults apply)"
			}
			fmt.Fprintf(out, "config file: %s\n", store.Printable(where))
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "KEY\tVALUE\tSOURCE")
			for _, st := range s.list {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", st.Key, store.Printable(st.Value), store.Printable(st.Source))
			}
			return tw.Flush()
		},
	}
	group := &cobra.Command{Use: "config", Short: "Settings from " + config.FileName, Args: cobra.NoArgs}
	group.AddCommand(show)
	root.AddCommand(group)
	return s
}

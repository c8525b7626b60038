package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/apptokens/apptokens/store"
)

func (a *app) backupCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "backup FILE",
		Short: "Write a full backup (tokens, usage, audit) to FILE, or to stdout with -",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			if a.env.Remote && path != "-" {
				return errors.New("over SSH, back up to stdout: ssh ... backup - > FILE")
			}
			return a.withStore(func(st *store.Store) error {
				if path == "-" {
					return st.Backup(cmd.OutOrStdout())
				}
				return writeFileAtomic(path, st.Backup)
			})
		},
	}
}

// writeFileAtomic writes through a temp file renamed into place, so a failed
// backup never leaves a truncated file under the real name.
func writeFileAtomic(path string, write func(io.Writer) error) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".apptokens-backup-*")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("backup: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

func (a *app) restoreCmd() *cobra.Command {
	var replace bool
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "Restore a backup into an empty database (FILE or - for stdin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			if a.env.Remote && path != "-" {
				return errors.New("over SSH, restore from stdin: ssh ... restore - < FILE")
			}
			var r io.Reader = cmd.InOrStdin()
			if path != "-" {
				f, err := os.Open(path)
				if err != nil {
					return fmt.Errorf("restore: %w", err)
				}
				defer f.Close()
				r = f
			}
			return a.withStore(func(st *store.Store) error {
				if err := st.Restore(a.env.Actor, r, replace); err != nil {
					return err
				}
				toks, err := st.List()
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "restored %s\n", plural(len(toks), "token"))
				return err
			})
		},
	}
	cmd.Flags().BoolVar(&replace, "replace", false, "drop everything in the database first")
	return cmd
}

// Package cli is the subcommand tree of apptokens, shared by the local binary
// and SSH exec sessions: the same commands, flags and outputs on both paths.
package cli

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/apptokens/apptokens/internal/secret"
	"github.com/apptokens/apptokens/store"
)

// Env is what a command tree runs against.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Actor is who runs the commands, for the audit trail.
	Actor store.Actor
	// Remote is true for SSH exec sessions: the server's store is used, there is
	// no --db flag, no TUI, and backup/restore go through stdout/stdin only.
	Remote bool
	// Open returns the store to use (dir is --db; ignored when Remote) and a
	// function that releases it.
	Open func(dir string) (*store.Store, func(), error)
	// RunTUI starts the TUI on st; nil where there is none (SSH exec).
	RunTUI func(st *store.Store) error
}

type app struct {
	env Env
	db  string
}

// NewRoot builds the command tree. Local callers add `serve` to it.
func NewRoot(env Env) *cobra.Command {
	a := &app{env: env}
	root := &cobra.Command{
		Use:   "apptokens",
		Short: "Manage API application tokens: a TUI, scriptable commands, an SSH server and an HTTP token gate",
		Long: "apptokens manages application tokens that client programs send as\n" +
			"`Authorization: Bearer <token>`. Run it without a command for the TUI.",
		Args:          cobra.NoArgs,
		SilenceErrors: true,
		SilenceUsage:  true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if env.RunTUI == nil {
				return errors.New("no TUI here: connect with a terminal (ssh -t) or give a command, e.g. list")
			}
			return a.withStore(func(st *store.Store) error { return env.RunTUI(st) })
		},
	}
	root.Version = Version()
	root.SetVersionTemplate("apptokens {{.Version}}\n")
	root.SetIn(env.Stdin)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	root.CompletionOptions.HiddenDefaultCmd = true
	if !env.Remote {
		root.PersistentFlags().StringVar(&a.db, "db", DefaultDBDir(), "database directory (env APPTOKENS_DB)")
	}
	root.AddCommand(
		a.createCmd(), a.listCmd(),
		a.setActiveCmd("activate", true), a.setActiveCmd("deactivate", false),
		a.deleteCmd(), a.editCmd(), a.usageCmd(),
		a.blockCmd("block", true), a.blockCmd("unblock", false),
		a.rotateCmd(), a.allowCmd("allow", true), a.allowCmd("disallow", false), a.whoisCmd(),
		a.auditCmd(), a.backupCmd(), a.restoreCmd(), a.seedCmd(),
	)
	return root
}

// DefaultDBDir is $APPTOKENS_DB, else $XDG_DATA_HOME/apptokens, else ~/.local/share/apptokens.
func DefaultDBDir() string {
	if d := os.Getenv("APPTOKENS_DB"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "apptokens")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(".", "apptokens-data")
	}
	return filepath.Join(home, ".local", "share", "apptokens")
}

// withStore opens the store, runs fn and releases the store. A database held by
// another process is refused at once: held by apptokens serve, with the SSH
// command to run instead; held by another local apptokens, with its PID.
func (a *app) withStore(fn func(st *store.Store) error) error {
	st, release, err := a.env.Open(a.db)
	if err != nil {
		var le store.HeldError
		if errors.As(err, &le) {
			holder, sshAddr := le.HeldBy()
			if hint, ok := sshHint(sshAddr, os.Args[1:]); ok && holder == store.HolderServe {
				return fmt.Errorf("%w; run the command over SSH instead: %s", err, hint)
			}
			if holder == store.HolderLocal {
				return fmt.Errorf("%w; quit it and try again", err)
			}
		}
		return err
	}
	defer release()
	return fn(st)
}

// sshHint is the command to run over SSH at addr (host:port) instead of a
// local one; ok is false when addr is not host:port.
func sshHint(addr string, args []string) (hint string, ok bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return "", false
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	var rest []string
	for i := 0; i < len(args); i++ {
		if localFlag(args[i]) {
			i++
			continue
		}
		if name, _, ok := strings.Cut(args[i], "="); ok && localFlag(name) {
			continue
		}
		if looksSecret(args[i]) {
			// whois TOKEN: the hint never repeats a secret (it would land in
			// a terminal's scrollback and a log); over SSH, - reads it from stdin.
			rest = append(rest, "-")
			continue
		}
		rest = append(rest, shellQuote(args[i]))
	}
	cmd := "ssh -p " + port + " " + host
	if len(rest) == 0 {
		return cmd, true // the TUI
	}
	return cmd + " " + strings.Join(rest, " "), true
}

// localFlag reports whether arg is a flag that says where the local store is
// (its value follows): the server has its own, so a command run over SSH
// leaves them out.
func localFlag(arg string) bool {
	switch arg {
	case "--db", "--store", "--etcd-cacert", "--etcd-cert", "--etcd-key":
		return true
	}
	return false
}

// looksSecret reports whether s has a token's shape (its prefix): such an
// argument is never echoed.
func looksSecret(s string) bool { return strings.HasPrefix(s, secret.Prefix) }

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.,/:=@+", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

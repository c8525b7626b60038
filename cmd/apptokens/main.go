// Command apptokens manages API application tokens: a TUI on the local database,
// scriptable subcommands, and `serve` (SSH for admins, the HTTP token gate).
package main

import (
	"errors"
	"fmt"
	"os"
	"os/user"

	"github.com/apptokens/apptokens/internal/cli"
	"github.com/apptokens/apptokens/internal/config"
	"github.com/apptokens/apptokens/store"
)

func main() {
	var cfg *settings // read before any command runs
	where := &storeFlags{}
	env := cli.Env{
		Stdin:  os.Stdin,
		Stdout: os.Stdout,
		Stderr: os.Stderr,
		Actor:  store.Actor{User: localUser()},
		Open:   func(db string) (*store.Store, func(), error) { return openLocal(where, db) },
		RunTUI: func(st *store.Store) error { return runTUI(st, cfg.tui) },
	}
	root := cli.NewRoot(env)
	where.register(root.PersistentFlags())
	serve := serveCmd(root, where, func() config.TUI { return cfg.tui })
	root.AddCommand(serve)
	cfg = withConfig(root, serve)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "apptokens: "+store.Printable(err.Error()))
		os.Exit(1)
	}
}

// openLocal opens the store of a command run here: --store, else the
// database directory db (--db).
func openLocal(where *storeFlags, db string) (*store.Store, func(), error) {
	st, err := where.openStore(where.location(db), hostNode())
	if err != nil {
		return nil, nil, err
	}
	return st, func() {
		if err := st.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "apptokens: close the store: "+store.Printable(err.Error()))
		}
	}, nil
}

func localUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return fmt.Sprintf("uid-%d", os.Getuid())
}

var errNoTerminal = errors.New("the TUI needs a terminal; give a command (see apptokens --help)")

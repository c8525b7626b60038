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
	"github.com/apptokens/apptokens/store/badger"
)

func main() {
	var cfg *settings // read before any command runs
	env := cli.Env{
		Stdin:  os.Stdin,
		Stdout: os.Stdout,
		Stderr: os.Stderr,
		Actor:  store.Actor{User: localUser()},
		Open:   openLocal,
		RunTUI: func(st *store.Store) error { return runTUI(st, cfg.tui) },
	}
	root := cli.NewRoot(env)
	serve := serveCmd(root, func() config.TUI { return cfg.tui })
	root.AddCommand(serve)
	cfg = withConfig(root, serve)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "apptokens: "+store.Printable(err.Error()))
		os.Exit(1)
	}
}

// openStore opens the store at dir: the Badger engine in that directory,
// and the domain over it. Every command opens its store here.
func openStore(dir string) (*store.Store, error) {
	eng, err := badger.Open(badger.Options{Dir: dir})
	if err != nil {
		return nil, err
	}
	return store.New(eng, store.Options{LegacyBackup: badger.ReadLegacyBackup})
}

func openLocal(dir string) (*store.Store, func(), error) {
	st, err := openStore(dir)
	if err != nil {
		return nil, nil, err
	}
	return st, func() {
		if err := st.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "apptokens: close database: "+store.Printable(err.Error()))
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

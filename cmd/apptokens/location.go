package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/badger"
	"github.com/apptokens/apptokens/store/etcd"
)

// etcdScheme starts a --store that is an etcd cluster.
const etcdScheme = "etcd://"

// storeFlags are the global flags that say where the store is, besides --db:
// --store (env APPTOKENS_STORE) and the TLS files of an etcd cluster. Every
// command opens the store through them (openStore), serve too.
type storeFlags struct {
	url               string
	cacert, cert, key string
	// webhooks makes the store queue webhook events (serve --webhook).
	webhooks bool
}

func (f *storeFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.url, "store", "", "where the tokens are: a database directory (as --db, which it replaces) or etcd://host:2379[,host:2379…]/prefix (env APPTOKENS_STORE)")
	fs.StringVar(&f.cacert, "etcd-cacert", "", "with an etcd store: the CA certificate (PEM) that signed the members' certificates")
	fs.StringVar(&f.cert, "etcd-cert", "", "with an etcd store: this client's certificate (PEM), with --etcd-key")
	fs.StringVar(&f.key, "etcd-key", "", "with an etcd store: this client's private key (PEM), with --etcd-cert")
}

// location is where the store is: --store when given, else db (--db).
func (f *storeFlags) location(db string) string {
	if f.url != "" {
		return f.url
	}
	return db
}

// openStore opens the store at loc (see location): an etcd cluster for an
// etcd:// URL, where node names this process among the nodes writing to it
// (the usage it records goes under that name), else the Badger database in
// the directory loc. Nothing above this function knows which engine it got.
// A bad URL, TLS files with a directory, or an unreadable TLS file is one
// line of error, and nothing is opened.
func (f *storeFlags) openStore(loc, node string) (*store.Store, error) {
	var eng store.Engine
	if strings.HasPrefix(loc, etcdScheme) {
		endpoints, prefix, err := etcd.ParseURL(loc)
		if err != nil {
			return nil, fmt.Errorf("--store: %w", err)
		}
		tlsConf, err := etcd.TLSConfig(f.cacert, f.cert, f.key)
		if err != nil {
			return nil, err
		}
		e, err := etcd.Open(etcd.Options{Endpoints: endpoints, Prefix: prefix, TLS: tlsConf, Node: node})
		if err != nil {
			return nil, err
		}
		eng = e
	} else {
		if scheme, _, ok := strings.Cut(loc, "://"); ok && !strings.ContainsAny(scheme, `/\`) {
			return nil, fmt.Errorf("--store %q: want a database directory or etcd://host:2379[,host:2379…]/prefix", loc)
		}
		if f.cacert != "" || f.cert != "" || f.key != "" {
			return nil, fmt.Errorf("--etcd-cacert, --etcd-cert and --etcd-key are for an etcd:// store, not the database directory %s", loc)
		}
		e, err := badger.Open(badger.Options{Dir: loc})
		if err != nil {
			return nil, err
		}
		eng = e
	}
	// New closes the engine when it fails.
	return store.New(eng, store.Options{LegacyBackup: badger.ReadLegacyBackup, Webhooks: f.webhooks})
}

// hostNode is the node name of a command run on this machine: its host name.
func hostNode() string {
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "apptokens"
}

// serveNode is serve's default --node: the host name and the port of --http
// ("web1:8080"), stable across restarts and distinct for two gates on one
// machine; the host name alone when the port is chosen at start (":0").
func serveNode(httpAddr string) string {
	if _, port, err := net.SplitHostPort(httpAddr); err == nil && port != "" && port != "0" {
		return hostNode() + ":" + port
	}
	return hostNode()
}

// checkNode refuses a --node that cannot name a node: empty, too long, or
// with other than letters, digits and . _ : -.
func checkNode(node string) error {
	if node == "" || len(node) > 64 || strings.IndexFunc(node, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._:-", r))
	}) >= 0 {
		return errors.New("--node " + store.Printable(fmt.Sprintf("%q", node)) + ": want 1 to 64 letters, digits and . _ : -")
	}
	return nil
}

// Package etcd is the store engine on an etcd v3 cluster (etcd ≥ 3.5): the
// keys of one apptokens installation under one prefix, shared by every node
// that opens the same endpoints and prefix. It implements store.SharedEngine.
//
// Layout under the prefix P:
//
//	P + "gen"               the current generation (its name, text)
//	P + "d/" + gen + "/" +k the domain's key k in generation gen
//	P + "e/" + name         elections (Lead)
//
// Replace fills a new generation and switches P+"gen" in one transaction;
// every other write compares P+"gen", so none can land in a generation that
// is no longer current.
package etcd

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/apptokens/apptokens/store"
)

// DefaultPrefix is the prefix of an etcd:// URL without a path.
const DefaultPrefix = "/apptokens/"

// Defaults of Options.
const (
	DefaultDialTimeout    = 2 * time.Second
	DefaultRequestTimeout = 3 * time.Second
)

// Options open an Engine.
type Options struct {
	// Endpoints are the members' client addresses, host:port (or URLs).
	Endpoints []string
	// Prefix holds every key of the installation; "/" is added at its end
	// when missing. Empty means DefaultPrefix.
	Prefix string
	// TLS, when set, is used for every connection (see TLSConfig).
	TLS *tls.Config
	// Node names this process among the nodes (store.SharedEngine.Node);
	// empty means the host name.
	Node string
	// DialTimeout bounds connecting (DefaultDialTimeout when 0);
	// RequestTimeout bounds each request (DefaultRequestTimeout when 0): a
	// write without quorum fails after at most this long.
	DialTimeout, RequestTimeout time.Duration
}

// Engine is the etcd engine. Its methods may be called from many goroutines.
type Engine struct {
	cli     *clientv3.Client
	prefix  string
	node    string
	eps     []string
	timeout time.Duration
	ctx     context.Context // cancelled by Close
	cancel  context.CancelFunc
	leads   sync.WaitGroup // Lead calls, which Close lets resign first

	closeOnce sync.Once
	closeErr  error
}

var _ store.SharedEngine = (*Engine)(nil)

// Limits of one Update. etcd refuses a transaction of more than 128
// compares or 128 operations (--max-txn-ops) or of a request over 1.5 MiB
// (--max-request-bytes); every commit adds one compare (the generation), so
// MaxOps is one below, and MaxBytes leaves half a MiB for keys' prefixes and
// the request's framing.
const (
	maxOps   = 127
	maxBytes = 1 << 20
	// pageSize is the most keys one read returns; scans read page by page.
	pageSize = 256
)

// Open connects to the cluster. It does not wait for a quorum: a cluster that
// is down makes the first request fail (store.ErrUnavailable), not Open.
func Open(o Options) (*Engine, error) {
	if len(o.Endpoints) == 0 {
		return nil, errors.New("etcd: no endpoints")
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if !strings.HasSuffix(o.Prefix, "/") {
		o.Prefix += "/"
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.Node == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			return nil, fmt.Errorf("etcd: no node name given and no host name: %v", err)
		}
		o.Node = h
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   o.Endpoints,
		DialTimeout: o.DialTimeout,
		TLS:         o.TLS,
		Logger:      zap.NewNop(),
		// Keepalives notice a member that stopped answering and move to
		// another one; not more often than etcd's --grpc-keepalive-min-time
		// (5 s) allows.
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("etcd at %s: %w", strings.Join(o.Endpoints, ","), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Engine{cli: cli, prefix: o.Prefix, node: o.Node, eps: o.Endpoints,
		timeout: o.RequestTimeout, ctx: ctx, cancel: cancel}
	return e, nil
}

// ParseURL reads etcd://host:port[,host:port…][/prefix] into endpoints and a
// prefix (DefaultPrefix without a path; always ending in "/").
func ParseURL(s string) (endpoints []string, prefix string, err error) {
	rest, ok := strings.CutPrefix(s, "etcd://")
	if !ok {
		return nil, "", fmt.Errorf("etcd URL %q: want etcd://host:port[,host:port…]/prefix", s)
	}
	hosts, path, _ := strings.Cut(rest, "/")
	if hosts == "" {
		return nil, "", fmt.Errorf("etcd URL %q: no host:port", s)
	}
	for _, h := range strings.Split(hosts, ",") {
		host, port, err := net.SplitHostPort(h)
		if err != nil || host == "" {
			return nil, "", fmt.Errorf("etcd URL %q: %q is not host:port", s, h)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, "", fmt.Errorf("etcd URL %q: bad port %q", s, port)
		}
		endpoints = append(endpoints, h)
	}
	if strings.ContainsAny(path, "?#") || strings.ContainsFunc(path, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return nil, "", fmt.Errorf("etcd URL %q: bad prefix %q", s, "/"+path)
	}
	if path == "" {
		return endpoints, DefaultPrefix, nil
	}
	prefix = "/" + path
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return endpoints, prefix, nil
}

// TLSConfig builds the client TLS configuration of the --etcd-cacert,
// --etcd-cert and --etcd-key flags (PEM files): cacert verifies the members,
// cert and key (both or neither) authenticate this client. All empty gives
// nil (plain connections).
func TLSConfig(cacert, cert, key string) (*tls.Config, error) {
	if cacert == "" && cert == "" && key == "" {
		return nil, nil
	}
	if (cert == "") != (key == "") {
		return nil, errors.New("etcd TLS: --etcd-cert and --etcd-key go together")
	}
	info := transport.TLSInfo{CertFile: cert, KeyFile: key, TrustedCAFile: cacert}
	cfg, err := info.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("etcd TLS: %s", strings.ReplaceAll(err.Error(), "\n", " "))
	}
	return cfg, nil
}

// String is "etcd at h1:2379,h2:2379 (prefix /x/)".
func (e *Engine) String() string {
	return fmt.Sprintf("etcd at %s (prefix %s)", strings.Join(e.eps, ","), e.prefix)
}

// Node is Options.Node (or the host name).
func (e *Engine) Node() string { return e.node }

// Limits are the most one Update may hold (see maxOps).
func (e *Engine) Limits() store.Limits { return store.Limits{MaxOps: maxOps, MaxBytes: maxBytes} }

// Close ends watches and leaderships (resigning them, so that another node
// takes over at once) and closes the connection.
// A Lead's fn must return once its context is cancelled. Closing again
// returns the first Close's error.
func (e *Engine) Close() error {
	e.closeOnce.Do(func() {
		e.cancel()
		e.leads.Wait()
		e.closeErr = e.cli.Close()
		if errors.Is(e.closeErr, context.Canceled) {
			e.closeErr = nil
		}
	})
	return e.closeErr
}

func (e *Engine) genKey() string               { return e.prefix + "gen" }
func (e *Engine) dataPrefix(gen string) string { return e.prefix + "d/" + gen + "/" }

// initialGen is the generation while P+"gen" was never written.
const initialGen = "0"

// reqCtx is a context for one request: bounded by RequestTimeout and failing
// at once on a member that has no leader.
func (e *Engine) reqCtx() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(e.ctx, e.timeout)
	return clientv3.WithRequireLeader(ctx), cancel
}

// unavailableError is the one line of a cluster that does not answer.
type unavailableError struct {
	where, why string
	cause      error
}

func (u *unavailableError) Error() string {
	return "etcd at " + u.where + " unavailable: " + u.why
}
func (u *unavailableError) Unwrap() error        { return u.cause }
func (u *unavailableError) Is(target error) bool { return target == store.ErrUnavailable }

// fail turns an etcd client error into the engine's: unavailability matches
// store.ErrUnavailable in one line, anything else names the engine.
func (e *Engine) fail(err error) error {
	if err == nil {
		return nil
	}
	var u *unavailableError
	if errors.As(err, &u) {
		return err
	}
	where := joinEps(e.eps)
	const hint = " (is a quorum of members up?)"
	switch {
	case e.ctx.Err() != nil:
		return fmt.Errorf("etcd at %s: engine closed: %w", where, err)
	case errors.Is(err, rpctypes.ErrNoLeader), errors.Is(err, rpctypes.ErrGRPCNoLeader):
		return &unavailableError{where, "no leader" + hint, err}
	case errors.Is(err, context.DeadlineExceeded):
		return &unavailableError{where, "no answer within " + e.timeout.String() + hint, err}
	}
	if s, ok := status.FromError(err); ok {
		switch s.Code() {
		case codes.Unavailable, codes.DeadlineExceeded:
			return &unavailableError{where, "no member answers" + hint, err}
		}
	}
	return fmt.Errorf("etcd at %s: %s: %w", where, strings.ReplaceAll(err.Error(), "\n", " "), err)
}

// retryable are read errors after which a transaction is run again: its
// snapshot revision was compacted, or a member had not applied it yet.
func retryable(err error) bool {
	return errors.Is(err, rpctypes.ErrCompacted) || errors.Is(err, rpctypes.ErrFutureRev) ||
		errors.Is(err, rpctypes.ErrGRPCCompacted) || errors.Is(err, rpctypes.ErrGRPCFutureRev)
}

// current reads the generation pointer linearizably (a quorum answers): the
// generation, the pointer's mod revision (0 before the first Replace) and the
// cluster's revision, the snapshot of what follows.
func (e *Engine) current() (gen string, genRev, rev int64, err error) {
	ctx, cancel := e.reqCtx()
	defer cancel()
	r, err := e.cli.Get(ctx, e.genKey())
	if err != nil {
		return "", 0, 0, e.fail(err)
	}
	gen = initialGen
	if len(r.Kvs) > 0 {
		gen, genRev = string(r.Kvs[0].Value), r.Kvs[0].ModRevision
	}
	return gen, genRev, r.Header.Revision, nil
}

func joinEps(eps []string) string { return strings.Join(eps, ",") }

func newGen() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

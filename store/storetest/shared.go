package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/apptokens/apptokens/store"
)

// Cluster is many nodes over one engine, each a store.SharedEngine: what a
// test of the domain's shared path (per-node keys, changes through the watch)
// needs without an etcd cluster. A transaction's write to a watched key is
// delivered to every watcher, in commit order, before Update returns (one
// transaction commits at a time). Limits are enforced: a transaction that
// reads (Get) or writes more than MaxOps keys fails with store.ErrTooMany, as
// etcd refuses one.
type Cluster struct {
	base   store.Engine
	limits store.Limits

	// mu orders commits and their delivery; it guards watchers and open.
	mu       sync.Mutex
	watchers []*watcher
	open     int
	lead     sync.Mutex
}

// EtcdLimits are etcd's default limits: 128 operations a transaction, 1.5 MiB
// a request.
func EtcdLimits() store.Limits { return store.Limits{MaxOps: 128, MaxBytes: 3 << 19} }

// NewCluster is a cluster over base, closed once every node is (and at the
// end of the test).
func NewCluster(t testing.TB, base store.Engine, limits store.Limits) *Cluster {
	c := &Cluster{base: base, limits: limits}
	c.open = 1 // the test's own reference
	t.Cleanup(func() { c.release() })
	return c
}

func (c *Cluster) release() {
	c.mu.Lock()
	c.open--
	last := c.open == 0
	c.mu.Unlock()
	if last {
		_ = c.base.Close()
	}
}

// Node is the cluster's engine as the node named name sees it.
func (c *Cluster) Node(name string) store.SharedEngine {
	c.mu.Lock()
	c.open++
	c.mu.Unlock()
	return &node{c: c, name: name}
}

// Shared is the table entry of one node of a fresh Cluster over in-memory
// Badger with etcd's default Limits.
func Shared() Engine {
	return NewEngine("shared", func(t testing.TB) store.Engine {
		t.Helper()
		return NewCluster(t, Badger().New(t), EtcdLimits()).Node("n1")
	})
}

type watcher struct {
	ctx   context.Context
	key   string
	fn    func([]byte)
	reset func()
}

type node struct {
	c      *Cluster
	name   string
	closed sync.Once
}

func (n *node) View(fn func(store.Reader) error) error { return n.c.base.View(fn) }

func (n *node) Update(fn func(store.Txn) error) error {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	var t *countingTxn
	err := n.c.base.Update(func(tx store.Txn) error {
		t = &countingTxn{Txn: tx, written: map[string][]byte{}}
		if err := fn(t); err != nil {
			return err
		}
		if l := n.c.limits.MaxOps; l > 0 && max(t.gets, t.writes) > l {
			return fmt.Errorf("transaction of %d reads and %d writes, over %d: %w", t.gets, t.writes, l, store.ErrTooMany)
		}
		if l := n.c.limits.MaxBytes; l > 0 && t.bytes > l {
			return fmt.Errorf("transaction of %d bytes, over %d: %w", t.bytes, l, store.ErrTooMany)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, w := range n.c.watchers {
		if v, ok := t.written[w.key]; ok && w.ctx.Err() == nil {
			w.fn(v)
		}
	}
	return nil
}

func (n *node) Load(fn func(store.Writer) error) error { return n.c.base.Load(fn) }

func (n *node) Replace(fn func(store.Writer) error) error {
	if err := n.c.base.Replace(fn); err != nil {
		return err
	}
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	for _, w := range n.c.watchers {
		if w.ctx.Err() == nil {
			w.reset()
		}
	}
	return nil
}

func (n *node) Limits() store.Limits { return n.c.limits }

func (n *node) String() string { return "test cluster (node " + n.name + ")" }

func (n *node) Close() error {
	n.closed.Do(n.c.release)
	return nil
}

func (n *node) Watch(ctx context.Context, key []byte, fn func([]byte), reset func()) error {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	n.c.watchers = append(n.c.watchers, &watcher{ctx: ctx, key: string(key), fn: fn, reset: reset})
	return nil
}

func (n *node) Lead(ctx context.Context, name string, fn func(context.Context)) error {
	n.c.lead.Lock()
	defer n.c.lead.Unlock()
	if ctx.Err() == nil {
		fn(ctx)
	}
	<-ctx.Done()
	return nil
}

func (n *node) Health(context.Context) error { return nil }

func (n *node) Node() string { return n.name }

// countingTxn counts what a transaction reads with Get and writes, and keeps
// the values written.
type countingTxn struct {
	store.Txn
	gets, writes, bytes int
	written             map[string][]byte
}

func (t *countingTxn) Get(key []byte) ([]byte, error) {
	t.gets++
	v, err := t.Txn.Get(key)
	if err != nil && !errors.Is(err, store.ErrNoKey) {
		return nil, err
	}
	return v, err
}

func (t *countingTxn) GetMany(keys [][]byte) ([][]byte, error) {
	t.gets += len(keys)
	return t.Txn.GetMany(keys)
}

func (t *countingTxn) Set(key, value []byte) error {
	t.writes++
	t.bytes += len(key) + len(value)
	t.written[string(key)] = value
	return t.Txn.Set(key, value)
}

func (t *countingTxn) Delete(key []byte) error {
	t.writes++
	t.bytes += len(key)
	return t.Txn.Delete(key)
}

package storetest

import (
	"context"
	"sync/atomic"

	"github.com/apptokens/apptokens/store"
)

// CountReads wraps eng so that every read call through its View and Update
// (Get, GetMany, Scan, ScanMany: each a round trip, or more, on a networked
// engine) adds one to the counter it returns. A SharedEngine stays one.
func CountReads(eng store.Engine) (store.Engine, *atomic.Int64) {
	n := new(atomic.Int64)
	c := &countingEngine{Engine: eng, n: n}
	if sh, ok := eng.(store.SharedEngine); ok {
		return &countingShared{countingEngine: c, sh: sh}, n
	}
	return c, n
}

type countingEngine struct {
	store.Engine
	n *atomic.Int64
}

func (c *countingEngine) View(fn func(store.Reader) error) error {
	return c.Engine.View(func(r store.Reader) error { return fn(&countingReader{Reader: r, n: c.n}) })
}

func (c *countingEngine) Update(fn func(store.Txn) error) error {
	return c.Engine.Update(func(tx store.Txn) error {
		return fn(struct {
			*countingReader
			store.Writer
		}{&countingReader{Reader: tx, n: c.n}, tx})
	})
}

type countingShared struct {
	*countingEngine
	sh store.SharedEngine
}

func (c *countingShared) Watch(ctx context.Context, key []byte, fn func([]byte), reset func()) error {
	return c.sh.Watch(ctx, key, fn, reset)
}

func (c *countingShared) Lead(ctx context.Context, name string, fn func(context.Context)) error {
	return c.sh.Lead(ctx, name, fn)
}

func (c *countingShared) Health(ctx context.Context) error { return c.sh.Health(ctx) }
func (c *countingShared) Node() string                     { return c.sh.Node() }

type countingReader struct {
	store.Reader
	n *atomic.Int64
}

func (r *countingReader) Get(key []byte) ([]byte, error) {
	r.n.Add(1)
	return r.Reader.Get(key)
}

func (r *countingReader) GetMany(keys [][]byte) ([][]byte, error) {
	r.n.Add(1)
	return r.Reader.GetMany(keys)
}

func (r *countingReader) Scan(prefix []byte, opts store.ScanOptions) store.Iterator {
	r.n.Add(1)
	return r.Reader.Scan(prefix, opts)
}

func (r *countingReader) ScanMany(prefixes [][]byte) ([][]store.KV, error) {
	r.n.Add(1)
	return r.Reader.ScanMany(prefixes)
}

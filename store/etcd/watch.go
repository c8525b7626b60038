package etcd

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Watch delivers every value written to key (in the current generation) from
// the next revision on, in revision order, from one goroutine. It watches the
// generation pointer too: a Replace anywhere calls reset and moves the watch
// to the new generation. A watch that ends (a member lost, no leader) is set
// up again from the revision after the last one delivered; one whose
// revision was compacted calls reset and goes on from the present.
func (e *Engine) Watch(ctx context.Context, key []byte, fn func(value []byte), reset func()) error {
	gen, _, rev, err := e.current()
	if err != nil {
		return err
	}
	w := &watch{e: e, key: string(key), fn: fn, reset: reset, gen: gen, dataRev: rev, genRev: rev}
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(e.ctx, cancel)
	go func() {
		defer stop()
		defer cancel()
		w.run(ctx)
	}()
	return nil
}

type watch struct {
	e               *Engine
	key             string
	fn              func([]byte)
	reset           func()
	gen             string
	dataRev, genRev int64 // the last revision seen of the data key, of the pointer
}

func (w *watch) run(ctx context.Context) {
	for fails := 0; ctx.Err() == nil; {
		if w.watch(ctx) {
			fails = 0
		} else {
			fails++
		}
		// A brief pause before watching again, longer while it fails.
		select {
		case <-ctx.Done():
		case <-time.After(min(50*time.Millisecond<<min(fails, 5), time.Second)):
		}
	}
}

// watch watches until a channel ends; true when it delivered something.
func (w *watch) watch(ctx context.Context) bool {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	dataCh := w.e.cli.Watch(wctx, w.e.dataPrefix(w.gen)+w.key, clientv3.WithRev(w.dataRev+1))
	genCh := w.e.cli.Watch(wctx, w.e.genKey(), clientv3.WithRev(w.genRev+1))
	delivered := false
	for {
		select {
		case <-ctx.Done():
			return delivered
		case r, ok := <-dataCh:
			if !ok {
				return delivered
			}
			if r.CompactRevision != 0 {
				w.resync(ctx, r.CompactRevision)
				return true
			}
			if r.Err() != nil {
				return delivered
			}
			for _, ev := range r.Events {
				w.dataRev = ev.Kv.ModRevision
				if ev.Type == clientv3.EventTypePut {
					w.fn(ev.Kv.Value)
					delivered = true
				}
			}
		case r, ok := <-genCh:
			if !ok {
				return delivered
			}
			if r.CompactRevision != 0 {
				w.resync(ctx, r.CompactRevision)
				return true
			}
			if r.Err() != nil {
				return delivered
			}
			for _, ev := range r.Events {
				w.genRev = ev.Kv.ModRevision
				if ev.Type == clientv3.EventTypePut && string(ev.Kv.Value) != w.gen {
					// Data written to the new generation before the
					// switch is part of what reset reloads.
					w.gen, w.dataRev = string(ev.Kv.Value), ev.Kv.ModRevision
					w.reset()
					return true
				}
			}
		}
	}
}

// resync follows a compaction at revision compact, which removed history
// the watch was to resume from. When the generation is still the same at
// compact and the watched key was not written between the last value
// delivered and compact, nothing was missed: the watch resumes from compact,
// without a reset. Otherwise it calls reset and goes on from the present
// (what reset reloads is at least as new as where the watch resumes).
func (w *watch) resync(ctx context.Context, compact int64) {
	for attempt := 0; ctx.Err() == nil; attempt++ {
		gen, modRev, err := w.at(compact)
		if err == nil && gen == w.gen && modRev <= w.dataRev {
			w.dataRev, w.genRev = compact-1, compact-1
			return
		}
		if err == nil || retryable(err) {
			if gen, _, rev, err := w.e.current(); err == nil {
				w.gen, w.dataRev, w.genRev = gen, rev, rev
				w.reset()
				return
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(min(50*time.Millisecond<<min(attempt, 5), time.Second)):
		}
	}
}

// at reads the generation at revision rev and the watched key's mod revision
// in the watch's generation then (0 when absent).
func (w *watch) at(rev int64) (gen string, modRev int64, err error) {
	ctx, cancel := w.e.reqCtx()
	defer cancel()
	r, err := w.e.cli.Txn(ctx).Then(
		clientv3.OpGet(w.e.genKey(), clientv3.WithRev(rev)),
		clientv3.OpGet(w.e.dataPrefix(w.gen)+w.key, clientv3.WithRev(rev), clientv3.WithKeysOnly()),
	).Commit()
	if err != nil {
		return "", 0, err
	}
	gen = initialGen
	if kvs := r.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		gen = string(kvs[0].Value)
	}
	if kvs := r.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
		modRev = kvs[0].ModRevision
	}
	return gen, modRev, nil
}

// leaseTTL is the seconds a leadership outlives a node that stops answering.
const leaseTTL = 5

// Lead campaigns for the election name under the prefix and runs fn while it
// is won: fn's context is cancelled when the session's lease is lost, ctx is
// done or the engine closes. After fn returns it resigns and campaigns again;
// Lead returns nil once ctx is done (or the engine is closed).
func (e *Engine) Lead(ctx context.Context, name string, fn func(ctx context.Context)) error {
	e.leads.Add(1)
	defer e.leads.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(e.ctx, cancel)()
	for fails := 0; ctx.Err() == nil; fails++ {
		if e.leadOnce(ctx, name, fn) {
			fails = 0
		}
		select {
		case <-ctx.Done():
		case <-time.After(min(100*time.Millisecond<<min(fails, 4), 2*time.Second)):
		}
	}
	return nil
}

// leadOnce holds one session: campaigns, runs fn when elected, resigns.
func (e *Engine) leadOnce(ctx context.Context, name string, fn func(ctx context.Context)) bool {
	// The lease is granted under ctx and a timeout (no quorum: try again
	// later); the session outlives ctx: its Close revokes the lease (with a
	// context of its own, at most leaseTTL), so that another node takes over
	// at once rather than after leaseTTL.
	gctx, gcancel := context.WithTimeout(ctx, e.timeout)
	lease, err := e.cli.Grant(clientv3.WithRequireLeader(gctx), leaseTTL)
	gcancel()
	if err != nil {
		return false
	}
	s, err := concurrency.NewSession(e.cli, concurrency.WithLease(lease.ID), concurrency.WithTTL(leaseTTL),
		concurrency.WithContext(context.WithoutCancel(ctx)))
	if err != nil {
		return false
	}
	defer s.Close()
	el := concurrency.NewElection(s, e.prefix+"e/"+name)
	if err := el.Campaign(ctx, e.node); err != nil {
		return false
	}
	fctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-s.Done():
			cancel()
		case <-fctx.Done():
		}
	}()
	fn(fctx)
	cancel()
	rctx, rcancel := context.WithTimeout(context.Background(), e.timeout)
	el.Resign(rctx)
	rcancel()
	return true
}

// Health is nil when a quorum answers a linearizable read within two seconds
// (or RequestTimeout, when shorter); otherwise an error matching
// store.ErrUnavailable naming the endpoints.
func (e *Engine) Health(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, min(2*time.Second, e.timeout))
	defer cancel()
	if _, err := e.cli.Get(clientv3.WithRequireLeader(ctx), e.genKey()); err != nil {
		if ctx.Err() != nil {
			return &unavailableError{joinEps(e.eps), fmt.Sprintf("no answer within %v (is a quorum of members up?)", min(2*time.Second, e.timeout)), err}
		}
		return e.fail(err)
	}
	return nil
}

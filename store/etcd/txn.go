package etcd

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/apptokens/apptokens/store"
)

// Transactions are optimistic, over clientv3's Txn (compare-and-swap), not
// the concurrency package's STM: the STM has no range reads, cannot keep a
// scan out of the conflict check nor page it, and retries without bound.
// An Update reads the generation pointer (a linearizable Get: its revision is
// the snapshot), runs fn reading at that revision (Gets remember each key's
// mod revision, 0 when absent; Scans are paged and remember nothing) and
// buffering writes, then commits one Txn: If(the pointer and every Get key
// still have the mod revisions read) Then(the writes). A failed compare means
// another writer came between: fn runs again on a new snapshot, up to
// maxAttempts times with a jittered, growing pause (store.ErrConflict after).
const maxAttempts = 40

// snapshot reads one generation at one revision. Reads at a revision are
// serializable (the member answers alone, no quorum round): a revision's
// keys never change, and a member that has not applied it yet answers
// ErrFutureRev, after which the transaction runs again.
type snapshot struct {
	e   *Engine
	dp  string // data prefix of the generation
	rev int64
	err error // the first read error, if any
}

func (s *snapshot) noteErr(err error) error {
	err = s.e.fail(err)
	if s.err == nil {
		s.err = err
	}
	return err
}

// get reads key at the snapshot: its value (never nil) and mod revision;
// nil, 0 when absent.
func (s *snapshot) get(key []byte) ([]byte, int64, error) {
	ctx, cancel := s.e.reqCtx()
	defer cancel()
	r, err := s.e.cli.Get(ctx, s.dp+string(key), clientv3.WithRev(s.rev), clientv3.WithSerializable())
	if err != nil {
		return nil, 0, s.noteErr(err)
	}
	if len(r.Kvs) == 0 {
		return nil, 0, nil
	}
	v := r.Kvs[0].Value
	if v == nil {
		v = []byte{}
	}
	return v, r.Kvs[0].ModRevision, nil
}

// getMany reads keys at the snapshot in read-only Txns of at most maxOps
// serializable Gets each (one round trip per maxOps keys): each key's value
// (nil when absent) and mod revision (0 when absent).
func (s *snapshot) getMany(keys [][]byte) ([][]byte, []int64, error) {
	vals, revs := make([][]byte, len(keys)), make([]int64, len(keys))
	for lo := 0; lo < len(keys); lo += maxOps {
		hi := min(lo+maxOps, len(keys))
		ops := make([]clientv3.Op, 0, hi-lo)
		for _, k := range keys[lo:hi] {
			ops = append(ops, clientv3.OpGet(s.dp+string(k), clientv3.WithRev(s.rev), clientv3.WithSerializable()))
		}
		ctx, cancel := s.e.reqCtx()
		r, err := s.e.cli.Txn(ctx).Then(ops...).Commit()
		cancel()
		if err != nil {
			return nil, nil, s.noteErr(err)
		}
		for i, resp := range r.Responses {
			kvs := resp.GetResponseRange().GetKvs()
			if len(kvs) == 0 {
				continue
			}
			v := kvs[0].Value
			if v == nil {
				v = []byte{}
			}
			vals[lo+i], revs[lo+i] = v, kvs[0].ModRevision
		}
	}
	return vals, revs, nil
}

// ScanMany reads the prefixes at the snapshot in read-only Txns of at most
// maxOps ranges of up to pageSize keys each; a prefix with more keys is read
// on page by page (Scan) from after its first page.
func (s *snapshot) ScanMany(prefixes [][]byte) ([][]store.KV, error) {
	out := make([][]store.KV, len(prefixes))
	for lo := 0; lo < len(prefixes); lo += maxOps {
		hi := min(lo+maxOps, len(prefixes))
		ops := make([]clientv3.Op, 0, hi-lo)
		for _, p := range prefixes[lo:hi] {
			pk := s.dp + string(p)
			ops = append(ops, clientv3.OpGet(pk, clientv3.WithRange(clientv3.GetPrefixRangeEnd(pk)),
				clientv3.WithRev(s.rev), clientv3.WithLimit(pageSize),
				clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend), clientv3.WithSerializable()))
		}
		ctx, cancel := s.e.reqCtx()
		r, err := s.e.cli.Txn(ctx).Then(ops...).Commit()
		cancel()
		if err != nil {
			return nil, s.noteErr(err)
		}
		for j, resp := range r.Responses {
			rr := resp.GetResponseRange()
			kvs := make([]store.KV, 0, len(rr.GetKvs()))
			for _, kv := range rr.GetKvs() {
				v := kv.Value
				if v == nil {
					v = []byte{}
				}
				kvs = append(kvs, store.KV{Key: kv.Key[len(s.dp):], Value: v})
			}
			if rr.GetMore() && len(kvs) > 0 {
				it := s.Scan(prefixes[lo+j], store.ScanOptions{Start: append(bytes.Clone(kvs[len(kvs)-1].Key), 0)})
				for it.Next() {
					kvs = append(kvs, store.KV{Key: bytes.Clone(it.Key()), Value: bytes.Clone(it.Value())})
				}
				err := it.Err()
				it.Close()
				if err != nil {
					return nil, err
				}
			}
			out[lo+j] = kvs
		}
	}
	return out, nil
}

// GetMany reads keys at the snapshot, maxOps to a round trip.
func (s *snapshot) GetMany(keys [][]byte) ([][]byte, error) {
	vals, _, err := s.getMany(keys)
	return vals, err
}

func (s *snapshot) Get(key []byte) ([]byte, error) {
	v, _, err := s.get(key)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, fmt.Errorf("%q: %w", key, store.ErrNoKey)
	}
	return v, nil
}

func (s *snapshot) Scan(prefix []byte, opts store.ScanOptions) store.Iterator {
	pk := s.dp + string(prefix)
	lo, hi := pk, clientv3.GetPrefixRangeEnd(pk)
	if opts.Start != nil {
		start := s.dp + string(opts.Start)
		if !opts.Reverse && start > lo {
			lo = start
		}
		if opts.Reverse && start+"\x00" < hi {
			hi = start + "\x00"
		}
	}
	return &iterator{s: s, lo: lo, hi: hi, reverse: opts.Reverse, keysOnly: opts.KeysOnly, more: lo < hi}
}

// iterator reads [lo, hi) page by page, narrowing the range past each page.
type iterator struct {
	s          *snapshot
	lo, hi     string
	reverse    bool
	keysOnly   bool
	more       bool // pages may remain
	page       [][2][]byte
	i          int
	key, value []byte
	err        error
	closed     bool
}

func (it *iterator) Next() bool {
	if it.err != nil || it.closed {
		return false
	}
	if it.i >= len(it.page) {
		if !it.more || !it.load() {
			return false
		}
	}
	kv := it.page[it.i]
	it.i++
	it.key, it.value = kv[0], kv[1]
	return true
}

func (it *iterator) load() bool {
	ctx, cancel := it.s.e.reqCtx()
	defer cancel()
	order := clientv3.SortAscend
	if it.reverse {
		order = clientv3.SortDescend
	}
	ops := []clientv3.OpOption{clientv3.WithRange(it.hi), clientv3.WithRev(it.s.rev),
		clientv3.WithLimit(pageSize), clientv3.WithSort(clientv3.SortByKey, order), clientv3.WithSerializable()}
	if it.keysOnly {
		ops = append(ops, clientv3.WithKeysOnly())
	}
	r, err := it.s.e.cli.Get(ctx, it.lo, ops...)
	if err != nil {
		it.err = it.s.noteErr(err)
		return false
	}
	it.page, it.i = it.page[:0], 0
	for _, kv := range r.Kvs {
		var v []byte
		if !it.keysOnly {
			v = kv.Value
			if v == nil {
				v = []byte{}
			}
		}
		it.page = append(it.page, [2][]byte{kv.Key[len(it.s.dp):], v})
	}
	it.more = r.More && len(r.Kvs) > 0
	if n := len(r.Kvs); n > 0 {
		last := string(r.Kvs[n-1].Key)
		if it.reverse {
			it.hi = last
		} else {
			it.lo = last + "\x00"
		}
	}
	return len(it.page) > 0
}

func (it *iterator) Key() []byte   { return it.key }
func (it *iterator) Value() []byte { return it.value }
func (it *iterator) Err() error    { return it.err }
func (it *iterator) Close()        { it.closed, it.page = true, nil }

// View runs fn over the snapshot at the current revision.
func (e *Engine) View(fn func(store.Reader) error) error {
	for attempt := 0; ; attempt++ {
		gen, _, rev, err := e.current()
		if err != nil {
			return err
		}
		s := &snapshot{e: e, dp: e.dataPrefix(gen), rev: rev}
		err = fn(s)
		if s.err != nil && retryable(s.err) && attempt < maxAttempts {
			continue
		}
		if err == nil {
			err = s.err
		}
		return err
	}
}

// txn is one attempt of an Update.
type txn struct {
	snapshot
	reads  map[string]int64 // key → mod revision read (0: absent)
	writes map[string]*[]byte
	order  []string // keys of writes, first write first
}

func (t *txn) Get(key []byte) ([]byte, error) {
	k := string(key)
	if w, ok := t.writes[k]; ok {
		if *w == nil {
			return nil, fmt.Errorf("%q: %w", key, store.ErrNoKey)
		}
		return bytes.Clone(*w), nil
	}
	v, rev, err := t.get(key)
	if err != nil {
		return nil, err
	}
	t.reads[k] = rev
	if v == nil {
		return nil, fmt.Errorf("%q: %w", key, store.ErrNoKey)
	}
	return v, nil
}

// GetMany is Get of each key: what t wrote reads as written, the rest is
// read at the snapshot, maxOps keys to a round trip, and remembered for the
// conflict check.
func (t *txn) GetMany(keys [][]byte) ([][]byte, error) {
	out := make([][]byte, len(keys))
	var read [][]byte
	var at []int
	for i, k := range keys {
		if w, ok := t.writes[string(k)]; ok {
			if *w != nil {
				out[i] = bytes.Clone(*w)
			}
			continue
		}
		read, at = append(read, k), append(at, i)
	}
	vals, revs, err := t.getMany(read)
	if err != nil {
		return nil, err
	}
	for j, i := range at {
		out[i] = vals[j]
		t.reads[string(read[j])] = revs[j]
	}
	return out, nil
}

func (t *txn) write(key []byte, v *[]byte) {
	k := string(key)
	if _, ok := t.writes[k]; !ok {
		t.order = append(t.order, k)
	}
	t.writes[k] = v
}

func (t *txn) Set(key, value []byte) error {
	v := bytes.Clone(value)
	if v == nil {
		v = []byte{}
	}
	t.write(key, &v)
	return nil
}

func (t *txn) Delete(key []byte) error {
	var v []byte
	t.write(key, &v)
	return nil
}

// tooMany is the refusal of a transaction over Limits.
func tooMany(what string, n, limit int) error {
	return fmt.Errorf("etcd transaction of %d %s, over the limit of %d: %w", n, what, limit, store.ErrTooMany)
}

// Update runs fn in an optimistic serializable transaction (see maxAttempts).
func (e *Engine) Update(fn func(store.Txn) error) error {
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if attempt > 0 {
			pause(attempt)
		}
		gen, genRev, rev, err := e.current()
		if err != nil {
			return err
		}
		t := &txn{snapshot: snapshot{e: e, dp: e.dataPrefix(gen), rev: rev},
			reads: map[string]int64{}, writes: map[string]*[]byte{}}
		err = fn(t)
		if t.err != nil && retryable(t.err) {
			continue
		}
		if err != nil {
			return err
		}
		if t.err != nil {
			return t.err
		}
		if len(t.writes) == 0 {
			return nil
		}
		ok, err := t.commit(genRev)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
	}
	return fmt.Errorf("%s: %w", e, store.ErrConflict)
}

// commit writes t's writes if nothing it read with Get changed since; false
// when something did.
func (t *txn) commit(genRev int64) (bool, error) {
	if len(t.reads) > maxOps {
		return false, tooMany("reads", len(t.reads), maxOps)
	}
	if len(t.writes) > maxOps {
		return false, tooMany("writes", len(t.writes), maxOps)
	}
	size := 0
	for k, v := range t.writes {
		size += len(k) + len(*v)
	}
	if size > maxBytes {
		return false, tooMany("bytes", size, maxBytes)
	}
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(t.e.genKey()), "=", genRev)}
	for k, rev := range t.reads {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(t.dp+k), "=", rev))
	}
	ops := make([]clientv3.Op, 0, len(t.order))
	for _, k := range t.order {
		if v := *t.writes[k]; v != nil {
			ops = append(ops, clientv3.OpPut(t.dp+k, string(v)))
		} else {
			ops = append(ops, clientv3.OpDelete(t.dp+k))
		}
	}
	ctx, cancel := t.e.reqCtx()
	defer cancel()
	r, err := t.e.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return false, t.e.fail(err)
	}
	return r.Succeeded, nil
}

// pause waits before attempt: a random time up to 2 ms × 2^attempt, at most
// 100 ms, so that conflicting writers spread out.
func pause(attempt int) {
	max := 2 * time.Millisecond << min(attempt, 6)
	time.Sleep(rand.N(min(max, 100*time.Millisecond)))
}

// batch buffers writes of Load and Replace into transactions within Limits.
type batch struct {
	e     *Engine
	flush func(ops []clientv3.Op) error
	dp    func() string // the data prefix the next flush writes to
	keys  map[string]bool
	ops   []clientv3.Op
	size  int
	err   error // a failed flush: every later write fails with it
}

func (b *batch) add(key, value []byte, del bool) error {
	if b.err != nil {
		return b.err
	}
	n := len(key) + len(value)
	if n > maxBytes {
		return tooMany("bytes", n, maxBytes)
	}
	k := string(key)
	if len(b.ops) >= maxOps || b.size+n > maxBytes || b.keys[k] {
		if err := b.send(); err != nil {
			return err
		}
	}
	b.keys[k] = true
	full := b.dp() + k
	if del {
		b.ops = append(b.ops, clientv3.OpDelete(full))
	} else {
		b.ops = append(b.ops, clientv3.OpPut(full, string(value)))
	}
	b.size += n
	return nil
}

func (b *batch) send() error {
	if len(b.ops) == 0 || b.err != nil {
		return b.err
	}
	b.err = b.flush(b.ops)
	b.ops, b.size, b.keys = nil, 0, map[string]bool{}
	return b.err
}

func (b *batch) Set(key, value []byte) error { return b.add(key, value, false) }
func (b *batch) Delete(key []byte) error     { return b.add(key, nil, true) }

// Load writes what fn writes in batches of at most Limits each, each batch
// atomic and into the current generation (a batch racing a Replace is written
// into the new one).
func (e *Engine) Load(fn func(store.Writer) error) error {
	gen, genRev, _, err := e.current()
	if err != nil {
		return err
	}
	b := &batch{e: e, keys: map[string]bool{},
		dp: func() string { return e.dataPrefix(gen) },
		flush: func(ops []clientv3.Op) error {
			for attempt := 0; attempt < maxAttempts; attempt++ {
				ctx, cancel := e.reqCtx()
				r, err := e.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(e.genKey()), "=", genRev)).Then(ops...).Commit()
				cancel()
				if err != nil {
					return e.fail(err)
				}
				if r.Succeeded {
					return nil
				}
				// A Replace switched generations: write the batch there.
				old := e.dataPrefix(gen)
				if gen, genRev, _, err = e.current(); err != nil {
					return err
				}
				ops = rebase(ops, old, e.dataPrefix(gen))
			}
			return fmt.Errorf("%s: %w", e, store.ErrConflict)
		}}
	if err := fn(b); err != nil {
		// What fn wrote before its error stays written.
		if ferr := b.send(); ferr != nil && ferr != err {
			return fmt.Errorf("%w (and writing what came before it: %v)", err, ferr)
		}
		return err
	}
	return b.send()
}

// rebase moves ops from data prefix old to data prefix new.
func rebase(ops []clientv3.Op, old, new string) []clientv3.Op {
	out := make([]clientv3.Op, len(ops))
	for i, op := range ops {
		k := new + string(op.KeyBytes()[len(old):])
		if op.IsDelete() {
			out[i] = clientv3.OpDelete(k)
		} else {
			out[i] = clientv3.OpPut(k, string(op.ValueBytes()))
		}
	}
	return out
}

// Replace writes fn's keys into a new generation, then switches the pointer
// to it in one transaction and deletes the old generation. Until the switch
// nobody reads the new generation; a failure before it deletes the new one.
func (e *Engine) Replace(fn func(store.Writer) error) error {
	gen := newGen()
	dp := e.dataPrefix(gen)
	b := &batch{e: e, keys: map[string]bool{},
		dp: func() string { return dp },
		flush: func(ops []clientv3.Op) error {
			ctx, cancel := e.reqCtx()
			defer cancel()
			_, err := e.cli.Txn(ctx).Then(ops...).Commit()
			return e.fail(err)
		}}
	err := fn(b)
	if err == nil {
		err = b.send()
	}
	if err == nil {
		var old string
		old, err = e.switchGen(gen)
		if err == nil {
			// The old generation is unreachable now: a failure to delete
			// it leaves garbage, not wrong data; the next Replace's
			// switch does not see it either, so try hard now.
			e.deletePrefix(e.dataPrefix(old))
			return nil
		}
	}
	e.deletePrefix(dp)
	return err
}

func (e *Engine) switchGen(gen string) (old string, err error) {
	ctx, cancel := e.reqCtx()
	defer cancel()
	r, err := e.cli.Txn(ctx).Then(clientv3.OpGet(e.genKey()), clientv3.OpPut(e.genKey(), gen)).Commit()
	if err != nil {
		return "", e.fail(err)
	}
	old = initialGen
	if kvs := r.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		old = string(kvs[0].Value)
	}
	return old, nil
}

func (e *Engine) deletePrefix(dp string) {
	for attempt := 0; attempt < 3; attempt++ {
		ctx, cancel := e.reqCtx()
		_, err := e.cli.Delete(ctx, dp, clientv3.WithPrefix())
		cancel()
		if err == nil || e.ctx.Err() != nil {
			return
		}
	}
}

package store

import (
	"bytes"
	"errors"
	"fmt"
)

// prefetched is a Txn whose Gets of keys read beforehand, all at once with
// GetMany, are answered from memory: an operation over many keys gathers
// them first and reads them in one round trip (on etcd; one per
// Limits.MaxOps keys), and its code then reads them one by one as before.
// Each key was read through the transaction, so it counts toward its
// conflict check and Limits as a Get does. A key written through prefetched
// is forgotten: later Gets of it ask the transaction, which sees its writes.
//
// Over a Reader (a View) it is a Txn whose writes fail. On an engine whose
// reads cost no round trip (a plain engine, Badger in this process) it reads
// nothing ahead: each Get goes to the transaction as it comes, which costs
// less than gathering the keys.
type prefetched struct {
	Reader
	w     Writer            // nil in a View
	off   bool              // read nothing ahead
	got   map[string][]byte // key → value read; nil: absent
	scans map[string][]KV   // prefix → what ScanMany read (see scanAhead)
}

// scanAhead reads the prefixes (duplicates once) with one ScanMany; a later
// Scan of one of them from its start, ascending, with values, is answered
// from memory. As a Scan, it does not count toward the conflict check, and
// what the transaction writes under a prefix afterwards is not seen: use it
// for prefixes the transaction does not write (other nodes' keys).
func (p *prefetched) scanAhead(prefixes [][]byte) error {
	if p.off {
		return nil
	}
	if p.scans == nil {
		p.scans = make(map[string][]KV, len(prefixes))
	}
	uniq := make([][]byte, 0, len(prefixes))
	for _, pf := range prefixes {
		if _, ok := p.scans[string(pf)]; !ok {
			p.scans[string(pf)] = nil
			uniq = append(uniq, pf)
		}
	}
	if len(uniq) == 0 {
		return nil
	}
	kvs, err := p.Reader.ScanMany(uniq)
	if err != nil {
		return err
	}
	for i, pf := range uniq {
		p.scans[string(pf)] = kvs[i]
	}
	return nil
}

func (p *prefetched) Scan(prefix []byte, opts ScanOptions) Iterator {
	if kvs, ok := p.scans[string(prefix)]; ok && opts.Start == nil && !opts.Reverse {
		return &kvIterator{kvs: kvs, i: -1, keysOnly: opts.KeysOnly}
	}
	return p.Reader.Scan(prefix, opts)
}

// kvIterator walks what ScanMany read.
type kvIterator struct {
	kvs      []KV
	i        int
	keysOnly bool
}

func (it *kvIterator) Next() bool  { it.i++; return it.i < len(it.kvs) }
func (it *kvIterator) Key() []byte { return it.kvs[it.i].Key }
func (it *kvIterator) Value() []byte {
	if it.keysOnly {
		return nil
	}
	return it.kvs[it.i].Value
}
func (it *kvIterator) Err() error { return nil }
func (it *kvIterator) Close()     {}

// prefetch reads keys (duplicates read once) through txn in one GetMany,
// on a shared engine (see prefetched).
func (s *Store) prefetch(txn Reader, keys [][]byte) (*prefetched, error) {
	p := &prefetched{Reader: txn, off: !s.readsAhead(), got: make(map[string][]byte, len(keys))}
	if w, ok := txn.(Writer); ok {
		p.w = w
	}
	if err := p.getAhead(keys); err != nil {
		return nil, err
	}
	return p, nil
}

// getAhead reads keys (duplicates and keys read before once) with one
// GetMany; later Gets of them are answered from memory.
func (p *prefetched) getAhead(keys [][]byte) error {
	if p.off {
		return nil
	}
	uniq := make([][]byte, 0, len(keys))
	for _, k := range keys {
		if _, ok := p.got[string(k)]; !ok {
			p.got[string(k)] = nil
			uniq = append(uniq, k)
		}
	}
	if len(uniq) == 0 {
		return nil
	}
	vals, err := p.Reader.GetMany(uniq)
	if err != nil {
		return err
	}
	for i, k := range uniq {
		p.got[string(k)] = vals[i]
	}
	return nil
}

// prefetchTokens reads ahead what getToken reads of each of ids (the record,
// this node's last use, every node's on a shared engine, its allow-list) through txn, with
// keys and prefixes besides: one GetMany and one ScanMany in all.
func (s *Store) prefetchTokens(txn Reader, ids []string, keys, prefixes [][]byte) (*prefetched, error) {
	p, err := s.prefetch(txn, nil)
	if err != nil {
		return nil, err
	}
	return p, p.tokensAhead(s, ids, keys, prefixes)
}

// tokensAhead reads ahead what getToken reads of each of ids, and keys and
// prefixes besides.
func (p *prefetched) tokensAhead(s *Store, ids []string, keys, prefixes [][]byte) error {
	if p.off {
		return nil
	}
	for _, id := range ids {
		keys = append(keys, tokenKey(id), s.myLastUsedKey(id))
		// getToken reads the token's allow-list too (mergeAllowed).
		prefixes = append(prefixes, allowPrefix(id))
		if s.node != "" {
			prefixes = append(prefixes, lastUsedKey(id))
		}
	}
	if err := p.getAhead(keys); err != nil {
		return err
	}
	return p.scanAhead(prefixes)
}

// readsAhead is whether operations over many keys read them ahead: on a
// shared engine, where each read is a round trip to the cluster.
func (s *Store) readsAhead() bool { return s.shared != nil }

// prefetchRefs reads ahead what getRef reads of each of refs: the name
// index keys of those by name in one GetMany, then the tokens (tokensAhead).
func (s *Store) prefetchRefs(txn Reader, refs []tokenRef) (*prefetched, error) {
	var keys [][]byte
	var ids []string
	for _, r := range refs {
		if r.id != "" {
			ids = append(ids, r.id)
		} else {
			keys = append(keys, nameKey(r.name))
		}
	}
	p, err := s.prefetch(txn, keys)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if id := p.got[string(k)]; id != nil {
			ids = append(ids, string(id))
		}
	}
	return p, p.tokensAhead(s, ids, nil, nil)
}

// Get answers a key read ahead from memory. The value is handed over (the
// caller's, as Get promises) and forgotten: the domain reads a key once, and
// a second Get asks the transaction.
func (p *prefetched) Get(key []byte) ([]byte, error) {
	v, ok := p.got[string(key)]
	if !ok {
		return p.Reader.Get(key)
	}
	if v == nil {
		return nil, fmt.Errorf("%q: %w", key, ErrNoKey)
	}
	delete(p.got, string(key))
	return v, nil
}

func (p *prefetched) GetMany(keys [][]byte) ([][]byte, error) {
	out := make([][]byte, len(keys))
	var rest [][]byte
	var at []int
	for i, k := range keys {
		if v, ok := p.got[string(k)]; ok {
			out[i] = bytes.Clone(v)
			continue
		}
		rest, at = append(rest, k), append(at, i)
	}
	if len(rest) == 0 {
		return out, nil
	}
	vals, err := p.Reader.GetMany(rest)
	if err != nil {
		return nil, err
	}
	for j, i := range at {
		out[i] = vals[j]
	}
	return out, nil
}

// errReadOnly is a write through a prefetched View.
var errReadOnly = errors.New("store: a write in a read-only transaction")

func (p *prefetched) Set(key, value []byte) error {
	if p.w == nil {
		return errReadOnly
	}
	delete(p.got, string(key))
	return p.w.Set(key, value)
}

func (p *prefetched) Delete(key []byte) error {
	if p.w == nil {
		return errReadOnly
	}
	delete(p.got, string(key))
	return p.w.Delete(key)
}

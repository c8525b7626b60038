package store_test

import (
	"fmt"
	"sort"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/apptokens/apptokens/internal/secret"
	"github.com/apptokens/apptokens/store"
	sbadger "github.com/apptokens/apptokens/store/badger"
	"github.com/apptokens/apptokens/store/storetest"
)

var benchAccess = []store.Access{store.AccessSecurityDirector, store.AccessThirdPartyFeeds}

// benchEngines are the engines the store's benchmarks compare: Badger on a
// real directory (synced commits, as in production), then every engine of the
// test table but Badger in memory.
func benchEngines() []storetest.Engine {
	out := []storetest.Engine{storetest.BadgerDisk()}
	for _, e := range storetest.Engines() {
		if e.Name != storetest.Badger().Name {
			out = append(out, e)
		}
	}
	return out
}

// allKV is every key and value of eng.
func allKV(b *testing.B, eng store.Engine) map[string]string {
	b.Helper()
	out := map[string]string{}
	err := eng.View(func(r store.Reader) error {
		it := r.Scan(nil, store.ScanOptions{})
		defer it.Close()
		for it.Next() {
			out[string(it.Key())] = string(it.Value())
		}
		return it.Err()
	})
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// written is the keys (sorted) and values that differ between two allKV.
func written(before, after map[string]string) (keys, vals [][]byte) {
	for k, v := range after {
		if old, ok := before[k]; !ok || old != v {
			keys = append(keys, []byte(k))
		}
	}
	sort.Slice(keys, func(i, j int) bool { return string(keys[i]) < string(keys[j]) })
	for _, k := range keys {
		vals = append(vals, []byte(after[string(k)]))
	}
	return keys, vals
}

// setAll writes keys and vals through eng in txns transactions, one as
// large as the next: the floor of what the store wrote, the engine's bare Set.
func setAll(b *testing.B, eng store.Engine, keys, vals [][]byte, txns int) {
	per := (len(keys) + txns - 1) / txns
	for lo := 0; lo < len(keys); lo += per {
		hi := min(lo+per, len(keys))
		err := eng.Update(func(tx store.Txn) error {
			for j := lo; j < hi; j++ {
				if err := tx.Set(keys[j], vals[j]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStoreCreate is one admin's create on each engine: validate,
// generate a secret, check the name index and write token, indexes and audit
// event in one transaction (synced, on Badger). Beside it, floor writes the
// very key/value pairs of one Create (found by diffing the store before and
// after it) in one bare transaction of the same engine: the cost of the
// commit alone.
func BenchmarkStoreCreate(b *testing.B) {
	storetest.EachB(b, benchEngines(), func(b *testing.B, e storetest.Engine) {
		b.Run("create", func(b *testing.B) {
			s := e.Open(b)
			i := 0
			for b.Loop() {
				if _, err := s.Create(admin, store.NewToken{Name: fmt.Sprintf("bench-%d", i), Description: "benchmark token", Access: benchAccess}); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
		b.Run("floor", func(b *testing.B) {
			s := e.Open(b)
			before := allKV(b, s.Engine())
			if _, err := s.Create(admin, store.NewToken{Name: "bench-0", Description: "benchmark token", Access: benchAccess}); err != nil {
				b.Fatal(err)
			}
			keys, vals := written(before, allKV(b, s.Engine()))
			if len(keys) < 4 { // name index, digest index, token, audit event (and a shared engine's changes)
				b.Fatalf("one Create wrote %d keys, want 4 or more", len(keys))
			}
			for b.Loop() {
				setAll(b, s.Engine(), keys, vals, 1)
			}
		})
	})
}

// BenchmarkStoreList lists 100,000 tokens (what the TUI and `list` load), beside
// its floor: a bare iteration over the same token records without decoding them.
func BenchmarkStoreList(b *testing.B) {
	const n = 100000
	s, _ := openDir(b)
	start := time.Now()
	seed := make([]store.SeedToken, n)
	for i := range seed {
		sec, err := secret.Generate()
		if err != nil {
			b.Fatal(err)
		}
		seed[i] = store.SeedToken{
			Token: store.Token{
				Name: fmt.Sprintf("token-%06d", i), Description: "seeded for the list benchmark",
				Access: benchAccess, Active: i%7 != 0, CreatedAt: start, UpdatedAt: start,
			},
			Secret: sec,
		}
	}
	generated := time.Since(start)
	if err := s.BulkLoad(admin, seed); err != nil {
		b.Fatal(err)
	}
	b.Logf("set-up: %d secrets generated in %v, bulk-loaded in %v", n, generated.Round(time.Millisecond), (time.Since(start) - generated).Round(time.Millisecond))

	b.Run(fmt.Sprintf("tokens=%d", n), func(b *testing.B) {
		for b.Loop() {
			toks, err := s.List()
			if err != nil {
				b.Fatal(err)
			}
			if len(toks) != n {
				b.Fatalf("listed %d tokens", len(toks))
			}
		}
	})
	// EachToken streams in name order (list --json, the TUI's shared set):
	// it holds one token at a time, for a lookup per token by the name index.
	b.Run(fmt.Sprintf("each/tokens=%d", n), func(b *testing.B) {
		for b.Loop() {
			count := 0
			if err := s.EachToken(func(store.Token) error { count++; return nil }); err != nil || count != n {
				b.Fatalf("streamed %d tokens: %v", count, err)
			}
		}
	})
	b.Run(fmt.Sprintf("floor/tokens=%d", n), func(b *testing.B) {
		db := s.Engine().(*sbadger.Engine).DB()
		for b.Loop() {
			count, size := 0, 0
			err := db.View(func(txn *badger.Txn) error {
				opts := badger.DefaultIteratorOptions
				opts.Prefix = []byte(store.PrefixToken)
				opts.PrefetchSize = 256
				it := txn.NewIterator(opts)
				defer it.Close()
				for it.Rewind(); it.Valid(); it.Next() {
					if err := it.Item().Value(func(v []byte) error { size += len(v); return nil }); err != nil {
						return err
					}
					count++
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			if count != n || size == 0 {
				b.Fatalf("iterated %d tokens", count)
			}
		}
	})
}

package store_test

import (
	"fmt"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/apptokens/apptokens/internal/secret"
	"github.com/apptokens/apptokens/store"
)

var benchAccess = []store.Access{store.AccessSecurityDirector, store.AccessThirdPartyFeeds}

// BenchmarkStoreCreate is one admin's create: validate, generate a secret, check
// the name index and write token, indexes and audit event in one synced
// transaction on a real directory.
func BenchmarkStoreCreate(b *testing.B) {
	s, _ := openDir(b)
	i := 0
	for b.Loop() {
		if _, err := s.Create(admin, store.NewToken{Name: fmt.Sprintf("bench-%d", i), Description: "benchmark token", Access: benchAccess}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkStoreCreateFloor writes the very key/value pairs of one Create (found
// by diffing the store before and after it) in a bare synced Badger transaction
// on the same database: the cost of the commit and fsync alone.
func BenchmarkStoreCreateFloor(b *testing.B) {
	s, _ := openDir(b)
	before, err := s.DumpKV()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.Create(admin, store.NewToken{Name: "bench-0", Description: "benchmark token", Access: benchAccess}); err != nil {
		b.Fatal(err)
	}
	var keys, vals [][]byte
	err = s.DB().View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().KeyCopy(nil)
			if _, old := before[fmt.Sprintf("%x", k)]; old {
				continue
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			keys, vals = append(keys, k), append(vals, v)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if len(keys) != 4 { // name index, digest index, token, audit event
		b.Fatalf("one Create wrote %d keys, want 4", len(keys))
	}
	db := s.DB()
	for b.Loop() {
		err := db.Update(func(txn *badger.Txn) error {
			for j := range keys {
				if err := txn.Set(keys[j], vals[j]); err != nil {
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
		db := s.DB()
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

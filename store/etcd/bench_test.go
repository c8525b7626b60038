package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/etcd/etcdtest"
)

// BenchmarkEngineUpdate is one Update reading a key with Get and writing it
// and store.ChangesKey (what a domain change does), on a single member; its
// floor, BenchmarkEngineUpdateFloor, is a bare clientv3 Put on the same
// member, so the engine's overhead (the snapshot read, the Get, the compares)
// reads as the ratio of the two.
func BenchmarkEngineUpdate(b *testing.B) {
	e := etcdtest.SharedEngine(b, "bench")
	for i := 0; b.Loop(); i++ {
		if err := e.Update(func(tx store.Txn) error {
			k := fmt.Appendf(nil, "t/%d", i%1000)
			if _, err := tx.Get(k); err != nil && !isNoKey(err) {
				return err
			}
			if err := tx.Set(k, []byte("value")); err != nil {
				return err
			}
			return tx.Set([]byte(store.ChangesKey), []byte("change"))
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEngineUpdateFloor is a bare clientv3 Put of one key.
func BenchmarkEngineUpdateFloor(b *testing.B) {
	eps, prefix := etcdtest.Shared(b)
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps})
	if err != nil {
		b.Fatal(err)
	}
	defer cli.Close()
	ctx := context.Background()
	for i := 0; b.Loop(); i++ {
		if _, err := cli.Put(ctx, fmt.Sprintf("%st/%d", prefix, i%1000), "value"); err != nil {
			b.Fatal(err)
		}
	}
}

func isNoKey(err error) bool { return errors.Is(err, store.ErrNoKey) }

// Package enginetest is the conformance suite of store.Engine: every promise
// of store/engine.go, run against each engine (store/badger, store/etcd) from
// that engine's tests.
package enginetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apptokens/apptokens/store"
)

// Run runs the suite; open returns a new engine holding no keys, closed by
// the caller (t.Cleanup) when t ends.
func Run(t *testing.T, open func(t *testing.T) store.Engine) {
	tests := []struct {
		name string
		fn   func(*testing.T, store.Engine)
	}{
		{"GetSetDelete", testGetSetDelete},
		{"Copies", testCopies},
		{"Scan", testScan},
		{"ReadYourWrites", testReadYourWrites},
		{"ErrorWritesNothing", testErrorWritesNothing},
		{"ConcurrentCounter", testConcurrentCounter},
		{"DeletedKeyAborts", testDeletedKeyAborts},
		{"CreatedKeyAborts", testCreatedKeyAborts},
		{"Limits", testLimits},
		{"GetMany", testGetMany},
		{"GetManyAborts", testGetManyAborts},
		{"GetManyLimits", testGetManyLimits},
		{"ScanMany", testScanMany},
		{"Load", testLoad},
		{"ReplaceAtomic", testReplaceAtomic},
		{"ReplaceFailureKeepsOld", testReplaceFailureKeepsOld},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

// RunBatchReads runs the suite's tests of GetMany and ScanMany alone (part of
// Run): an engine whose other promises are tested elsewhere.
func RunBatchReads(t *testing.T, open func(t *testing.T) store.Engine) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, store.Engine)
	}{
		{"GetMany", testGetMany},
		{"GetManyAborts", testGetManyAborts},
		{"GetManyLimits", testGetManyLimits},
		{"ScanMany", testScanMany},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

// RunShared runs the suite of a store.SharedEngine; open returns n engines
// (as n nodes with distinct names) on one new, empty set of keys. A test may
// close an engine itself (closing it again must be harmless).
func RunShared(t *testing.T, open func(t *testing.T, n int) []store.SharedEngine) {
	tests := []struct {
		name string
		n    int
		fn   func(*testing.T, []store.SharedEngine)
	}{
		{"WatchOtherWriter", 2, testWatchOtherWriter},
		{"WatchResetOnReplace", 2, testWatchResetOnReplace},
		{"LeadExclusive", 2, testLeadExclusive},
		{"HealthAndNode", 2, testHealthAndNode},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t, tc.n)) })
	}
}

func set(t *testing.T, e store.Engine, kv ...string) {
	t.Helper()
	if err := e.Update(func(tx store.Txn) error {
		for i := 0; i < len(kv); i += 2 {
			if err := tx.Set([]byte(kv[i]), []byte(kv[i+1])); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("%s: Update: %v", e, err)
	}
}

// get is key's value in a View, "<none>" when absent.
func get(t *testing.T, e store.Engine, key string) string {
	t.Helper()
	var v []byte
	err := e.View(func(r store.Reader) error {
		var err error
		v, err = r.Get([]byte(key))
		return err
	})
	if errors.Is(err, store.ErrNoKey) {
		return "<none>"
	}
	if err != nil {
		t.Fatalf("%s: Get %q: %v", e, key, err)
	}
	return string(v)
}

// scan lists "key=value" (or "key" when keysOnly) of a Scan in a View.
func scan(t *testing.T, e store.Engine, prefix string, opts store.ScanOptions) []string {
	t.Helper()
	var out []string
	if err := e.View(func(r store.Reader) error {
		out = scanIn(r, prefix, opts)
		return nil
	}); err != nil {
		t.Fatalf("%s: View: %v", e, err)
	}
	return out
}

func scanIn(r store.Reader, prefix string, opts store.ScanOptions) []string {
	var out []string
	it := r.Scan([]byte(prefix), opts)
	defer it.Close()
	for it.Next() {
		if opts.KeysOnly {
			if it.Value() != nil {
				out = append(out, string(it.Key())+"=<value in a keys-only scan>")
				continue
			}
			out = append(out, string(it.Key()))
		} else {
			out = append(out, string(it.Key())+"="+string(it.Value()))
		}
	}
	if err := it.Err(); err != nil {
		out = append(out, "error: "+err.Error())
	}
	return out
}

func testGetSetDelete(t *testing.T, e store.Engine) {
	if got := get(t, e, "a"); got != "<none>" {
		t.Fatalf("Get of a key never set = %q, want ErrNoKey", got)
	}
	set(t, e, "a", "1", "b", "2", "empty", "")
	if got := get(t, e, "a") + get(t, e, "b") + "|" + get(t, e, "empty") + "|"; got != "12||" {
		t.Fatalf("after Set: %q, want 12||", got)
	}
	if err := e.Update(func(tx store.Txn) error { return tx.Delete([]byte("a")) }); err != nil {
		t.Fatal(err)
	}
	if got := get(t, e, "a"); got != "<none>" {
		t.Fatalf("Get after Delete = %q, want ErrNoKey", got)
	}
	if got := get(t, e, "b"); got != "2" {
		t.Fatalf("other key after Delete = %q, want 2", got)
	}
	if e.String() == "" || e.Limits().MaxBytes <= 0 {
		t.Fatalf("String %q, Limits %+v: want a name and a byte bound", e.String(), e.Limits())
	}
}

func testCopies(t *testing.T, e store.Engine) {
	v := []byte("value")
	if err := e.Update(func(tx store.Txn) error {
		err := tx.Set([]byte("k"), v)
		v[0] = 'X' // the caller's buffer, reused after Set
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := e.View(func(r store.Reader) error {
		got, err := r.Get([]byte("k"))
		if err != nil {
			return err
		}
		if string(got) != "value" {
			return fmt.Errorf("stored %q, want value (Set must copy)", got)
		}
		got[0] = 'Y'
		again, err := r.Get([]byte("k"))
		if err != nil {
			return err
		}
		if string(again) != "value" {
			return fmt.Errorf("after changing a Get result, Get = %q (Get must return a copy)", again)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var kept []byte
	if err := e.View(func(r store.Reader) error {
		var err error
		kept, err = r.Get([]byte("k"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	set(t, e, "k", "other")
	if string(kept) != "value" {
		t.Fatalf("a value kept after View changed to %q", kept)
	}
}

func testScan(t *testing.T, e store.Engine) {
	const n = 600 // more than a page of any engine
	if err := e.Load(func(w store.Writer) error {
		for _, k := range []string{"r", "r/9", "s", "t", "t/0"} {
			if err := w.Set([]byte(k), []byte("outside")); err != nil {
				return err
			}
		}
		for i := 0; i < n; i++ {
			if err := w.Set(fmt.Appendf(nil, "s/%04d", i), fmt.Appendf(nil, "v%d", i)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := func(from, to int, keysOnly bool) []string { // from..to inclusive, either direction
		var out []string
		step := 1
		if to < from {
			step = -1
		}
		for i := from; ; i += step {
			if keysOnly {
				out = append(out, fmt.Sprintf("s/%04d", i))
			} else {
				out = append(out, fmt.Sprintf("s/%04d=v%d", i, i))
			}
			if i == to {
				return out
			}
		}
	}
	for _, tc := range []struct {
		name string
		opts store.ScanOptions
		want []string
	}{
		{"all", store.ScanOptions{}, want(0, n-1, false)},
		{"start", store.ScanOptions{Start: []byte("s/0300")}, want(300, n-1, false)},
		{"start between keys", store.ScanOptions{Start: []byte("s/0299x")}, want(300, n-1, false)},
		{"start before prefix", store.ScanOptions{Start: []byte("a")}, want(0, n-1, false)},
		{"reverse", store.ScanOptions{Reverse: true}, want(n-1, 0, false)},
		{"reverse start", store.ScanOptions{Reverse: true, Start: []byte("s/0300")}, want(300, 0, false)},
		{"reverse start between keys", store.ScanOptions{Reverse: true, Start: []byte("s/0300x")}, want(300, 0, false)},
		{"reverse start after prefix", store.ScanOptions{Reverse: true, Start: []byte("s/z")}, want(n-1, 0, false)},
		{"keys only", store.ScanOptions{KeysOnly: true}, want(0, n-1, true)},
		{"keys only reverse", store.ScanOptions{KeysOnly: true, Reverse: true}, want(n-1, 0, true)},
	} {
		got := scan(t, e, "s/", tc.opts)
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("Scan s/ %s: %d keys %.80q…, want %d keys %.80q…", tc.name, len(got), got, len(tc.want), tc.want)
		}
	}
	if got := scan(t, e, "s/1", store.ScanOptions{}); len(got) != 0 {
		t.Errorf("Scan of a prefix without keys: %q", got)
	}
	if got := scan(t, e, "", store.ScanOptions{KeysOnly: true}); len(got) != n+5 {
		t.Errorf("Scan of every key: %d keys, want %d", len(got), n+5)
	}
}

func testReadYourWrites(t *testing.T, e store.Engine) {
	set(t, e, "a", "old", "b", "old")
	if err := e.Update(func(tx store.Txn) error {
		if err := tx.Set([]byte("a"), []byte("new")); err != nil {
			return err
		}
		if err := tx.Set([]byte("c"), []byte("new")); err != nil {
			return err
		}
		if err := tx.Delete([]byte("b")); err != nil {
			return err
		}
		for k, want := range map[string]string{"a": "new", "c": "new"} {
			if v, err := tx.Get([]byte(k)); err != nil || string(v) != want {
				return fmt.Errorf("own write of %q: Get = %q, %v; want %q", k, v, err, want)
			}
		}
		if v, err := tx.Get([]byte("b")); !errors.Is(err, store.ErrNoKey) {
			return fmt.Errorf("own delete: Get = %q, %v; want ErrNoKey", v, err)
		}
		if got := strings.Join(scanIn(tx, "", store.ScanOptions{}), " "); got != "a=old b=old" {
			return fmt.Errorf("in the transaction, Scan = %q, want the snapshot without its own writes: a=old b=old", got)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(scan(t, e, "", store.ScanOptions{}), " "); got != "a=new c=new" {
		t.Fatalf("after commit: %q, want a=new c=new", got)
	}
}

func testErrorWritesNothing(t *testing.T, e store.Engine) {
	set(t, e, "a", "1")
	errMine := errors.New("mine")
	err := e.Update(func(tx store.Txn) error {
		tx.Set([]byte("a"), []byte("2"))
		tx.Set([]byte("b"), []byte("2"))
		return errMine
	})
	if err != errMine {
		t.Fatalf("Update returned %v, want fn's error as it is", err)
	}
	if got := strings.Join(scan(t, e, "", store.ScanOptions{}), " "); got != "a=1" {
		t.Fatalf("after a failed Update: %q, want a=1", got)
	}
}

func testConcurrentCounter(t *testing.T, e store.Engine) {
	const each = 100
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if err := e.Update(func(tx store.Txn) error {
					n := 0
					v, err := tx.Get([]byte("counter"))
					if err == nil {
						fmt.Sscan(string(v), &n)
					} else if !errors.Is(err, store.ErrNoKey) {
						return err
					}
					return tx.Set([]byte("counter"), fmt.Append(nil, n+1))
				}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("increment: %v", err)
	}
	if got := get(t, e, "counter"); got != fmt.Sprint(2*each) {
		t.Fatalf("counter = %s after 2×%d concurrent increments, want %d", got, each, 2*each)
	}
}

func testDeletedKeyAborts(t *testing.T, e store.Engine) {
	set(t, e, "k", "1")
	runs := 0
	var seen []string
	if err := e.Update(func(tx store.Txn) error {
		runs++
		v, err := tx.Get([]byte("k"))
		if err != nil && !errors.Is(err, store.ErrNoKey) {
			return err
		}
		seen = append(seen, fmt.Sprintf("%q %v", v, errors.Is(err, store.ErrNoKey)))
		if runs == 1 { // another writer deletes k between the read and the commit
			if err := e.Update(func(o store.Txn) error { return o.Delete([]byte("k")) }); err != nil {
				return err
			}
		}
		return tx.Set([]byte("copy"), v)
	}); err != nil {
		t.Fatal(err)
	}
	if runs != 2 || get(t, e, "copy") != "" {
		t.Fatalf("runs %d, reads %q, copy %q: want the commit aborted and fn run again seeing no key", runs, seen, get(t, e, "copy"))
	}
}

func testCreatedKeyAborts(t *testing.T, e store.Engine) {
	runs := 0
	if err := e.Update(func(tx store.Txn) error {
		runs++
		_, err := tx.Get([]byte("k"))
		if runs == 1 {
			if !errors.Is(err, store.ErrNoKey) {
				return fmt.Errorf("first read: %v, want ErrNoKey", err)
			}
			set(t, e, "k", "other")
		}
		return tx.Set([]byte("k"), []byte("mine"))
	}); err != nil {
		t.Fatal(err)
	}
	if runs != 2 {
		t.Fatalf("fn ran %d times; a key created by another writer after the Get must abort the commit", runs)
	}
}

func testLimits(t *testing.T, e store.Engine) {
	l := e.Limits()
	if l.MaxOps > 0 {
		err := e.Update(func(tx store.Txn) error {
			for i := 0; i <= l.MaxOps; i++ {
				tx.Set(fmt.Appendf(nil, "w/%04d", i), []byte("v"))
			}
			return nil
		})
		if !errors.Is(err, store.ErrTooMany) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Update of MaxOps+1 = %d writes: %v, want one line matching ErrTooMany", l.MaxOps+1, err)
		}
		if got := scan(t, e, "w/", store.ScanOptions{KeysOnly: true}); len(got) != 0 {
			t.Errorf("a refused Update wrote %d keys", len(got))
		}
		if err := e.Update(func(tx store.Txn) error {
			for i := 0; i < l.MaxOps; i++ {
				tx.Set(fmt.Appendf(nil, "w/%04d", i), []byte("v"))
			}
			return nil
		}); err != nil {
			t.Errorf("Update of MaxOps = %d writes: %v", l.MaxOps, err)
		}
		err = e.Update(func(tx store.Txn) error {
			for i := 0; i <= l.MaxOps; i++ {
				if _, err := tx.Get(fmt.Appendf(nil, "w/%04d", i)); err != nil && !errors.Is(err, store.ErrNoKey) {
					return err
				}
			}
			return tx.Set([]byte("after reads"), []byte("v"))
		})
		if !errors.Is(err, store.ErrTooMany) {
			t.Errorf("Update of MaxOps+1 reads: %v, want ErrTooMany", err)
		}
		if got := get(t, e, "after reads"); got != "<none>" {
			t.Errorf("a refused Update wrote %q", got)
		}
	}
	big := bytes.Repeat([]byte("x"), l.MaxBytes)
	err := e.Update(func(tx store.Txn) error { return tx.Set([]byte("big"), big) })
	if !errors.Is(err, store.ErrTooMany) {
		t.Errorf("Update of more than MaxBytes = %d: %v, want ErrTooMany", l.MaxBytes, err)
	}
	if got := get(t, e, "big"); got != "<none>" {
		t.Errorf("a refused Update wrote %d bytes", len(got))
	}
}

func testLoad(t *testing.T, e store.Engine) {
	const n = 1000 // many batches of any engine's limits
	val := bytes.Repeat([]byte("v"), 2000)
	if err := e.Load(func(w store.Writer) error {
		for i := 0; i < n; i++ {
			if err := w.Set(fmt.Appendf(nil, "l/%04d", i), val); err != nil {
				return err
			}
		}
		// The same key again in one Load: the last write wins.
		if err := w.Set([]byte("l/0000"), []byte("last")); err != nil {
			return err
		}
		return w.Delete([]byte("l/0001"))
	}); err != nil {
		t.Fatal(err)
	}
	got := scan(t, e, "l/", store.ScanOptions{KeysOnly: true})
	if len(got) != n-1 || get(t, e, "l/0000") != "last" || get(t, e, "l/0001") != "<none>" || get(t, e, "l/0999") != string(val) {
		t.Fatalf("after Load: %d keys, l/0000 %.10q, l/0001 %.10q; want %d keys, last, none", len(got), get(t, e, "l/0000"), get(t, e, "l/0001"), n-1)
	}
	errMine := errors.New("mine")
	if err := e.Load(func(w store.Writer) error {
		w.Set([]byte("m/kept"), []byte("v"))
		return errMine
	}); err != errMine {
		t.Fatalf("Load returned %v, want fn's error", err)
	}
	if got := get(t, e, "m/kept"); got != "v" {
		t.Fatalf("a write before Load's error: %q, want it kept", got)
	}
}

// fill writes n keys prefix/0000… with value v.
func fill(prefix, v string, n int) func(store.Writer) error {
	return func(w store.Writer) error {
		for i := 0; i < n; i++ {
			if err := w.Set(fmt.Appendf(nil, "%s/%04d", prefix, i), []byte(v)); err != nil {
				return err
			}
		}
		return nil
	}
}

func testReplaceAtomic(t *testing.T, e store.Engine) {
	const n = 400 // more than one transaction of any engine
	if err := e.Load(fill("old", "o", n)); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var views atomic.Int64
	done := make(chan error, 1)
	go func() {
		var err error
		for !stop.Load() && err == nil {
			err = e.View(func(r store.Reader) error {
				old, nw := len(scanIn(r, "old/", store.ScanOptions{KeysOnly: true})), len(scanIn(r, "new/", store.ScanOptions{KeysOnly: true}))
				if (old != n || nw != 0) && (old != 0 || nw != n) {
					return fmt.Errorf("a reader saw %d old and %d new keys during Replace", old, nw)
				}
				views.Add(1)
				return nil
			})
		}
		done <- err
	}()
	for views.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	err := e.Replace(fill("new", "n", n))
	stop.Store(true)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if old, nw := scan(t, e, "old/", store.ScanOptions{}), scan(t, e, "new/", store.ScanOptions{}); len(old) != 0 || len(nw) != n || nw[0] != "new/0000=n" {
		t.Fatalf("after Replace: %d old and %d new keys, want 0 and %d", len(old), len(nw), n)
	}
	// A write after Replace lands in the new keys.
	set(t, e, "after", "1")
	if got := get(t, e, "after"); got != "1" {
		t.Fatalf("a write after Replace: %q", got)
	}
}

func testReplaceFailureKeepsOld(t *testing.T, e store.Engine) {
	const n = 300
	if err := e.Load(fill("old", "o", n)); err != nil {
		t.Fatal(err)
	}
	errMine := errors.New("mine")
	err := e.Replace(func(w store.Writer) error {
		if err := fill("new", "n", n)(w); err != nil {
			return err
		}
		return errMine
	})
	if !errors.Is(err, errMine) {
		t.Fatalf("Replace returned %v, want fn's error", err)
	}
	if old, nw := scan(t, e, "old/", store.ScanOptions{}), scan(t, e, "new/", store.ScanOptions{}); len(old) != n || len(nw) != 0 {
		t.Fatalf("after a failed Replace: %d old and %d new keys, want %d and 0", len(old), len(nw), n)
	}
	set(t, e, "after", "1")
	if got := len(scan(t, e, "", store.ScanOptions{KeysOnly: true})); got != n+1 {
		t.Fatalf("after a failed Replace and a write: %d keys, want %d", got, n+1)
	}
}

// wait is the time a test waits for something another process does.
const wait = 15 * time.Second

func testWatchOtherWriter(t *testing.T, es []store.SharedEngine) {
	a, b := es[0], es[1]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan string, 1000)
	resets := make(chan struct{}, 10)
	if err := b.Watch(ctx, []byte(store.ChangesKey), func(v []byte) { got <- string(v) }, func() { resets <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	const n = 50
	for i := 0; i < n; i++ {
		set(t, a, store.ChangesKey, fmt.Sprint(i), "other", "x")
	}
	for i := 0; i < n; i++ {
		select {
		case v := <-got:
			if v != fmt.Sprint(i) {
				t.Fatalf("watch value %d = %q, want %d (every write, in order)", i, v, i)
			}
		case <-resets:
			t.Fatal("reset without a Replace or compaction")
		case <-time.After(wait):
			t.Fatalf("watch delivered %d of %d writes", i, n)
		}
	}
}

func testWatchResetOnReplace(t *testing.T, es []store.SharedEngine) {
	a, b := es[0], es[1]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan string, 100)
	resets := make(chan struct{}, 10)
	if err := b.Watch(ctx, []byte(store.ChangesKey), func(v []byte) { got <- string(v) }, func() { resets <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	if err := a.Replace(fill("r", "v", 10)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-resets:
	case <-time.After(wait):
		t.Fatal("no reset after another node's Replace")
	}
	set(t, a, store.ChangesKey, "after")
	select {
	case v := <-got:
		if v != "after" {
			t.Fatalf("after the reset: %q, want after", v)
		}
	case <-time.After(wait):
		t.Fatal("no value after the reset: the watch did not follow the Replace")
	}
}

func testLeadExclusive(t *testing.T, es []store.SharedEngine) {
	var holders, most atomic.Int32
	led := make(chan int, 10)
	ctxs := make([]context.CancelFunc, len(es))
	var wg sync.WaitGroup
	for i, e := range es {
		ctx, cancel := context.WithCancel(context.Background())
		ctxs[i] = cancel
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.Lead(ctx, "sweeper", func(ctx context.Context) {
				h := holders.Add(1)
				for m := most.Load(); h > m && !most.CompareAndSwap(m, h); m = most.Load() {
				}
				led <- i
				<-ctx.Done()
				holders.Add(-1)
			})
		}()
	}
	defer func() {
		for _, c := range ctxs {
			c()
		}
		wg.Wait()
	}()
	var first int
	select {
	case first = <-led:
	case <-time.After(wait):
		t.Fatal("nobody leads")
	}
	time.Sleep(200 * time.Millisecond) // the other node campaigns meanwhile
	es[first].Close()                  // the leader's node shuts down
	select {
	case next := <-led:
		if next == first {
			t.Fatalf("node %d led again after its Lead ended", first)
		}
	case <-time.After(wait):
		t.Fatal("no takeover after the leader stopped")
	}
	if m := most.Load(); m != 1 {
		t.Fatalf("%d nodes led at once", m)
	}
}

func testHealthAndNode(t *testing.T, es []store.SharedEngine) {
	for _, e := range es {
		if err := e.Health(context.Background()); err != nil {
			t.Errorf("%s: Health = %v", e, err)
		}
	}
	if es[0].Node() == "" || es[0].Node() == es[1].Node() {
		t.Errorf("nodes %q and %q: want two distinct names", es[0].Node(), es[1].Node())
	}
}

// vals shows GetMany's values: "<none>" for an absent key.
func vals(vs [][]byte) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = "<none>"
		if v != nil {
			out[i] = string(v)
		}
	}
	return out
}

func testGetMany(t *testing.T, e store.Engine) {
	set(t, e, "a", "1", "b", "2", "e", "")
	keys := [][]byte{[]byte("b"), []byte("missing"), []byte("a"), []byte("e"), []byte("b")}
	var got []string
	if err := e.View(func(r store.Reader) error {
		vs, err := r.GetMany(keys)
		if err != nil {
			return err
		}
		got = vals(vs)
		if len(vs) == 5 && vs[0] != nil {
			vs[0][0] = 'X' // the caller's copy
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"2", "<none>", "1", "", "2"}; fmt.Sprint(got) != fmt.Sprint(want) || get(t, e, "b") != "2" {
		t.Fatalf("GetMany in a View = %q (b now %q), want %q", got, get(t, e, "b"), want)
	}
	// In an Update, the transaction's own writes read as written.
	if err := e.Update(func(tx store.Txn) error {
		if err := tx.Set([]byte("a"), []byte("9")); err != nil {
			return err
		}
		if err := tx.Delete([]byte("b")); err != nil {
			return err
		}
		vs, err := tx.GetMany(keys)
		if err != nil {
			return err
		}
		got = vals(vs)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"<none>", "<none>", "9", "", "<none>"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("GetMany in an Update after its writes = %q, want %q", got, want)
	}
	if err := e.View(func(r store.Reader) error {
		vs, err := r.GetMany(nil)
		if err == nil && len(vs) != 0 {
			err = fmt.Errorf("%d values of no keys", len(vs))
		}
		return err
	}); err != nil {
		t.Fatalf("GetMany of no keys: %v", err)
	}
}

// A key read with GetMany counts as a Get: another writer's change of it
// between the read and the commit aborts the commit, and fn runs again.
func testGetManyAborts(t *testing.T, e store.Engine) {
	set(t, e, "k1", "1", "k2", "2")
	runs := 0
	var seen []string
	if err := e.Update(func(tx store.Txn) error {
		runs++
		vs, err := tx.GetMany([][]byte{[]byte("k1"), []byte("k2"), []byte("k3")})
		if err != nil {
			return err
		}
		seen = append(seen, fmt.Sprint(vals(vs)))
		// (A run may also end at a read an engine retries: count the reads.)
		if len(seen) == 1 { // another writer changes k2 between the read and the commit
			set(t, e, "k2", "other")
		}
		return tx.Set([]byte("copy"), vs[1])
	}); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2 || get(t, e, "copy") != "other" {
		t.Fatalf("runs %d, reads %q, copy %q: want the commit aborted and fn run again", runs, seen, get(t, e, "copy"))
	}
	reads := 0
	if err := e.Update(func(tx store.Txn) error {
		if _, err := tx.GetMany([][]byte{[]byte("k1"), []byte("k3")}); err != nil {
			return err
		}
		reads++
		if reads == 1 { // another writer creates k3, read as absent
			set(t, e, "k3", "new")
		}
		return tx.Set([]byte("k4"), []byte("v"))
	}); err != nil {
		t.Fatal(err)
	}
	if reads != 2 {
		t.Fatalf("fn read %d times; a key created after GetMany read it absent must abort the commit", reads)
	}
}

// Keys read with GetMany count toward Limits as Gets.
func testGetManyLimits(t *testing.T, e store.Engine) {
	l := e.Limits()
	if l.MaxOps <= 0 {
		return
	}
	keys := make([][]byte, l.MaxOps+1)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "r/%04d", i)
	}
	set(t, e, "r/0000", "first", fmt.Sprintf("r/%04d", l.MaxOps), "last")
	var got []string
	if err := e.View(func(r store.Reader) error {
		vs, err := r.GetMany(keys)
		if err == nil {
			got = vals(vs)
		}
		return err
	}); err != nil || len(got) != len(keys) || got[0] != "first" || got[len(got)-1] != "last" {
		t.Fatalf("GetMany of MaxOps+1 = %d keys in a View: %v, %d values", len(keys), err, len(got))
	}
	err := e.Update(func(tx store.Txn) error {
		if _, err := tx.GetMany(keys); err != nil {
			return err
		}
		return tx.Set([]byte("after reads"), []byte("v"))
	})
	if !errors.Is(err, store.ErrTooMany) {
		t.Errorf("Update of MaxOps+1 reads by GetMany: %v, want ErrTooMany", err)
	}
	if got := get(t, e, "after reads"); got != "<none>" {
		t.Errorf("a refused Update wrote %q", got)
	}
}

func testScanMany(t *testing.T, e store.Engine) {
	set(t, e, "p/a/1", "x", "p/a/2", "y", "p/ab", "z", "p/c", "w", "q", "v")
	// A prefix of more keys than a page of any engine reads.
	const many = 600
	if err := e.Load(fill("m", "v", many)); err != nil {
		t.Fatal(err)
	}
	prefixes := [][]byte{[]byte("p/a"), []byte("none/"), []byte("p/c"), []byte("m/"), []byte("p/a/")}
	var got [][]string
	show := func(kvs [][]store.KV) {
		got = nil
		for _, p := range kvs {
			var row []string
			for _, kv := range p {
				row = append(row, string(kv.Key)+"="+string(kv.Value))
			}
			got = append(got, row)
		}
	}
	if err := e.View(func(r store.Reader) error {
		kvs, err := r.ScanMany(prefixes)
		if err != nil {
			return err
		}
		show(kvs)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := scan(t, e, "m/", store.ScanOptions{})
	if len(got) != 5 || fmt.Sprint(got[0]) != "[p/a/1=x p/a/2=y p/ab=z]" || len(got[1]) != 0 ||
		fmt.Sprint(got[2]) != "[p/c=w]" || fmt.Sprint(got[3]) != fmt.Sprint(want) || len(got[3]) != many ||
		fmt.Sprint(got[4]) != "[p/a/1=x p/a/2=y]" {
		t.Fatalf("ScanMany = %d prefixes: %q", len(got), got)
	}
}

package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/enginetest"
	"github.com/apptokens/apptokens/store/etcd"
	"github.com/apptokens/apptokens/store/etcd/etcdtest"
)

func TestMain(m *testing.M) { os.Exit(etcdtest.SharedMain(m)) }

var prefixes atomic.Int64

func nextPrefix() string { return fmt.Sprintf("/p%d/", prefixes.Add(1)) }

// TestEngineOneMember is the conformance suite on a single member.
func TestEngineOneMember(t *testing.T) {
	enginetest.Run(t, func(t *testing.T) store.Engine { return etcdtest.SharedEngine(t, "n1") })
	enginetest.RunShared(t, func(t *testing.T, n int) []store.SharedEngine {
		eps, prefix := etcdtest.Shared(t)
		var es []store.SharedEngine
		for i := 0; i < n; i++ {
			e, err := etcd.Open(etcd.Options{Endpoints: eps, Prefix: prefix, Node: fmt.Sprintf("n%d", i)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { e.Close() })
			es = append(es, e)
		}
		return es
	})
}

// TestEngineThreeMembers is the conformance suite on three members.
func TestEngineThreeMembers(t *testing.T) {
	c := etcdtest.Start(t, 3)
	enginetest.Run(t, func(t *testing.T) store.Engine { return c.Engine(t, nextPrefix(), "n1") })
	enginetest.RunShared(t, func(t *testing.T, n int) []store.SharedEngine {
		prefix := nextPrefix()
		var es []store.SharedEngine
		for i := 0; i < n; i++ {
			es = append(es, c.Engine(t, prefix, fmt.Sprintf("n%d", i)))
		}
		return es
	})
}

func set(t *testing.T, e store.Engine, k, v string) error {
	t.Helper()
	return e.Update(func(tx store.Txn) error { return tx.Set([]byte(k), []byte(v)) })
}

func get(t *testing.T, e store.Engine, k string) string {
	t.Helper()
	var v []byte
	if err := e.View(func(r store.Reader) error {
		var err error
		v, err = r.Get([]byte(k))
		return err
	}); err != nil {
		t.Fatalf("Get %q: %v", k, err)
	}
	return string(v)
}

// watcher collects a Watch of store.ChangesKey.
type watcher struct {
	values chan string
	resets atomic.Int32
}

func watch(t *testing.T, e store.SharedEngine) *watcher {
	t.Helper()
	w := &watcher{values: make(chan string, 1000)}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := e.Watch(ctx, []byte(store.ChangesKey), func(v []byte) { w.values <- string(v) }, func() { w.resets.Add(1) }); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *watcher) expect(t *testing.T, want ...string) {
	t.Helper()
	for _, v := range want {
		select {
		case got := <-w.values:
			if got != v {
				t.Fatalf("watch delivered %q, want %q", got, v)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("watch did not deliver %q", v)
		}
	}
}

// TestQuorumLoss: one member of three down, writes go on; two down, an
// Update fails within seconds with one line naming etcd and the endpoints;
// both back, writes work and a watch resumes where it was, without a reset.
func TestQuorumLoss(t *testing.T) {
	c := etcdtest.Start(t, 3)
	prefix := nextPrefix()
	a, b := c.Engine(t, prefix, "a"), c.Engine(t, prefix, "b")
	w := watch(t, b)
	if err := set(t, a, store.ChangesKey, "1"); err != nil {
		t.Fatal(err)
	}
	w.expect(t, "1")
	// b leads meanwhile: it loses the leadership with the quorum and takes
	// it again after.
	led, lost := make(chan struct{}, 10), make(chan struct{}, 10)
	lctx, lcancel := context.WithCancel(context.Background())
	leadDone := make(chan struct{})
	go func() {
		defer close(leadDone)
		b.Lead(lctx, "sweeper", func(ctx context.Context) {
			led <- struct{}{}
			<-ctx.Done()
			lost <- struct{}{}
		})
	}()
	defer func() { lcancel(); <-leadDone }()
	select {
	case <-led:
	case <-time.After(20 * time.Second):
		t.Fatal("b never led")
	}

	c.Stop(2)
	if err := set(t, a, store.ChangesKey, "2"); err != nil {
		t.Fatalf("Update with one member of three down: %v", err)
	}
	w.expect(t, "2")
	if err := a.Health(context.Background()); err != nil {
		t.Fatalf("Health with a quorum: %v", err)
	}

	c.Stop(1)
	start := time.Now()
	err := set(t, a, store.ChangesKey, "lost")
	took := time.Since(start)
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Update without quorum: %v, want ErrUnavailable", err)
	}
	wantPrefix := "etcd at " + strings.Join(c.Endpoints(), ",") + " unavailable: "
	if msg := err.Error(); !strings.HasPrefix(msg, wantPrefix) || strings.Contains(msg, "\n") || !strings.Contains(msg, "quorum") {
		t.Fatalf("Update without quorum: %q, want one line starting %q and naming the quorum", msg, wantPrefix)
	}
	if took > 5*time.Second {
		t.Fatalf("Update without quorum took %v to fail, want a fast failure", took)
	}
	if err := a.Health(context.Background()); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Health without quorum: %v, want ErrUnavailable", err)
	}
	t.Logf("without quorum, after %v: %v", took.Round(time.Millisecond), err)
	select {
	case <-lost:
	case <-time.After(20 * time.Second):
		t.Fatal("the leader's context was not cancelled after the quorum was lost")
	}

	c.Restart(1)
	c.Restart(2)
	var werr error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if werr = set(t, a, store.ChangesKey, "3"); werr == nil {
			break
		}
	}
	if werr != nil {
		t.Fatalf("Update after quorum came back: %v", werr)
	}
	w.expect(t, "3")
	if n := w.resets.Load(); n != 0 {
		t.Fatalf("the watch was reset %d times across the outage; want it resumed", n)
	}
	select {
	case <-led:
	case <-time.After(20 * time.Second):
		t.Fatal("b did not lead again after the quorum came back")
	}
	if got := get(t, b, store.ChangesKey); got != "3" {
		t.Fatalf("after the outage: %q", got)
	}
}

// TestWatchResumesAfterMemberRestart: the member a watcher is connected to
// dies; the watch moves on to another member and misses nothing.
func TestWatchResumesAfterMemberRestart(t *testing.T) {
	c := etcdtest.Start(t, 3)
	prefix := nextPrefix()
	a := c.Engine(t, prefix, "a")
	b := c.Engine(t, prefix, "b")
	w := watch(t, b)
	for i := 0; i < 3; i++ {
		if err := set(t, a, store.ChangesKey, fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	w.expect(t, "0", "1", "2")
	for m := 0; m < 3; m++ { // whichever member b's watch is on dies once
		c.Stop(m)
		for i := 0; i < 3; i++ {
			if err := set(t, a, store.ChangesKey, fmt.Sprintf("%d-%d", m, i)); err != nil {
				t.Fatalf("with member %d down: %v", m, err)
			}
		}
		w.expect(t, fmt.Sprintf("%d-0", m), fmt.Sprintf("%d-1", m), fmt.Sprintf("%d-2", m))
		c.Restart(m)
	}
	if n := w.resets.Load(); n != 0 {
		t.Fatalf("%d resets across member restarts, want none", n)
	}
}

// TestWatchResetOnCompaction: a watch whose member was down while its
// history was compacted goes on without a reset when its key was not
// written meanwhile, and resets (then goes on from the present) when it was.
func TestWatchResetOnCompaction(t *testing.T) {
	c := etcdtest.Start(t, 3)
	prefix := nextPrefix()
	a := c.Engine(t, prefix, "a")
	b, err := etcd.Open(etcd.Options{Endpoints: c.Endpoints()[2:], Prefix: prefix, Node: "b"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	w := watch(t, b)
	if err := set(t, a, store.ChangesKey, "1"); err != nil {
		t.Fatal(err)
	}
	w.expect(t, "1")

	c.Stop(2) // b's only member
	for i := 0; i < 5; i++ {
		if err := set(t, a, fmt.Sprint("other", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	c.Compact(t)
	c.Restart(2)
	if err := set(t, a, store.ChangesKey, "2"); err != nil {
		t.Fatal(err)
	}
	w.expect(t, "2")
	if n := w.resets.Load(); n != 0 {
		t.Fatalf("%d resets though the watched key was not written during the outage", n)
	}

	c.Stop(2)
	for i := 0; i < 5; i++ {
		if err := set(t, a, store.ChangesKey, fmt.Sprint("missed", i)); err != nil {
			t.Fatal(err)
		}
	}
	c.Compact(t)
	c.Restart(2)
	for deadline := time.Now().Add(20 * time.Second); w.resets.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no reset after the watch's history was compacted")
		}
	}
	if err := set(t, a, store.ChangesKey, "after"); err != nil {
		t.Fatal(err)
	}
	w.expect(t, "after")
	if n := w.resets.Load(); n != 1 {
		t.Fatalf("%d resets, want 1", n)
	}
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct{ in, eps, prefix, err string }{
		{"etcd://h1:2379", "h1:2379", "/apptokens/", ""},
		{"etcd://h1:2379,10.0.0.2:2381/x", "h1:2379,10.0.0.2:2381", "/x/", ""},
		{"etcd://[::1]:2379/a/b/", "[::1]:2379", "/a/b/", ""},
		{"http://h1:2379", "", "", `etcd URL "http://h1:2379": want etcd://host:port[,host:port…]/prefix`},
		{"etcd:///x", "", "", `etcd URL "etcd:///x": no host:port`},
		{"etcd://h1/x", "", "", `etcd URL "etcd://h1/x": "h1" is not host:port`},
		{"etcd://h1:99999", "", "", `etcd URL "etcd://h1:99999": bad port "99999"`},
		{"etcd://h1:2379,,h2:1", "", "", `etcd URL "etcd://h1:2379,,h2:1": "" is not host:port`},
		{"etcd://h1:2379/x?y", "", "", `etcd URL "etcd://h1:2379/x?y": bad prefix "/x?y"`},
	} {
		eps, prefix, err := etcd.ParseURL(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("ParseURL(%q) = %v, want error %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || strings.Join(eps, ",") != tc.eps || prefix != tc.prefix {
			t.Errorf("ParseURL(%q) = %q, %q, %v; want %q, %q", tc.in, eps, prefix, err, tc.eps, tc.prefix)
		}
	}
}

func TestTLSConfig(t *testing.T) {
	if cfg, err := etcd.TLSConfig("", "", ""); cfg != nil || err != nil {
		t.Fatalf("no files: %v, %v; want nil, nil", cfg, err)
	}
	if _, err := etcd.TLSConfig("", "c.pem", ""); err == nil || strings.Contains(err.Error(), "\n") {
		t.Fatalf("cert without key: %v, want one line", err)
	}
	if _, err := etcd.TLSConfig("/nonexistent/ca.pem", "", ""); err == nil || strings.Contains(err.Error(), "\n") {
		t.Fatalf("missing CA file: %v, want one line", err)
	}
}

func TestString(t *testing.T) {
	e, err := etcd.Open(etcd.Options{Endpoints: []string{"127.0.0.1:1", "127.0.0.1:2"}, Prefix: "/x", Node: "n"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if got, want := e.String(), "etcd at 127.0.0.1:1,127.0.0.1:2 (prefix /x/)"; got != want {
		t.Fatalf("String = %q, want %q", got, want)
	}
}

// TestUpdateRacingReplace: a transaction that read before another node's
// Replace switched generations is run again on the new data, so its write
// is never lost into the old generation.
func TestUpdateRacingReplace(t *testing.T) {
	eps, prefix := etcdtest.Shared(t)
	var es []*etcd.Engine
	for _, node := range []string{"a", "b"} {
		e, err := etcd.Open(etcd.Options{Endpoints: eps, Prefix: prefix, Node: node})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		es = append(es, e)
	}
	a, b := es[0], es[1]
	if err := set(t, a, "old", "1"); err != nil {
		t.Fatal(err)
	}
	runs := 0
	if err := a.Update(func(tx store.Txn) error {
		runs++
		if runs == 1 {
			if err := b.Replace(func(w store.Writer) error { return w.Set([]byte("new"), []byte("1")) }); err != nil {
				return err
			}
		}
		return tx.Set([]byte("mine"), []byte("1"))
	}); err != nil {
		t.Fatal(err)
	}
	var keys []string
	if err := b.View(func(r store.Reader) error {
		it := r.Scan(nil, store.ScanOptions{KeysOnly: true})
		defer it.Close()
		for it.Next() {
			keys = append(keys, string(it.Key()))
		}
		return it.Err()
	}); err != nil {
		t.Fatal(err)
	}
	if runs != 2 || strings.Join(keys, " ") != "mine new" {
		t.Fatalf("runs %d, keys %q: want the Update run again after the Replace and its write kept", runs, keys)
	}
}

// TestUnreachable: with no member listening, Open succeeds and every call
// fails within the request timeout with one line naming etcd and the
// endpoints.
func TestUnreachable(t *testing.T) {
	eps := []string{"127.0.0.1:1", "127.0.0.1:2"} // nothing listens on these
	e, err := etcd.Open(etcd.Options{Endpoints: eps, Node: "n", RequestTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for name, call := range map[string]func() error{
		"Update": func() error { return set(t, e, "k", "v") },
		"View":   func() error { return e.View(func(store.Reader) error { return nil }) },
		"Health": func() error { return e.Health(context.Background()) },
	} {
		start := time.Now()
		err := call()
		if !errors.Is(err, store.ErrUnavailable) || strings.Contains(err.Error(), "\n") ||
			!strings.HasPrefix(err.Error(), "etcd at 127.0.0.1:1,127.0.0.1:2 unavailable: ") {
			t.Errorf("%s: %v, want one line naming etcd and its endpoints, matching ErrUnavailable", name, err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("%s took %v to fail", name, took)
		}
	}
}

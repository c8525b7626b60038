package gate

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/etcd"
	"github.com/apptokens/apptokens/store/etcd/etcdtest"
)

// healthCountingEngine is the real etcd engine, counting its health checks.
type healthCountingEngine struct {
	*etcd.Engine
	checks atomic.Int64
}

func (e *healthCountingEngine) Health(ctx context.Context) error {
	e.checks.Add(1)
	return e.Engine.Health(ctx)
}

// /healthz needs no token: a flood of it must not become a flood of quorum
// reads on etcd. The gate asks the store at most once per healthTTL, however
// many probes come.
func TestHealthzAsksTheStoreAtMostOncePerTTL(t *testing.T) {
	c := etcdtest.Start(t, 1)
	eng := &healthCountingEngine{Engine: c.Engine(t, "/healthz/", "node")}
	st, err := store.New(eng, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	g, err := New(Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(srv.Close)

	const probes = 400
	start := time.Now()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range probes / 8 {
				resp, err := http.Get(srv.URL + "/healthz")
				if err != nil {
					t.Error(err)
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(body) != "ok\n" {
					t.Errorf("/healthz: %d %q", resp.StatusCode, body)
				}
			}
		})
	}
	wg.Wait()
	most := int64(time.Since(start)/healthTTL) + 1
	if n := eng.checks.Load(); n > most {
		t.Fatalf("%d probes asked etcd %d times in %v; want at most %d (one per %v)", probes, n, time.Since(start), most, healthTTL)
	}
}

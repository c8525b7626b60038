package gate

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/apptokens/apptokens/internal/secret"
	"github.com/apptokens/apptokens/store/storetest"
)

const benchTokens = 100_000

// benchGate is a gate over benchTokens tokens, shared by the benchmarks: seeding
// takes seconds.
var benchGate struct {
	g       *Gate
	gm      *Gate // the same store, with metrics (BenchmarkGateHTTPMetrics)
	secrets []string
	authz   []string
	unknown string // the Authorization header of a well-formed unknown token
}

func setupBench(b *testing.B) {
	b.Helper()
	if benchGate.g != nil {
		return
	}
	s, err := storetest.OpenWith(storetest.Options{InMemory: true})
	if err != nil {
		b.Fatal(err)
	}
	// The store stays open for every benchmark of the run.
	benchGate.secrets = seed(b, s, benchTokens)
	benchGate.g = newGate(b, Config{Store: s})
	reg := prometheus.NewRegistry()
	benchGate.gm = newGate(b, Config{Store: s, Metrics: reg, MetricsHandler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{})})
	unknown, err := secret.Generate() // well formed, in no index
	if err != nil {
		b.Fatal(err)
	}
	benchGate.unknown = "Bearer " + unknown.Reveal()
	benchGate.authz = make([]string, len(benchGate.secrets))
	for i, sec := range benchGate.secrets {
		benchGate.authz[i] = "Bearer " + sec
	}
}

// Each parallel worker walks the tokens from its own offset, so that the map
// probes hit cold cache lines as a busy gate's do.
var benchWorker atomic.Uint32

// BenchmarkGateVerifyFloor is the floor of a verification: SHA-256 of the token
// and a lookup of the digest in a map of benchTokens, on the same data.
func BenchmarkGateVerifyFloor(b *testing.B) {
	setupBench(b)
	slots := benchGate.g.idx.Load().base
	secrets := benchGate.secrets
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(benchWorker.Add(7919))
		for pb.Next() {
			i++
			if i >= len(secrets) {
				i = 0
			}
			if _, ok := slots[secret.DigestOf(secrets[i])]; !ok {
				b.Error("token not found")
				return
			}
		}
	})
}

// BenchmarkGateVerify verifies valid tokens among benchTokens: header parsing,
// format and checksum, digest, index lookup, state, policy, block and access
// checks, with the gate's clock read, as a request does.
func BenchmarkGateVerify(b *testing.B) {
	setupBench(b)
	g := benchGate.g
	authz := benchGate.authz
	ip := netip.MustParseAddr("192.0.2.7")
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(benchWorker.Add(7919))
		for pb.Next() {
			i++
			if i >= len(authz) {
				i = 0
			}
			if v := g.verify(authz[i], 0, ip, g.now()); v.reason != reasonOK {
				b.Errorf("verify: %v", v.reason)
				return
			}
		}
	})
}

// BenchmarkGateHTTP is the whole forward-auth handler through httptest (no
// network, no disk): an allowed request, a 401 and a 403; then allowed requests
// while usage is flushed every 10 ms, which the index follows from memory.
// Floor: BenchmarkGateVerify plus the httptest request and recorder.
// BenchmarkGateHTTPMetrics beside it is the same with the gate's Prometheus
// metrics on: it must stay within 5%.
func BenchmarkGateHTTP(b *testing.B) {
	setupBench(b)
	benchGateHTTP(b, benchGate.g)
}

// BenchmarkGateHTTPMetrics is BenchmarkGateHTTP with metrics on: a counter
// and the verify-latency histogram per request.
func BenchmarkGateHTTPMetrics(b *testing.B) {
	setupBench(b)
	benchGateHTTP(b, benchGate.gm)
}

func benchGateHTTP(b *testing.B, g *Gate) {
	g.catchUp() // the other gate's flushes are on the feed
	// Start from one plain map, as the other gate did: a lookup in an index
	// with recent changes probes two maps.
	g.mu.Lock()
	if x := *g.idx.Load(); len(x.recent) > 0 {
		fold(&x)
		g.idx.Store(&x)
	}
	g.mu.Unlock()
	h := g.Handler()
	cases := []struct {
		name, path, authz string
		want              int
	}{
		{"allow", "/auth", benchGate.authz[0], http.StatusOK},
		// A well-formed unknown token: checksum, digest and a missed probe.
		{"401", "/auth", benchGate.unknown, http.StatusUnauthorized},
		// tok-0 has security-director only.
		{"403", "/auth/third-party-feeds", benchGate.authz[0], http.StatusForbidden},
	}
	serve := func(b *testing.B, path, authz string, want int) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			r := httptest.NewRequest(http.MethodGet, path, nil)
			r.Header.Set("Authorization", authz)
			for pb.Next() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != want {
					b.Errorf("status %d, want %d", w.Code, want)
					return
				}
			}
		})
	}
	before, reads := g.idx.Load(), g.storeReads.Load()
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) { serve(b, c.path, c.authz, c.want) })
	}
	// The index never needed the store: no request read from disk.
	if g.idx.Load() != before || g.storeReads.Load() != reads {
		b.Error("the index was re-read from the store during the benchmark")
	}

	b.Run("allow+flush", func(b *testing.B) {
		stop, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if err := g.Flush(); err != nil {
						b.Error(err)
					}
				}
			}
		}()
		serve(b, "/auth", benchGate.authz[1], http.StatusOK)
		close(stop)
		<-done
	})
	if err := g.Flush(); err != nil {
		b.Fatal(err)
	}
	if n := g.storeReads.Load() - reads; n != 0 {
		b.Errorf("%d store reads while usage was flushed: a flush must not make the gate read tokens", n)
	}
}

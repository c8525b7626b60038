package gate

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"syscall"
	"testing"
	"time"
)

// benchUpstream is the API behind the proxy benchmarks: a small JSON answer.
func benchUpstream(b *testing.B) *url.URL {
	b.Helper()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"ok"}`)
	}))
	b.Cleanup(api.Close)
	u, err := url.Parse(api.URL)
	if err != nil {
		b.Fatal(err)
	}
	return u
}

// serveParallel sends allowed requests for path through h in parallel, with an
// httptest recorder in front and a real loopback connection to the upstream.
// Besides ns/op (wall time, which a busy machine stretches) it reports
// cpu-ns/op: the CPU time of the process (the proxy and the upstream) per
// request, which other processes on the machine disturb far less.
func serveParallel(b *testing.B, h http.Handler, authz string) {
	b.Helper()
	b.ReportAllocs()
	cpu0 := processCPU(b)
	b.ResetTimer()
	defer func() {
		b.StopTimer()
		b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
	}()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := httptest.NewRequest(http.MethodGet, "/v1/reports", nil)
			r.Header.Set("Authorization", authz)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != http.StatusOK {
				b.Errorf("status %d: %s", w.Code, w.Body)
				return
			}
		}
	})
}

// processCPU is the user and system CPU time of this process so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkProxy is proxy mode for an allowed request among benchTokens tokens:
// the gate's check (the /auth path: verify, usage), the header rewriting, and
// the forward to an httptest upstream over loopback. Floor:
// BenchmarkProxyFloor, the same forward with no check.
func BenchmarkProxy(b *testing.B) {
	setupBench(b)
	h, err := benchGate.g.Proxy(ProxyConfig{Routes: []Route{{Prefix: "/", Upstream: benchUpstream(b)}}})
	if err != nil {
		b.Fatal(err)
	}
	serveParallel(b, h, benchGate.authz[0])
}

// BenchmarkProxyFloor is a bare httputil.ReverseProxy to the same kind of
// upstream, with the same transport and buffer pool as proxy mode, and no check.
func BenchmarkProxyFloor(b *testing.B) {
	target := benchUpstream(b)
	var bufs sync.Pool
	bufs.New = func() any { return new([32 << 10]byte) }
	h := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
		},
		Transport:  NewUpstreamTransport(),
		BufferPool: (*bufferPool)(&bufs),
	}
	serveParallel(b, h, "Bearer unchecked")
}

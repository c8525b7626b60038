package gate

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
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
func serveParallel(b *testing.B, h http.Handler, authz string) {
	b.Helper()
	b.ReportAllocs()
	b.ResetTimer()
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

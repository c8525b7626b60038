package gate

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apptokens/apptokens/store"
)

// Proxy mode (serve --upstream / --route): the gate checks each request itself
// and forwards the allowed ones to the API, one hop instead of a proxy's
// subrequest to /auth.

// flushLatency bounds how long bytes the upstream sent may wait in the
// listener's buffers before they are flushed to the client (a paced download
// of known length). Responses of unknown length and server-sent events are
// flushed at every write (ReverseProxy does so by itself). Not -1 for all: that
// starts a timer goroutine per response that sends the headers in a write of
// their own, ahead of the body.
const flushLatency = 100 * time.Millisecond

// Upstream connection limits of NewUpstreamTransport.
const (
	// UpstreamDialTimeout bounds connecting to an upstream.
	UpstreamDialTimeout = 5 * time.Second
	// UpstreamHeaderTimeout bounds the wait for an upstream's response headers
	// once the request is written (bodies then stream without a limit).
	UpstreamHeaderTimeout = 60 * time.Second
	// UpstreamIdleTimeout closes a pooled upstream connection unused this long.
	UpstreamIdleTimeout = 90 * time.Second
	// UpstreamIdlePerHost bounds the idle connections kept to each upstream: at
	// least the concurrency expected, or connections churn.
	UpstreamIdlePerHost = 256
	// UpstreamIdleTotal bounds the idle connections kept to all upstreams.
	UpstreamIdleTotal = 1024
)

// ErrBadRoute is wrapped by the errors of ParseRoute, NewRoute and Gate.Proxy
// for a route that cannot be served.
var ErrBadRoute = errors.New("bad route")

// Route is an API that proxy mode forwards allowed requests to.
type Route struct {
	// Prefix is the path the route serves: "/" serves every path; "/v1"
	// serves /v1 and /v1/..., never /v1x. The longest matching prefix wins.
	// The request's path is forwarded unchanged (not stripped), appended to
	// Upstream's path.
	Prefix string
	// Upstream is the API's base URL: http or https, a host, an optional path.
	Upstream *url.URL
	// Access is the access type a token needs for this route; "" allows any.
	Access store.Access
}

// ProxyConfig configures Gate.Proxy.
type ProxyConfig struct {
	// Routes are the APIs to forward to, at least one.
	Routes []Route
	// PassAuthorization forwards the client's Authorization header to the
	// upstream; by default it is removed, so the upstream never sees a token.
	PassAuthorization bool
	// Transport carries requests to the upstreams; nil is
	// NewUpstreamTransport(). It must speak HTTP/1.1 for WebSocket upgrades.
	Transport http.RoundTripper
}

// NewRoute checks an upstream URL and an access name (--upstream URL --access
// A) and returns the route for prefix; errors wrap ErrBadRoute.
func NewRoute(prefix, upstream, access string) (Route, error) {
	u, err := url.Parse(upstream)
	switch {
	case err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		return Route{}, fmt.Errorf("%w: upstream %q: want http://HOST[:PORT][/PATH] or https://…", ErrBadRoute, upstream)
	case u.User != nil:
		return Route{}, fmt.Errorf("%w: upstream %q: credentials in the URL are not supported", ErrBadRoute, u.Redacted())
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return Route{}, fmt.Errorf("%w: upstream %q: a query or fragment is not supported", ErrBadRoute, upstream)
	}
	if access != "" && accessBits(store.Access(access)) == 0 {
		return Route{}, fmt.Errorf("%w: unknown access type %q (want %s)", ErrBadRoute, access, accessNames())
	}
	r := Route{Prefix: prefix, Upstream: u, Access: store.Access(access)}
	if _, err := normPrefix(prefix); err != nil {
		return Route{}, err
	}
	return r, nil
}

// ParseRoute parses a --route value, PREFIX=URL[,ACCESS], e.g.
// "/feeds=http://127.0.0.1:9001,third-party-feeds". Errors wrap ErrBadRoute.
func ParseRoute(s string) (Route, error) {
	prefix, rest, ok := strings.Cut(s, "=")
	if !ok || rest == "" {
		return Route{}, fmt.Errorf("%w: %q: want PREFIX=URL[,ACCESS], e.g. /v1=http://127.0.0.1:9000,security-director", ErrBadRoute, s)
	}
	upstream, access := rest, ""
	if i := strings.LastIndexByte(rest, ','); i >= 0 {
		upstream, access = rest[:i], rest[i+1:]
		if access == "" {
			return Route{}, fmt.Errorf("%w: %q: empty access type after the comma", ErrBadRoute, s)
		}
	}
	return NewRoute(prefix, upstream, access)
}

func accessNames() string {
	all := store.AllAccess()
	names := make([]string, len(all))
	for i, a := range all {
		names[i] = string(a)
	}
	return strings.Join(names, " or ")
}

// normPrefix checks a route prefix and drops a trailing slash ("/v1/" is "/v1").
func normPrefix(p string) (string, error) {
	if p != "/" {
		p = strings.TrimSuffix(p, "/")
	}
	if !strings.HasPrefix(p, "/") || !cleanPath(p) || strings.ContainsAny(p, "?#") {
		return "", fmt.Errorf("%w: prefix %q: want a clean absolute path such as / or /v1", ErrBadRoute, p)
	}
	if isGatePath(p) || p != "/" && isGatePath(p+"/") {
		return "", fmt.Errorf("%w: prefix %q: the gate answers %s itself (/auth, /auth/…, /healthz, /metrics, /revoke)", ErrBadRoute, p, p)
	}
	return p, nil
}

// isGatePath reports whether the gate answers path itself on the listener it
// shares with proxy mode: its forward-auth endpoints and the other paths the
// contract gives it. They are never forwarded.
func isGatePath(path string) bool {
	switch path {
	case "/healthz", "/metrics", "/revoke":
		return true
	}
	_, _, ok := route(path)
	return ok
}

// cleanPath reports whether path has no empty, "." or ".." segment (a trailing
// slash is fine). Such a path could name another route's path once the
// upstream normalises it ("/public/../admin", "//admin"), so it is refused.
// Segments are taken as upstreams may take them: a backslash also ends one
// (IIS, ASP.NET and others read "\" as "/"), and what follows a ";" in a
// segment is its parameters (servlet containers resolve "/public/..;/admin"
// to "/admin").
func cleanPath(path string) bool {
	if path == "" || path[0] != '/' {
		return false
	}
	for seg := path[1:]; ; {
		i := strings.IndexAny(seg, `/\`)
		s := seg
		if i >= 0 {
			s = seg[:i]
		}
		if j := strings.IndexByte(s, ';'); j >= 0 {
			s = s[:j]
		}
		if s == "." || s == ".." || s == "" && i >= 0 {
			return false
		}
		if i < 0 {
			return true
		}
		seg = seg[i+1:]
	}
}

// NewUpstreamTransport is the transport of proxy mode: HTTP/1.1 (so that
// upgrades pass), no environment proxy, no compression of its own, a dial
// timeout, a response-header timeout and a bounded idle pool (see the
// Upstream* constants).
func NewUpstreamTransport() *http.Transport {
	d := &net.Dialer{Timeout: UpstreamDialTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		DialContext:           d.DialContext,
		MaxIdleConns:          UpstreamIdleTotal,
		MaxIdleConnsPerHost:   UpstreamIdlePerHost,
		IdleConnTimeout:       UpstreamIdleTimeout,
		ResponseHeaderTimeout: UpstreamHeaderTimeout,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		// Bodies pass as the upstream sent them: no gzip asked for on the
		// client's behalf, nothing decompressed on the way.
		DisableCompression: true,
		// No HTTP/2 to the upstream: a WebSocket upgrade needs HTTP/1.1.
		TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{},
	}
}

// NewProxyServer is NewServer for proxy mode: the same header limits, but no
// whole-request read or write timeout, as proxied bodies and WebSockets stream
// for as long as they last. The gate's own endpoints keep NewServer's read
// limit (the handler sets it per request).
func NewProxyServer(addr string, h http.Handler) *http.Server {
	srv := NewServer(addr, h)
	srv.ReadTimeout, srv.WriteTimeout = 0, 0
	return srv
}

// Proxy returns the handler of proxy mode. The gate's own paths (/auth,
// /auth/…, /healthz, and /metrics and /revoke, which the contract reserves)
// are answered as Handler answers them. Every other path is matched against
// the routes (longest prefix first; a path with an empty, "." or ".." segment
// or no route is 404 not_found) and checked exactly as /auth/<access> checks
// it: the same reasons, statuses, bodies and usage; a refused request never
// reaches the upstream. An allowed one is forwarded with
// httputil.ReverseProxy: bodies stream both ways, upgrades (WebSocket) pass,
// hop-by-hop headers are dropped, and
//   - every client spelling of the headers the gate sets is removed first
//     (X-Token-*, X-Forwarded-For/-Host/-Proto, X-Real-IP, Forwarded; case
//     ignored, "_" taken as "-");
//   - X-Token-Name and X-Token-Access name the token;
//   - X-Forwarded-For is the client IP the gate counted, then the peer when it
//     is a trusted proxy; X-Real-IP is the client IP; X-Forwarded-Host and
//     -Proto come from a trusted proxy, else from this request;
//   - Authorization is removed unless PassAuthorization;
//   - the response carries X-Apptokens-Reason: ok.
//
// An upstream that cannot be reached or fails answers 502 with X-Apptokens-Reason
// upstream_unavailable and {"error":"upstream_unavailable"}. Serve it with
// NewProxyServer. Errors wrap ErrBadRoute.
func (g *Gate) Proxy(cfg ProxyConfig) (http.Handler, error) {
	tr := cfg.Transport
	if tr == nil {
		tr = NewUpstreamTransport()
	}
	routes, err := checkRoutes(cfg.Routes)
	if err != nil {
		return nil, err
	}
	p := &proxy{g: g, gate: g.Handler(), passAuthz: cfg.PassAuthorization, routes: routes}
	p.bufs.New = func() any { return new([32 << 10]byte) }
	for _, pr := range p.routes {
		pr.rp = &httputil.ReverseProxy{
			Rewrite:        func(out *httputil.ProxyRequest) { p.rewrite(pr, out) },
			Transport:      tr,
			BufferPool:     (*bufferPool)(&p.bufs),
			ModifyResponse: p.modifyResponse,
			ErrorHandler:   func(w http.ResponseWriter, r *http.Request, err error) { p.upstreamFailed(pr, w, r, err) },
			FlushInterval:  flushLatency,
		}
	}
	return p, nil
}

// CheckRoutes reports the first reason why Proxy would refuse routes, so that
// a caller can say it before it opens anything. Errors wrap ErrBadRoute.
func CheckRoutes(routes []Route) error {
	_, err := checkRoutes(routes)
	return err
}

// checkRoutes checks routes and returns them longest prefix first.
func checkRoutes(routes []Route) ([]*proxyRoute, error) {
	if len(routes) == 0 {
		return nil, fmt.Errorf("%w: no route", ErrBadRoute)
	}
	var out []*proxyRoute
	seen := map[string]bool{}
	for _, r := range routes {
		prefix, err := normPrefix(r.Prefix)
		if err != nil {
			return nil, err
		}
		if seen[prefix] {
			return nil, fmt.Errorf("%w: two routes for %s", ErrBadRoute, prefix)
		}
		seen[prefix] = true
		if r.Upstream == nil || r.Upstream.Host == "" {
			return nil, fmt.Errorf("%w: route %s has no upstream", ErrBadRoute, prefix)
		}
		need := accessBits(r.Access)
		if r.Access != "" && need == 0 {
			return nil, fmt.Errorf("%w: route %s: unknown access type %q", ErrBadRoute, prefix, r.Access)
		}
		out = append(out, &proxyRoute{prefix: prefix, need: need, target: r.Upstream, host: r.Upstream.Host})
	}
	slices.SortFunc(out, func(a, b *proxyRoute) int { return len(b.prefix) - len(a.prefix) })
	return out, nil
}

type proxy struct {
	g         *Gate
	gate      http.Handler
	routes    []*proxyRoute // longest prefix first
	passAuthz bool
	bufs      sync.Pool // of *[32 << 10]byte
	// Upstream failures are logged at most once per upstreamWarnEvery, with
	// how many there were since.
	failures atomic.Uint64
	lastWarn atomic.Int64 // unix nanoseconds
}

type proxyRoute struct {
	prefix string
	need   accessSet
	target *url.URL
	host   string
	rp     *httputil.ReverseProxy
}

// forwardKey carries a request's forward state from ServeHTTP to rewrite.
type forwardKey struct{}

// forward is what rewrite sets on an allowed request.
type forward struct {
	name, access string
	client       netip.Addr
	peer         netip.Addr // valid only when the peer is a trusted proxy
}

func (p *proxy) match(path string) *proxyRoute {
	for _, r := range p.routes {
		if r.prefix == "/" || strings.HasPrefix(path, r.prefix) && (len(path) == len(r.prefix) || path[len(r.prefix)] == '/') {
			return r
		}
	}
	return nil
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if isGatePath(path) {
		// NewServer's read limit for the gate's endpoints, which read no
		// body. The server sets the next request's own read deadline; a write
		// deadline would outlive this request on the connection (the server
		// resets none without a WriteTimeout), and these answers are small.
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(readTimeout))
		p.gate.ServeHTTP(w, r)
		return
	}
	rt := p.match(path)
	if rt == nil || !cleanPath(path) {
		p.g.answer(w, &verdict{reason: reasonNotFound}, 0, "")
		return
	}
	v := p.g.check(r, rt.need)
	if v.reason != reasonOK {
		p.g.answer(w, &v, rt.need, "")
		return
	}
	fw := &forward{name: v.x.name(&v.e), access: accessHeader[v.e.access]}
	fw.client = p.g.proxies.clientIP(r)
	if peer := parseAddr(r.RemoteAddr); peer.IsValid() && peer != fw.client && p.g.proxies.trusted(peer) {
		fw.peer = peer
	}
	rt.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), forwardKey{}, fw)))
}

// forwardedByGate are the request headers the gate sets on a forwarded request:
// a client's own, in any spelling, never reach the upstream.
var forwardedByGate = [...]string{
	"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip", "Forwarded",
}

// gateSetsHeader reports whether k names a header the gate sets on a forwarded
// request, under any spelling a backend may fold into it: the identity headers
// (isIdentityHeader) and forwardedByGate, compared by sameHeaderByte.
func gateSetsHeader(k string) bool {
	if isIdentityHeader(k) {
		return true
	}
	for _, h := range forwardedByGate {
		if sameHeaderName(k, h) {
			return true
		}
	}
	return false
}

// sameHeaderName reports whether a and b are one header name to a backend
// that folds them as sameHeaderByte does.
func sameHeaderName(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if sameHeaderByte(a[i]) != sameHeaderByte(b[i]) {
			return false
		}
	}
	return true
}

// rewrite builds the upstream request of an allowed one (see Proxy).
func (p *proxy) rewrite(rt *proxyRoute, pr *httputil.ProxyRequest) {
	fw, _ := pr.In.Context().Value(forwardKey{}).(*forward)
	pr.SetURL(rt.target)
	h := pr.Out.Header
	for k := range h {
		if gateSetsHeader(k) {
			delete(h, k)
		}
	}
	if !p.passAuthz {
		delete(h, "Authorization")
	}
	if fw == nil {
		return // not from ServeHTTP: forward nothing that names a token
	}
	in := pr.In.Header
	client := fw.client.String()
	xff, host, proto := client, pr.In.Host, "http"
	if pr.In.TLS != nil {
		proto = "https"
	}
	if fw.peer.IsValid() {
		// The request came through a trusted proxy: the upstream learns of it,
		// and of the host and scheme the client asked it for.
		xff = client + ", " + fw.peer.String()
		if v := in.Get("X-Forwarded-Host"); v != "" {
			host = v
		}
		if v := in.Get("X-Forwarded-Proto"); v == "http" || v == "https" {
			proto = v
		}
	}
	vals := &[6]string{fw.name, fw.access, xff, client, host, proto}
	h[headerName] = vals[0:1:1]
	h[headerAccess] = vals[1:2:2]
	h["X-Forwarded-For"] = vals[2:3:3]
	h["X-Real-Ip"] = vals[3:4:4]
	h["X-Forwarded-Host"] = vals[4:5:5]
	h["X-Forwarded-Proto"] = vals[5:6:6]
}

func (p *proxy) modifyResponse(res *http.Response) error {
	res.Header[headerReason] = []string{reasonNames[reasonOK]}
	return nil
}

// upstreamWarnEvery rate-limits the log of upstream failures.
const upstreamWarnEvery = 5 * time.Second

// upstreamFailed answers 502 upstream_unavailable and logs the cause (never the
// request's URL, which a client may have put a token into).
func (p *proxy) upstreamFailed(rt *proxyRoute, w http.ResponseWriter, r *http.Request, err error) {
	p.g.answer(w, &verdict{reason: reasonUpstreamUnavailable}, 0, "")
	if r.Context().Err() != nil {
		return // the client went away
	}
	p.failures.Add(1)
	now := time.Now().UnixNano()
	last := p.lastWarn.Load()
	if now-last < int64(upstreamWarnEvery) || !p.lastWarn.CompareAndSwap(last, now) {
		return
	}
	n := p.failures.Swap(0)
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	p.g.log.LogAttrs(r.Context(), slog.LevelWarn, "gate: upstream unavailable",
		slog.String("route", rt.prefix), slog.String("upstream", rt.host),
		slog.Uint64("failed_requests", n), slog.String("err", err.Error()))
}

// bufferPool lends ReverseProxy its copy buffers.
type bufferPool sync.Pool

func (b *bufferPool) Get() []byte  { return (*sync.Pool)(b).Get().(*[32 << 10]byte)[:] }
func (b *bufferPool) Put(p []byte) { (*sync.Pool)(b).Put((*[32 << 10]byte)(p)) }

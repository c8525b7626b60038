package gate

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/apptokens/apptokens/store"
)

// Request limits of NewServer. A forward-auth request is headers only; nginx
// passes the client's headers on, so allow what its default buffers allow.
const (
	maxHeaderBytes    = 32 << 10
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 10 * time.Second
	idleTimeout       = 2 * time.Minute
)

// NewServer returns an HTTP server for h with limits on header size and on slow
// clients. The gate reads no request body but a POST /revoke report's (at most 4 KiB).
func NewServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		// "OPTIONS *" reaches the handler (and so the contract's 404
		// not_found) instead of net/http's own bare 200.
		DisableGeneralOptionsHandler: true,
	}
}

// Answer headers.
const (
	headerReason = "X-Apptokens-Reason"
	headerName   = "X-Token-Name"
	headerAccess = "X-Token-Access"
	headerWWW    = "Www-Authenticate" // canonical form of WWW-Authenticate
)

// identityPrefix starts the name of every request header the gate sets for the
// service behind it (X-Token-Name, X-Token-Access), in the form sameHeaderByte
// folds names to. A client must never be able to send one under any spelling.
const identityPrefix = "x-token-"

// sameHeaderByte folds one byte of a header name to the form names are compared
// in: case ignored and "_" taken as "-", as CGI, WSGI, PHP and many frameworks
// fold them (X_Token_Name, x-token-name and X-TOKEN_NAME are all HTTP_X_TOKEN_NAME
// to a CGI program).
func sameHeaderByte(c byte) byte {
	switch {
	case c == '_':
		return '-'
	case 'A' <= c && c <= 'Z':
		return c + ('a' - 'A')
	}
	return c
}

// isIdentityHeader reports whether a request header name is one the gate sets,
// under any spelling that a backend may fold into it (see sameHeaderByte).
func isIdentityHeader(name string) bool {
	if len(name) < len(identityPrefix) {
		return false
	}
	for i := 0; i < len(identityPrefix); i++ {
		if sameHeaderByte(name[i]) != identityPrefix[i] {
			return false
		}
	}
	return true
}

const (
	challengeMissing      = `Bearer realm="apptokens"`
	challengeInvalid      = `Bearer realm="apptokens", error="invalid_token"`
	challengeInsufficient = `Bearer realm="apptokens", error="insufficient_scope"`
)

var (
	denyBodies [len(reasonNames)][]byte
	// scopeChallenges is the insufficient_scope challenge for each single access.
	scopeChallenges [len(accessHeader)]string
)

func init() {
	for r, name := range reasonNames {
		denyBodies[r] = []byte(`{"error":"` + name + `"}` + "\n")
	}
	for a, names := range accessHeader {
		scopeChallenges[a] = challengeInsufficient + `, scope="` + names + `"`
	}
}

// accessNone is what a path under /auth/ that names no access type needs: no
// token has it, so the request is refused with insufficient_access once the
// token itself passes. A typo in a proxy's configuration then lets no token
// through, and the proxy still gets one of the statuses it relays.
const accessNone accessSet = 1 << 7

// Handler serves the forward-auth endpoints: /auth and /auth/ (any access),
// /auth/security-director[/...] and /auth/third-party-feeds[/...] (that access;
// the path may go on, as Envoy appends the original path), and /healthz. Any
// method is accepted; bodies are ignored. POST /revoke takes reports of leaked
// tokens (see revoke). Any other path under /auth/ names an
// access type that does not exist: it answers 401 or 403 like a denial, never
// 200. Paths outside /auth and /healthz (/authx, /AUTH, /) are 404 in the form
// of the denials: X-Apptokens-Reason: not_found and {"error":"not_found"}.
func (g *Gate) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			g.health(w)
			return
		}
		if r.URL.Path == "/revoke" && r.Method == http.MethodPost {
			g.revoke(w, r)
			return
		}
		if r.URL.Path == "/metrics" && g.metricsHandler != nil && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			g.metricsHandler.ServeHTTP(w, r)
			return
		}
		need, segment, ok := route(r.URL.Path)
		if !ok {
			g.answer(w, &verdict{reason: reasonNotFound}, 0, "")
			return
		}
		v := g.check(r, need)
		g.answer(w, &v, need, segment)
	})
}

// route maps a gate path to the access it needs (0: any). For a path under
// /auth/ that names no access type, need is accessNone and segment is the
// name it gave.
func route(path string) (need accessSet, segment string, ok bool) {
	rest, ok := strings.CutPrefix(path, "/auth")
	if !ok || rest != "" && rest[0] != '/' {
		return 0, "", false // not /auth, or /authx
	}
	if rest == "" || rest == "/" {
		return 0, "", true
	}
	segment = rest[1:]
	if i := strings.IndexByte(segment, '/'); i >= 0 {
		segment = segment[:i]
	}
	if a := accessBits(store.Access(segment)); a != 0 {
		return a, segment, true
	}
	return accessNone, segment, true
}

// scopeToken reports whether an unknown path segment may be named in a
// challenge's scope: short, and nothing that needs quoting or escaping.
func scopeToken(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// check verifies a request and counts it in the usage of the token it named.
// More than one Authorization header is malformed_token: a proxy may check one
// credential and the gate another, so neither is believed.
//
// A request without a client IP (a peer that is not a TCP socket, such as a
// unix socket listener in front of the middleware) is verified as any other,
// but not counted: it has no address to show in usage or to block, and its
// uses do not restart the token's inactivity clock.
func (g *Gate) check(r *http.Request, need accessSet) verdict {
	now := g.now()
	ip := g.proxies.clientIP(r)
	var v verdict
	if authz := r.Header["Authorization"]; len(authz) > 1 {
		v.reason = reasonMalformedToken
	} else if m := g.metrics; m != nil && g.clock == nil {
		// A clock of the caller's (tests): time every verification on the
		// monotonic clock.
		start := m.since()
		v = g.verify(r.Header.Get("Authorization"), need, ip, now)
		m.verify.Observe((m.since() - start).Seconds())
	} else {
		v = g.verify(r.Header.Get("Authorization"), need, ip, now)
		if m != nil && sampleVerify(now) {
			// The wall clock is monotonic time plus an offset: now is the start.
			m.verify.Observe(float64(max(g.clock.now()-now, 0)) / 1e9)
		}
	}
	g.metrics.count(v.reason, pathOf(need))
	if v.identified() && ip.IsValid() {
		// Keep the time of an allowed use for verify when the index's clock
		// of the token is old: it will not know of this use until the flush.
		keepUse := v.x.inactiveAfter > 0 && now-v.e.since > v.x.inactiveAfter/2
		g.usage.add(v.e.slot, v.x.id(&v.e), ip, now, v.reason == reasonOK, keepUse)
	}
	if g.log.Enabled(r.Context(), slog.LevelDebug) {
		g.logVerdict(r.Context(), &v, ip)
	}
	return v
}

func (g *Gate) logVerdict(ctx context.Context, v *verdict, ip netip.Addr) {
	peer := "none" // not a TCP peer
	if ip.IsValid() {
		peer = ip.String()
	}
	attrs := []slog.Attr{slog.String("reason", v.reason.String()), slog.String("ip", peer)}
	if v.identified() {
		attrs = append(attrs, slog.String("token", v.x.name(&v.e)))
	}
	g.log.LogAttrs(ctx, slog.LevelDebug, "gate: request", attrs...)
}

// answer writes the gate's answer: 200 with the token's name and access, or a
// 401/403 denial with its RFC 6750 challenge and a JSON body. The token itself
// is never echoed. need and segment are route's.
//
// Every header value is a fresh slice of this answer's own array, with
// capacity 1: a wrapper of w may write into a value (h[k][0] = ...) or append
// to one, and neither may reach another answer. One allocation serves them all.
func (g *Gate) answer(w http.ResponseWriter, v *verdict, need accessSet, segment string) {
	switch v.reason {
	case reasonNotFound, reasonUpstreamUnavailable:
		// Answers that no check counted (see Gate.check).
		g.metrics.count(v.reason, pathOther)
	}
	h := w.Header()
	vals := new([4]string)
	vals[0], vals[1] = reasonNames[v.reason], "no-store"
	h[headerReason] = vals[0:1:1]
	h["Cache-Control"] = vals[1:2:2]
	code := http.StatusUnauthorized
	switch v.reason {
	case reasonOK:
		vals[2], vals[3] = v.x.name(&v.e), accessHeader[v.e.access]
		h[headerName] = vals[2:3:3]
		h[headerAccess] = vals[3:4:4]
		w.WriteHeader(http.StatusOK)
		return
	case reasonMissingToken:
		vals[2] = challengeMissing
	case reasonMalformedToken, reasonUnknownToken, reasonInactiveToken, reasonExpiredToken, reasonRotatedToken:
		vals[2] = challengeInvalid
	case reasonIPBlocked, reasonIPNotAllowed, reasonRateLimited:
		code = http.StatusForbidden
	case reasonNotFound:
		code = http.StatusNotFound
	case reasonUpstreamUnavailable:
		code = http.StatusBadGateway
	case reasonInsufficientAccess:
		code = http.StatusForbidden
		switch {
		case need != accessNone:
			vals[2] = scopeChallenges[need]
		case scopeToken(segment):
			vals[2] = challengeInsufficient + `, scope="` + segment + `"`
		default:
			vals[2] = challengeInsufficient
		}
	}
	if vals[2] != "" {
		h[headerWWW] = vals[2:3:3]
	}
	vals[3] = "application/json"
	h["Content-Type"] = vals[3:4:4]
	w.WriteHeader(code)
	_, _ = w.Write(denyBodies[v.reason])
}

// Middleware checks each request's bearer token before next, for services that
// embed the gate: access "" allows any access type, otherwise the token must
// grant that one. Denied requests (two Authorization headers among them) get
// the gate's 401/403 answer and never reach next. Allowed ones reach next with
// the X-Token-Name and X-Token-Access request headers set by the gate: incoming
// X-Token-* headers are deleted first, on every path and under every spelling
// a backend may fold into one (case ignored, "_" taken as "-": X_Token_Name
// too), so a client cannot pose as a token. It panics on an unknown access
// type, as that is a programming error that would otherwise open the service.
func (g *Gate) Middleware(access store.Access) func(http.Handler) http.Handler {
	need := accessBits(access)
	if access != "" && need == 0 {
		panic("gate: Middleware: unknown access type " + string(access))
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for k := range r.Header {
				if isIdentityHeader(k) {
					delete(r.Header, k)
				}
			}
			v := g.check(r, need)
			if v.reason != reasonOK {
				g.answer(w, &v, need, "")
				return
			}
			// Fresh values of one array, as in answer.
			vals := &[3]string{v.x.name(&v.e), accessHeader[v.e.access], reasonNames[reasonOK]}
			r.Header[headerName] = vals[0:1:1]
			r.Header[headerAccess] = vals[1:2:2]
			w.Header()[headerReason] = vals[2:3:3]
			next.ServeHTTP(w, r)
		})
	}
}

// health answers /healthz: 200 "ok", or 503 "degraded: <cause>" while the
// store refuses changes (a full disk, a shared engine without quorum: its
// Health, at most healthTTL old); verification goes on meanwhile.
func (g *Gate) health(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	if err := g.storeHealth(); err != nil {
		h[headerReason] = []string{"degraded"}
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "degraded: "+store.Printable(err.Error())+"\n")
		return
	}
	h[headerReason] = []string{reasonNames[reasonOK]}
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "ok\n")
}

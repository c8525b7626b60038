package gate

import (
	"context"
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
// clients. The gate never reads request bodies.
func NewServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
	}
}

// Answer headers. The values are shared, never modified slices: net/http only
// reads them, and Header.Add on a full slice copies it.
const (
	headerReason = "X-Apptokens-Reason"
	headerName   = "X-Token-Name"
	headerAccess = "X-Token-Access"
	headerWWW    = "Www-Authenticate" // canonical form of WWW-Authenticate
	tokenHeaders = "X-Token-"         // prefix a client must never be able to send
)

var (
	reasonValues [len(reasonNames)][]string
	denyBodies   [len(reasonNames)][]byte
	accessValues [len(accessHeader)][]string
	// scopeChallenges is the insufficient_scope challenge for each single access.
	scopeChallenges [len(accessHeader)][]string

	challengeMissing = []string{`Bearer realm="apptokens"`}
	challengeInvalid = []string{`Bearer realm="apptokens", error="invalid_token"`}
	contentTypeJSON  = []string{"application/json"}
	noStore          = []string{"no-store"}
)

func init() {
	for r, name := range reasonNames {
		reasonValues[r] = []string{name}
		denyBodies[r] = []byte(`{"error":"` + name + `"}` + "\n")
	}
	for a, names := range accessHeader {
		accessValues[a] = []string{names}
		scopeChallenges[a] = []string{`Bearer realm="apptokens", error="insufficient_scope", scope="` + names + `"`}
	}
}

// Handler serves the forward-auth endpoints: /auth (any access),
// /auth/security-director[/...] and /auth/third-party-feeds[/...] (that access;
// the path may go on, as Envoy appends the original path), and /healthz. Any
// method is accepted; bodies are ignored. Other paths are 404.
func (g *Gate) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			w.Header()[headerReason] = reasonValues[reasonOK]
			w.WriteHeader(http.StatusOK)
			return
		}
		need, ok := route(r.URL.Path)
		if !ok {
			http.NotFound(w, r)
			return
		}
		v := g.check(r, need)
		g.answer(w, &v, need, false)
	})
}

// route maps a gate path to the access it needs (0: any).
func route(path string) (accessSet, bool) {
	rest, ok := strings.CutPrefix(path, "/auth")
	if !ok {
		return 0, false
	}
	if rest == "" {
		return 0, true
	}
	for _, a := range store.AllAccess {
		if tail, ok := strings.CutPrefix(rest, "/"+string(a)); ok && (tail == "" || tail[0] == '/') {
			return accessBits(a), true
		}
	}
	return 0, false
}

// check verifies a request and counts it in the usage of the token it named.
func (g *Gate) check(r *http.Request, need accessSet) verdict {
	now := g.now()
	ip := g.proxies.clientIP(r)
	v := g.verify(r.Header.Get("Authorization"), need, ip, now)
	if v.identified() {
		g.usage.add(v.e.slot, v.x.id(&v.e), ip, now, v.reason == reasonOK)
	}
	if g.log.Enabled(r.Context(), slog.LevelDebug) {
		g.logVerdict(r.Context(), &v, ip)
	}
	return v
}

func (g *Gate) logVerdict(ctx context.Context, v *verdict, ip netip.Addr) {
	attrs := []slog.Attr{slog.String("reason", v.reason.String()), slog.String("ip", ipString(ip))}
	if v.identified() {
		attrs = append(attrs, slog.String("token", v.x.name(&v.e)))
	}
	g.log.LogAttrs(ctx, slog.LevelDebug, "gate: request", attrs...)
}

// answer writes the gate's answer: 200 with the token's name and access, or a
// 401/403 denial with its RFC 6750 challenge and a JSON body. The token itself
// is never echoed. With fresh, header values are new slices: the middleware's
// caller owns that header map, and might write into a value.
func (g *Gate) answer(w http.ResponseWriter, v *verdict, need accessSet, fresh bool) {
	h := w.Header()
	set := func(key string, val []string) {
		if fresh {
			val = []string{val[0]}
		}
		h[key] = val
	}
	set(headerReason, reasonValues[v.reason])
	set("Cache-Control", noStore)
	code := http.StatusUnauthorized
	switch v.reason {
	case reasonOK:
		h[headerName] = []string{v.x.name(&v.e)}
		set(headerAccess, accessValues[v.e.access])
		w.WriteHeader(http.StatusOK)
		return
	case reasonMissingToken:
		set(headerWWW, challengeMissing)
	case reasonMalformedToken, reasonUnknownToken, reasonInactiveToken:
		set(headerWWW, challengeInvalid)
	case reasonIPBlocked:
		code = http.StatusForbidden
	case reasonInsufficientAccess:
		code = http.StatusForbidden
		set(headerWWW, scopeChallenges[need])
	}
	set("Content-Type", contentTypeJSON)
	w.WriteHeader(code)
	_, _ = w.Write(denyBodies[v.reason])
}

// Middleware checks each request's bearer token before next, for services that
// embed the gate: access "" allows any access type, otherwise the token must
// grant that one. Denied requests get the gate's 401/403 answer and never reach
// next. Allowed ones reach next with the X-Token-Name and X-Token-Access request
// headers set by the gate: incoming X-Token-* headers are deleted first, on every
// path, so a client cannot pose as a token. It panics on an unknown access type,
// as that is a programming error that would otherwise open the service.
func (g *Gate) Middleware(access store.Access) func(http.Handler) http.Handler {
	need := accessBits(access)
	if access != "" && need == 0 {
		panic("gate: Middleware: unknown access type " + string(access))
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for k := range r.Header {
				if len(k) >= len(tokenHeaders) && strings.EqualFold(k[:len(tokenHeaders)], tokenHeaders) {
					delete(r.Header, k)
				}
			}
			v := g.check(r, need)
			if v.reason != reasonOK {
				g.answer(w, &v, need, true)
				return
			}
			r.Header[headerName] = []string{v.x.name(&v.e)}
			r.Header[headerAccess] = []string{accessHeader[v.e.access]}
			w.Header()[headerReason] = []string{reasonNames[reasonOK]}
			next.ServeHTTP(w, r)
		})
	}
}

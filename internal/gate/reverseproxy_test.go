package gate

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apptokens/apptokens/internal/secret"
	"github.com/apptokens/apptokens/store"
)

// modeRig is proxy mode over real HTTP: a store with tokens, a gate that trusts
// 127.0.0.1 as a proxy, an upstream that records what reached it, and the
// proxy-mode listener. Clients connect from clientIP (not trusted) unless they
// use viaProxy, which connects from 127.0.0.1.
type modeRig struct {
	store    *store.Store
	gate     *Gate
	base     string // http://addr of the proxy-mode listener
	tokens   map[string]string
	client   *http.Client // from clientIP
	viaProxy *http.Client // from 127.0.0.1, a trusted proxy
	logs     *syncBuffer

	mu   sync.Mutex
	seen []*http.Request // requests that reached the upstream
}

func (rig *modeRig) reached() []*http.Request {
	rig.mu.Lock()
	defer rig.mu.Unlock()
	return slices.Clone(rig.seen)
}

// newModeRig starts proxy mode with cfg's routes; a route whose Upstream is
// nil gets the rig's recording upstream (which runs handler, or answers a
// small JSON body).
func newModeRig(t *testing.T, handler http.HandlerFunc, cfg ProxyConfig) *modeRig {
	t.Helper()
	s := openStore(t, nil)
	rig := &modeRig{store: s, tokens: map[string]string{}, logs: &syncBuffer{}}
	rig.tokens["api-client"] = create(t, s, "api-client", store.AccessSecurityDirector)
	rig.tokens["feeds-only"] = create(t, s, "feeds-only", store.AccessThirdPartyFeeds)
	rig.tokens["both"] = create(t, s, "both", store.AccessSecurityDirector, store.AccessThirdPartyFeeds)
	rig.tokens["switched-off"] = create(t, s, "switched-off", store.AccessSecurityDirector)
	rig.tokens["blocked-client"] = create(t, s, "blocked-client", store.AccessSecurityDirector)
	if _, err := s.SetActive(admin, []string{"switched-off"}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetBlocked(admin, "blocked-client", []string{clientIP}, true); err != nil {
		t.Fatal(err)
	}

	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rig.mu.Lock()
		rig.seen = append(rig.seen, r)
		rig.mu.Unlock()
		if handler != nil {
			handler(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"path":%q}`, r.URL.RequestURI())
	}))
	t.Cleanup(api.Close)
	apiURL, err := url.Parse(api.URL)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Routes) == 0 {
		cfg.Routes = []Route{{Prefix: "/"}}
	}
	cfg.Routes = slices.Clone(cfg.Routes)
	for i := range cfg.Routes {
		if cfg.Routes[i].Upstream == nil {
			cfg.Routes[i].Upstream = apiURL
		}
	}

	logger := slog.New(slog.NewTextHandler(rig.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rig.gate = newGate(t, Config{Store: s, TrustedProxies: []netip.Prefix{mustPrefix("127.0.0.1/32")}, Logger: logger})
	run(t, rig.gate)
	h, err := rig.gate.Proxy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewProxyServer(ln.Addr().String(), h)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	rig.base = "http://" + ln.Addr().String()
	rig.client = clientFrom(clientIP)
	rig.viaProxy = clientFrom("127.0.0.1")
	return rig
}

func clientFrom(ip string) *http.Client {
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}, Timeout: 20 * time.Second}
}

// do sends a request with headers given as name, value pairs; an "Authorization"
// pair may repeat.
func do(t *testing.T, c *http.Client, method, url string, body io.Reader, hdr ...string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header[hdr[i]] = append(req.Header[hdr[i]], hdr[i+1]) // the spelling as given
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// TestProxyModeForwardsAllowed: an allowed request reaches the upstream with
// the gate's token headers and the client's address, without the client's
// Authorization and without any header the client wrote under a name the gate
// sets, in any spelling.
func TestProxyModeForwardsAllowed(t *testing.T) {
	rig := newModeRig(t, nil, ProxyConfig{})
	tok := rig.tokens["api-client"]
	a := do(t, rig.client, http.MethodPost, rig.base+"/v1/reports?day=2026-03-01", strings.NewReader("payload"),
		"Authorization", "Bearer "+tok,
		// A client posing as another token, with more access, from elsewhere.
		"X_Token_Name", "root", "x-token-name", "root", "X-TOKEN-ACCESS", "third-party-feeds", "X_token_access", "third-party-feeds",
		"X-Token-Admin", "yes", "X_Forwarded_For", "198.51.100.66", "X-Forwarded-For", "198.51.100.66",
		"X-Real-IP", "198.51.100.66", "X_Real_Ip", "198.51.100.66", "Forwarded", "for=198.51.100.66",
		"X-Forwarded-Host", "evil.example", "X-Forwarded-Proto", "https", "X-Api-Key", "kept")
	if a.status != http.StatusOK || a.body != `{"path":"/v1/reports?day=2026-03-01"}` {
		t.Fatalf("got %d %q, want the upstream's answer", a.status, a.body)
	}
	if got := a.header.Get("X-Apptokens-Reason"); got != "ok" {
		t.Errorf("X-Apptokens-Reason %q, want ok", got)
	}
	seen := rig.reached()
	if len(seen) != 1 {
		t.Fatalf("%d requests reached the upstream, want 1", len(seen))
	}
	r := seen[0]
	want := map[string]string{
		"X-Token-Name":      "api-client",
		"X-Token-Access":    "security-director",
		"X-Forwarded-For":   clientIP,
		"X-Real-Ip":         clientIP,
		"X-Forwarded-Proto": "http",
		"X-Forwarded-Host":  strings.TrimPrefix(rig.base, "http://"),
		"X-Api-Key":         "kept",
	}
	for k, v := range r.Header {
		if _, ok := want[k]; ok {
			if len(v) != 1 || v[0] != want[k] {
				t.Errorf("upstream got %s: %q, want [%s]", k, v, want[k])
			}
			delete(want, k)
			continue
		}
		if gateSetsHeader(k) || strings.EqualFold(k, "Authorization") {
			t.Errorf("upstream got the client's %s: %q", k, v)
		}
	}
	for k := range want {
		t.Errorf("upstream did not get %s", k)
	}
	if b, err := io.ReadAll(r.Body); r.Method != http.MethodPost || err == nil && string(b) != "" {
		// The upstream's handler has returned: its body is gone, but the
		// method must be the client's.
		t.Errorf("upstream got %s", r.Method)
	}

	t.Run("pass authorization", func(t *testing.T) {
		rig := newModeRig(t, nil, ProxyConfig{PassAuthorization: true})
		do(t, rig.client, http.MethodGet, rig.base+"/", nil, "Authorization", "Bearer "+rig.tokens["api-client"])
		if seen := rig.reached(); len(seen) != 1 || seen[0].Header.Get("Authorization") != "Bearer "+rig.tokens["api-client"] {
			t.Fatalf("with PassAuthorization the upstream must get the client's Authorization: %v", seen)
		}
	})
	t.Run("through a trusted proxy", func(t *testing.T) {
		rig.mu.Lock()
		rig.seen = nil
		rig.mu.Unlock()
		do(t, rig.viaProxy, http.MethodGet, rig.base+"/", nil, "Authorization", "Bearer "+tok,
			"X-Forwarded-For", "198.51.100.66, 203.0.113.9", "X-Forwarded-Host", "api.example", "X-Forwarded-Proto", "https")
		seen := rig.reached()
		if len(seen) != 1 {
			t.Fatalf("%d requests reached the upstream", len(seen))
		}
		h := seen[0].Header
		// The client is the rightmost untrusted address, as the gate counts it;
		// what it wrote left of that is gone.
		if h.Get("X-Forwarded-For") != "203.0.113.9, 127.0.0.1" || h.Get("X-Real-Ip") != "203.0.113.9" ||
			h.Get("X-Forwarded-Host") != "api.example" || h.Get("X-Forwarded-Proto") != "https" {
			t.Errorf("through a trusted proxy the upstream got %v", h)
		}
	})
}

// TestProxyModeRefusesAsAuth: every refusal of proxy mode is the answer /auth
// gives the same request on the same listener (status, reason, challenge, body),
// and never reaches the upstream.
func TestProxyModeRefusesAsAuth(t *testing.T) {
	rig := newModeRig(t, nil, ProxyConfig{Routes: []Route{
		{Prefix: "/"}, {Prefix: "/feeds", Access: store.AccessThirdPartyFeeds}, {Prefix: "/reports", Access: store.AccessSecurityDirector},
	}})
	tok := rig.tokens
	unknown, err := secret.Generate()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, auth string
		hdr              []string
		reason           string
	}{
		{"missing token", "/feeds/x", "/auth/third-party-feeds", nil, "missing_token"},
		{"another scheme", "/feeds/x", "/auth/third-party-feeds", []string{"Authorization", "Basic dXNlcjpwYXNz"}, "missing_token"},
		{"malformed", "/feeds/x", "/auth/third-party-feeds", []string{"Authorization", "Bearer aptk_not-a-token"}, "malformed_token"},
		{"bad checksum", "/x", "/auth", []string{"Authorization", "Bearer " + flipLast(tok["both"])}, "malformed_token"},
		{"unknown", "/x", "/auth", []string{"Authorization", "Bearer " + unknown.Reveal()}, "unknown_token"},
		{"inactive", "/reports/daily", "/auth/security-director", []string{"Authorization", "Bearer " + tok["switched-off"]}, "inactive_token"},
		{"blocked IP", "/reports/daily", "/auth/security-director", []string{"Authorization", "Bearer " + tok["blocked-client"]}, "ip_blocked"},
		{"access not granted", "/feeds/x", "/auth/third-party-feeds", []string{"Authorization", "Bearer " + tok["api-client"]}, "insufficient_access"},
		{"access not granted at the route's root", "/reports", "/auth/security-director", []string{"Authorization", "Bearer " + tok["feeds-only"]}, "insufficient_access"},
		{"two Authorization headers", "/x", "/auth", []string{"Authorization", "Bearer " + tok["both"], "Authorization", "Bearer " + tok["api-client"]}, "malformed_token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(rig.reached())
			got := do(t, rig.client, http.MethodGet, rig.base+tc.path, nil, tc.hdr...)
			want := do(t, rig.client, http.MethodGet, rig.base+tc.auth, nil, tc.hdr...)
			if want.status == http.StatusOK {
				// Allowed by /auth: proxy mode forwards it.
				if got.status != http.StatusOK || len(rig.reached()) != before+1 {
					t.Errorf("/auth allowed it; proxy mode answered %d", got.status)
				}
				return
			}
			if len(rig.reached()) != before {
				t.Errorf("a refused request reached the upstream")
			}
			if tc.reason != "" {
				wantDenial(t, got, want.status, tc.reason, want.header.Get("WWW-Authenticate"))
			}
			if got.status != want.status || got.body != want.body ||
				got.header.Get("X-Apptokens-Reason") != want.header.Get("X-Apptokens-Reason") ||
				got.header.Get("WWW-Authenticate") != want.header.Get("WWW-Authenticate") {
				t.Errorf("proxy mode answered %d %v %q; %s answered %d %v %q", got.status, got.header, got.body, tc.auth, want.status, want.header, want.body)
			}
		})
	}
}

// flipLast changes a token's last checksum character.
func flipLast(tok string) string {
	if tok[len(tok)-1] == 'a' {
		return tok[:len(tok)-1] + "b"
	}
	return tok[:len(tok)-1] + "a"
}

// TestProxyModePaths: the gate's own paths are answered by the gate, routes
// match whole segments (longest prefix first), and a path that an upstream
// could normalise into another route, or that no route serves, is 404
// not_found without reaching an upstream.
func TestProxyModePaths(t *testing.T) {
	rig := newModeRig(t, nil, ProxyConfig{Routes: []Route{
		{Prefix: "/feeds", Access: store.AccessThirdPartyFeeds}, {Prefix: "/feeds/admin/", Access: store.AccessSecurityDirector},
	}})
	feeds := "Bearer " + rig.tokens["feeds-only"]
	for _, tc := range []struct {
		path   string
		status int
		reason string
		upTo   string // path the upstream got, when forwarded
	}{
		{"/auth", http.StatusOK, "ok", ""},
		{"/auth/third-party-feeds/v1", http.StatusOK, "ok", ""},
		{"/auth/security-director", http.StatusForbidden, "insufficient_access", ""},
		{"/healthz", http.StatusOK, "ok", ""},
		{"/feeds", http.StatusOK, "ok", "/feeds"},
		{"/feeds/", http.StatusOK, "ok", "/feeds/"},
		{"/feeds/daily", http.StatusOK, "ok", "/feeds/daily"},
		{"/feeds/admin", http.StatusForbidden, "insufficient_access", ""},
		{"/feeds/admin/users", http.StatusForbidden, "insufficient_access", ""},
		{"/feeds/administrators", http.StatusOK, "ok", "/feeds/administrators"},
		{"/feedsx", http.StatusNotFound, "not_found", ""},
		{"/", http.StatusNotFound, "not_found", ""},
		{"/feeds/x/../admin/users", http.StatusNotFound, "not_found", ""},
		{"/feeds/%2e%2e/admin", http.StatusNotFound, "not_found", ""},
		{"/feeds//admin/users", http.StatusNotFound, "not_found", ""},
		{"/feeds/./admin", http.StatusNotFound, "not_found", ""},
		// The same segments as a servlet container or IIS reads them.
		{"/feeds/..;/admin/users", http.StatusNotFound, "not_found", ""},
		{"/feeds/..%3b/admin/users", http.StatusNotFound, "not_found", ""},
		{"/feeds/.;x/admin", http.StatusNotFound, "not_found", ""},
		{`/feeds/..\admin/users`, http.StatusNotFound, "not_found", ""},
		{"/feeds/..%5cadmin/users", http.StatusNotFound, "not_found", ""},
		{"/feeds/x%5c%5cadmin", http.StatusNotFound, "not_found", ""},
		{"/feeds/daily;v=2", http.StatusOK, "ok", "/feeds/daily;v=2"},
	} {
		before := len(rig.reached())
		req, err := http.NewRequest(http.MethodGet, rig.base, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.URL.Opaque = tc.path // sent as written, not cleaned by the client
		req.Header.Set("Authorization", feeds)
		resp, err := rig.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || resp.Header.Get("X-Apptokens-Reason") != tc.reason {
			t.Errorf("%s: %d %q, want %d %s", tc.path, resp.StatusCode, resp.Header.Get("X-Apptokens-Reason"), tc.status, tc.reason)
		}
		if tc.status == http.StatusNotFound && string(body) != "{\"error\":\"not_found\"}\n" {
			t.Errorf("%s: body %q, want the not_found JSON", tc.path, body)
		}
		seen := rig.reached()[before:]
		switch {
		case tc.upTo == "" && len(seen) != 0:
			t.Errorf("%s reached the upstream as %s", tc.path, seen[0].URL.Path)
		case tc.upTo != "" && (len(seen) != 1 || seen[0].URL.Path != tc.upTo):
			t.Errorf("%s: upstream got %d requests, want one for %s", tc.path, len(seen), tc.upTo)
		}
	}
}

// TestProxyModeRouteErrors: routes that cannot be served are refused, each
// with an error naming the cause.
func TestProxyModeRouteErrors(t *testing.T) {
	for _, tc := range []struct{ route, want string }{
		{"/v1", "want PREFIX=URL"},
		{"v1=http://127.0.0.1:9000", "clean absolute path"},
		{"/v1/../x=http://127.0.0.1:9000", "clean absolute path"},
		{"/auth=http://127.0.0.1:9000", "the gate answers /auth itself"},
		{"/healthz/=http://127.0.0.1:9000", "the gate answers /healthz itself"},
		{"/v1=127.0.0.1:9000", "want http://"},
		{"/v1=ftp://127.0.0.1/", "want http://"},
		{"/v1=http://user:secret@127.0.0.1:9000", "credentials"},
		{"/v1=http://127.0.0.1:9000?x=1", "query"},
		{"/v1=http://127.0.0.1:9000,security-directr", `unknown access type "security-directr"`},
		{"/v1=http://127.0.0.1:9000,", "empty access type"},
	} {
		_, err := ParseRoute(tc.route)
		if !errors.Is(err, ErrBadRoute) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseRoute(%q): %v, want ErrBadRoute saying %q", tc.route, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("ParseRoute(%q) repeats the URL's password: %v", tc.route, err)
		}
	}
	r, err := ParseRoute("/v1/=http://127.0.0.1:9000/base,third-party-feeds")
	if err != nil || r.Upstream.Path != "/base" || r.Access != store.AccessThirdPartyFeeds {
		t.Fatalf("ParseRoute: %+v, %v", r, err)
	}
	g := newGate(t, Config{Store: openStore(t, nil)})
	if _, err := g.Proxy(ProxyConfig{Routes: []Route{r, {Prefix: "/v1", Upstream: r.Upstream}}}); !errors.Is(err, ErrBadRoute) || !strings.Contains(err.Error(), "two routes for /v1") {
		t.Errorf("two routes for one prefix: %v", err)
	}
	if _, err := g.Proxy(ProxyConfig{}); !errors.Is(err, ErrBadRoute) {
		t.Errorf("no route: %v", err)
	}
}

// TestProxyModeUsageAsAuth: proxy mode counts usage per client IP exactly as
// /auth does: the same requests, from a client and through a trusted proxy,
// give one token through proxy mode the same rows as another through /auth.
func TestProxyModeUsageAsAuth(t *testing.T) {
	rig := newModeRig(t, nil, ProxyConfig{})
	viaMode := create(t, rig.store, "via-mode", store.AccessSecurityDirector)
	viaAuth := create(t, rig.store, "via-auth", store.AccessSecurityDirector)
	for _, name := range []string{"via-mode", "via-auth"} {
		if _, err := rig.store.SetBlocked(admin, name, []string{"203.0.113.9"}, true); err != nil {
			t.Fatal(err)
		}
	}
	send := func(path, tok string) {
		for _, c := range []struct {
			client *http.Client
			hdr    []string
		}{
			{rig.client, nil},
			{rig.client, []string{"X-Forwarded-For", "198.51.100.1"}}, // not believed from a client
			{rig.viaProxy, []string{"X-Forwarded-For", "198.51.100.2"}},
			{rig.viaProxy, []string{"X-Forwarded-For", "10.9.9.9, 198.51.100.2"}},
			{rig.viaProxy, []string{"X-Real-IP", "198.51.100.3"}},
			{rig.viaProxy, []string{"X-Forwarded-For", "203.0.113.9"}}, // blocked
			{rig.viaProxy, nil},
		} {
			do(t, c.client, http.MethodGet, rig.base+path, nil, append([]string{"Authorization", "Bearer " + tok}, c.hdr...)...)
		}
	}
	send("/api/x", viaMode)
	send("/auth", viaAuth)
	if err := rig.gate.Flush(); err != nil {
		t.Fatal(err)
	}
	rows := func(name string) []string {
		u, err := rig.store.Usage(name)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range u {
			out = append(out, fmt.Sprintf("%s allowed=%d denied=%d blocked=%v", r.IP, r.Allowed, r.Denied, r.Blocked))
		}
		slices.Sort(out)
		return out
	}
	mode, auth := rows("via-mode"), rows("via-auth")
	want := []string{
		"127.0.0.1 allowed=1 denied=0 blocked=false",
		clientIP + " allowed=2 denied=0 blocked=false",
		"198.51.100.2 allowed=2 denied=0 blocked=false",
		"198.51.100.3 allowed=1 denied=0 blocked=false",
		"203.0.113.9 allowed=0 denied=1 blocked=true",
	}
	if !slices.Equal(mode, want) || !slices.Equal(auth, want) {
		t.Errorf("usage through proxy mode:\n%s\nthrough /auth:\n%s\nwant:\n%s", strings.Join(mode, "\n"), strings.Join(auth, "\n"), strings.Join(want, "\n"))
	}
	if n := len(rig.reached()); n != 6 {
		t.Errorf("%d requests reached the upstream, want the 6 allowed ones", n)
	}
}

// TestProxyModeNextRequestSeesDeactivation: a token deactivated in the store
// is refused by the very next proxied request.
func TestProxyModeNextRequestSeesDeactivation(t *testing.T) {
	rig := newModeRig(t, nil, ProxyConfig{})
	authz := "Bearer " + rig.tokens["api-client"]
	for i := range 3 {
		if a := do(t, rig.client, http.MethodGet, rig.base+"/x", nil, "Authorization", authz); a.status != http.StatusOK {
			t.Fatalf("request %d: %d", i, a.status)
		}
		if _, err := rig.store.SetActive(admin, []string{"api-client"}, false); err != nil {
			t.Fatal(err)
		}
		a := do(t, rig.client, http.MethodGet, rig.base+"/x", nil, "Authorization", authz)
		if a.status != http.StatusUnauthorized || a.header.Get("X-Apptokens-Reason") != "inactive_token" {
			t.Fatalf("the request after the deactivation: %d %q", a.status, a.header.Get("X-Apptokens-Reason"))
		}
		if _, err := rig.store.SetActive(admin, []string{"api-client"}, true); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(rig.reached()); n != 3 {
		t.Errorf("%d requests reached the upstream, want 3", n)
	}
}

// TestProxyModeUpstreamDown: an upstream that cannot be reached answers 502
// with the contract's JSON body; the log says why without the request's URL
// (a client may put a token in a query).
func TestProxyModeUpstreamDown(t *testing.T) {
	down, err := url.Parse("http://" + freeAddr(t)) // nothing listens there
	if err != nil {
		t.Fatal(err)
	}
	rig := newModeRig(t, nil, ProxyConfig{Routes: []Route{{Prefix: "/", Upstream: down}}})
	tok := rig.tokens["api-client"]
	a := do(t, rig.client, http.MethodGet, rig.base+"/x?access_token="+tok, nil, "Authorization", "Bearer "+tok)
	if a.status != http.StatusBadGateway || a.header.Get("X-Apptokens-Reason") != "upstream_unavailable" ||
		a.body != "{\"error\":\"upstream_unavailable\"}\n" || a.header.Get("Content-Type") != "application/json" {
		t.Fatalf("upstream down: %d %v %q", a.status, a.header, a.body)
	}
	logs := rig.logs.String()
	if !strings.Contains(logs, "upstream unavailable") || !strings.Contains(logs, "connection refused") {
		t.Errorf("the log does not say the upstream is down:\n%s", logs)
	}
	if strings.Contains(logs, tok) || strings.Contains(logs, tok[5:45]) {
		t.Errorf("the token appears in the log:\n%s", logs)
	}
	// Refusals are still the gate's own.
	if a := do(t, rig.client, http.MethodGet, rig.base+"/x", nil); a.status != http.StatusUnauthorized {
		t.Errorf("no token with the upstream down: %d", a.status)
	}
}

// TestProxyModeStreams: 10 MB request and response bodies stream through proxy
// mode in lockstep with their ends (the upstream reads the first MiB before
// the client has sent the second; the client reads the first MiB before the
// upstream writes the second), and the transfer allocates a small fraction of
// what it moves (measured with runtime.MemStats).
func TestProxyModeStreams(t *testing.T) {
	const total, step = 10 << 20, 1 << 20
	upstreamGot := make(chan int, total/step+1)
	clientGot := make(chan int, total/step+1)
	rig := newModeRig(t, func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 64<<10)
		switch r.URL.Path {
		case "/upload":
			n, next := 0, step
			for {
				k, err := r.Body.Read(buf)
				n += k
				for n >= next {
					upstreamGot <- next
					next += step
				}
				if err != nil {
					break
				}
			}
			fmt.Fprintf(w, "%d", n)
		case "/download":
			w.Header().Set("Content-Length", fmt.Sprint(total))
			for sent := 0; sent < total; sent += step {
				if sent > 0 {
					// The client holds the previous MiB: the gate streams.
					select {
					case <-clientGot:
					case <-time.After(10 * time.Second):
						t.Error("the client did not get the response's MiB before the upstream wrote the next: the body is buffered")
						return
					}
				}
				for i := 0; i < step; i += len(buf) {
					if _, err := w.Write(buf); err != nil {
						return
					}
				}
				http.NewResponseController(w).Flush()
			}
		}
	}, ProxyConfig{})
	authz := []string{"Authorization", "Bearer " + rig.tokens["api-client"]}

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	// Upload: the client sends a MiB only when the upstream has the one before.
	pr, pw := io.Pipe()
	go func() {
		chunk := make([]byte, 64<<10)
		for sent := 0; sent < total; sent += step {
			if sent > 0 {
				select {
				case <-upstreamGot:
				case <-time.After(10 * time.Second):
					pw.CloseWithError(errors.New("the upstream did not get the request's MiB before the client sent the next: the body is buffered"))
					return
				}
			}
			for i := 0; i < step; i += len(chunk) {
				if _, err := pw.Write(chunk); err != nil {
					return
				}
			}
		}
		pw.Close()
	}()
	up := do(t, rig.client, http.MethodPut, rig.base+"/upload", pr, authz...)
	if up.status != http.StatusOK || up.body != fmt.Sprint(total) {
		t.Fatalf("upload: %d %q, want the upstream to have read %d bytes", up.status, up.body, total)
	}

	// Download: the client reads, and tells the upstream each MiB it has.
	req, err := http.NewRequest(http.MethodGet, rig.base+"/download", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(authz[0], authz[1])
	resp, err := rig.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	n, next := 0, step
	for {
		k, err := resp.Body.Read(buf)
		n += k
		for n >= next && next < total {
			clientGot <- next
			next += step
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("download after %d bytes: %v", n, err)
		}
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || n != total {
		t.Fatalf("download: %d, %d bytes, want %d", resp.StatusCode, n, total)
	}

	runtime.ReadMemStats(&after)
	moved := uint64(2 * total)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > moved/8 {
		t.Errorf("moving %d MiB through the gate allocated %d KiB (client, gate and upstream together): bodies are buffered", moved>>20, alloc>>10)
	} else {
		t.Logf("moving %d MiB allocated %d KiB in all (client, gate and upstream)", moved>>20, alloc>>10)
	}
}

// TestProxyModeWebSocket: a WebSocket upgrade passes through proxy mode with
// the token headers, and the connection then echoes both ways; an upgrade
// without a token is refused by the gate and never reaches the upstream.
func TestProxyModeWebSocket(t *testing.T) {
	rig := newModeRig(t, func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || r.Header.Get("X-Token-Name") != "api-client" {
			http.Error(w, "not an upgrade with a token", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", wsAccept(r.Header.Get("Sec-WebSocket-Key")))
		if err := brw.Flush(); err != nil {
			return
		}
		_, _ = io.Copy(conn, brw) // echo until the client closes
	}, ProxyConfig{})

	dial := func(authz string) (net.Conn, *bufio.Reader, *http.Response) {
		conn, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(clientIP)}}).Dial("tcp", strings.TrimPrefix(rig.base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
		const key = "dGhlIHNhbXBsZSBub25jZQ=="
		fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: api\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n", key, authz)
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		return conn, br, resp
	}

	conn, br, resp := dial("Authorization: Bearer " + rig.tokens["api-client"] + "\r\n")
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != wsAccept("dGhlIHNhbXBsZSBub25jZQ==") {
		t.Fatalf("upgrade: %d %v", resp.StatusCode, resp.Header)
	}
	for _, msg := range []string{"hello", strings.Repeat("x", 100<<10), "bye"} {
		if _, err := io.WriteString(conn, msg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(br, got); err != nil || string(got) != msg {
			t.Fatalf("echo of %d bytes: %v", len(msg), err)
		}
	}
	conn.Close()

	before := len(rig.reached())
	_, _, resp = dial("")
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("X-Apptokens-Reason") != "missing_token" {
		t.Errorf("upgrade without a token: %d %v", resp.StatusCode, resp.Header)
	}
	if len(rig.reached()) != before {
		t.Error("an upgrade without a token reached the upstream")
	}
}

func wsAccept(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// TestProxyModeHeaderSpellings: every spelling of a header the gate sets is
// recognised, and nothing else is.
func TestProxyModeHeaderSpellings(t *testing.T) {
	for _, k := range []string{"X-Token-Name", "X_Token_Name", "x_token_access", "X-TOKEN-ADMIN", "X_Token-Other",
		"X-Forwarded-For", "X_FORWARDED_FOR", "x-forwarded_host", "X_Forwarded_Proto", "X-Real-Ip", "X_REAL_IP", "Forwarded"} {
		if !gateSetsHeader(k) {
			t.Errorf("%s is not recognised as a header the gate sets", k)
		}
	}
	for _, k := range []string{"X-Token", "X-Tokens-Name", "Authorization", "X-Forwarded-Port2", "Forwarded-For", "X-Api-Key"} {
		if gateSetsHeader(k) {
			t.Errorf("%s is taken for a header the gate sets", k)
		}
	}
}

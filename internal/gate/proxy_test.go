package gate

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apptokens/apptokens/store"
)

// The proxy configurations in testdata are the ones README shows, written with
// these addresses; the tests put random free ports in their place.
const (
	confListen   = "127.0.0.1:8000"
	confGate     = "127.0.0.1:8080"
	confUpstream = "127.0.0.1:9000"
	// clientIP is where the test client connects from, so that the gate can tell
	// it from the proxy, which connects from 127.0.0.1.
	clientIP = "127.0.0.2"
)

// needBinary finds a proxy binary, or skips the test with how to get it; with
// APPTOKENS_REQUIRE_E2E=1 (set by .ci/run) a missing binary fails it instead.
func needBinary(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	// Debian puts nginx in /usr/sbin, which a non-root PATH often lacks.
	if path, err := exec.LookPath(filepath.Join("/usr/sbin", name)); err == nil {
		return path
	}
	msg := fmt.Sprintf("%s not found (apt-get install -y %s); skipping the real %s test", name, pkg, name)
	if os.Getenv("APPTOKENS_REQUIRE_E2E") == "1" {
		t.Fatal(msg + ", but APPTOKENS_REQUIRE_E2E=1")
	}
	t.Skip(msg + ". Set APPTOKENS_REQUIRE_E2E=1 to make this a failure.")
	return ""
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// proxyRig is a store with tokens, a gate that trusts only 127.0.0.1 as a proxy,
// and an upstream API that echoes the identity headers it received, as Go and
// as a CGI/WSGI backend (which folds "_" into "-" and ignores case) sees them.
type proxyRig struct {
	store    *store.Store
	gateAddr string
	upstream string
	tokens   map[string]string // name → secret
	client   *http.Client      // connects from clientIP
}

// upstreamSaw is the upstream's echo of a request.
type upstreamSaw struct {
	TokenName   []string          `json:"token_name"`
	TokenAccess []string          `json:"token_access"`
	Path        string            `json:"path"`
	Environ     map[string]string `json:"environ"` // wsgiEnviron of the request
}

func newProxyRig(t *testing.T) *proxyRig {
	t.Helper()
	s := openStore(t, nil)
	rig := &proxyRig{store: s, tokens: map[string]string{}}
	rig.tokens["api-client"] = create(t, s, "api-client", store.AccessSecurityDirector)
	rig.tokens["feeds-only"] = create(t, s, "feeds-only", store.AccessThirdPartyFeeds)
	rig.tokens["blocked-client"] = create(t, s, "blocked-client", store.AccessSecurityDirector)
	if _, err := s.SetBlocked(admin, "blocked-client", []string{clientIP}, true); err != nil {
		t.Fatal(err)
	}

	g := newGate(t, Config{Store: s, TrustedProxies: []netip.Prefix{mustPrefix("127.0.0.1/32")}})
	run(t, g)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(ln.Addr().String(), g.Handler())
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	rig.gateAddr = ln.Addr().String()

	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(upstreamSaw{
			TokenName: r.Header.Values("X-Token-Name"), TokenAccess: r.Header.Values("X-Token-Access"), Path: r.URL.Path,
			Environ: wsgiEnviron(r.Header),
		})
	}))
	t.Cleanup(api.Close)
	rig.upstream = strings.TrimPrefix(api.URL, "http://")

	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(clientIP)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: dialer.DialContext, DisableKeepAlives: true}
	rig.client = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	return rig
}

// config reads a testdata configuration and puts the rig's addresses in it.
func (rig *proxyRig) config(t *testing.T, name, listen string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	for _, addr := range []string{confListen, confGate, confUpstream} {
		if !strings.Contains(conf, addr) {
			t.Fatalf("testdata/%s does not mention %s", name, addr)
		}
	}
	return strings.NewReplacer(confListen, listen, confGate, rig.gateAddr, confUpstream, rig.upstream).Replace(conf)
}

// proxyProcess is a proxy started by a test, stopped by its PID.
type proxyProcess struct {
	cmd    *exec.Cmd
	output *syncBuffer
	exited chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startProxy runs a proxy and waits until it accepts connections on listen.
func startProxy(t *testing.T, listen, logFile string, env []string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proxyProcess{cmd: cmd, output: out, exited: make(chan error, 1)}
	go func() { p.exited <- cmd.Wait() }()
	logs := func() string {
		s := out.String()
		if logFile != "" {
			if b, err := os.ReadFile(logFile); err == nil {
				s += string(b)
			}
		}
		return s
	}
	t.Cleanup(func() {
		// Stop this process, by its PID, and nothing else.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-p.exited
			t.Errorf("%s (pid %d) did not stop on SIGTERM", name, cmd.Process.Pid)
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, logs())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", listen, 200*time.Millisecond)
		if err == nil {
			conn.Close()
			return
		}
		select {
		case err := <-p.exited:
			p.exited <- err
			t.Fatalf("%s exited before listening: %v\n%s", name, err, logs())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is not listening on %s after 15s\n%s", name, listen, logs())
		}
	}
}

// TestNginxAuthRequest runs the real nginx with testdata/nginx.conf in front
// of an upstream, with the gate as auth_request; then with a typo in the access
// name of the configuration, which must refuse every token with a 403 (nginx
// turns any status but 200, 401 and 403 into a 500).
func TestNginxAuthRequest(t *testing.T) {
	nginx := needBinary(t, "nginx", "nginx-light")
	rig := newProxyRig(t)
	site := rig.config(t, "nginx.conf", confListen)
	rig.check(t, "http://"+startNginx(t, nginx, site))

	const good, typo = "/_apptokens/auth/security-director;", "/_apptokens/auth/security-directr;"
	if !strings.Contains(site, good) {
		t.Fatalf("testdata/nginx.conf does not use %s", good)
	}
	base := "http://" + startNginx(t, nginx, strings.Replace(site, good, typo, 1))
	for _, tc := range []struct {
		authz  string
		status int
		reason string
	}{
		{"Bearer " + rig.tokens["api-client"], http.StatusForbidden, "insufficient_access"},
		{"", http.StatusUnauthorized, "missing_token"},
	} {
		a := rig.get(t, base, tc.authz)
		if a.status != tc.status || a.header.Get("X-Apptokens-Reason") != tc.reason || strings.Contains(a.body, "token_name") {
			t.Errorf("access name with a typo: %d %q, want %d %s and no upstream answer", a.status, a.header.Get("X-Apptokens-Reason"), tc.status, tc.reason)
		}
	}
}

// startNginx runs nginx with the server block site, listening on a free address
// in place of confListen, and returns that address.
func startNginx(t *testing.T, nginx, site string) string {
	t.Helper()
	prefix := t.TempDir()
	listen := freeAddr(t)
	sitePath := filepath.Join(prefix, "apptokens.conf")
	if err := os.WriteFile(sitePath, []byte(strings.ReplaceAll(site, confListen, listen)), 0o600); err != nil {
		t.Fatal(err)
	}
	errorLog := filepath.Join(prefix, "error.log")
	var main strings.Builder
	fmt.Fprintf(&main, "pid %s;\nerror_log %s info;\nworker_processes 1;\nevents { worker_connections 64; }\nhttp {\n", filepath.Join(prefix, "nginx.pid"), errorLog)
	fmt.Fprintf(&main, "  access_log %s;\n", filepath.Join(prefix, "access.log"))
	// The opposite of nginx's defaults, as a site's http block may have them:
	// the server block must keep client headers with "_" away on its own.
	fmt.Fprintf(&main, "  underscores_in_headers on;\n  ignore_invalid_headers off;\n")
	for _, d := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&main, "  %s_temp_path %s;\n", d, filepath.Join(prefix, d+"_temp"))
	}
	fmt.Fprintf(&main, "  include %s;\n}\n", sitePath)
	conf := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(conf, []byte(main.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	startProxy(t, listen, errorLog, nil, nginx, "-p", prefix+"/", "-e", errorLog, "-c", conf, "-g", "daemon off;")
	return listen
}

// TestCaddyForwardAuth runs the real Caddy with testdata/Caddyfile in front of
// an upstream, with the gate as forward_auth.
func TestCaddyForwardAuth(t *testing.T) {
	caddy := needBinary(t, "caddy", "caddy")
	rig := newProxyRig(t)
	dir := t.TempDir()
	listen := freeAddr(t)
	conf := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(conf, []byte(rig.config(t, "Caddyfile", listen)), 0o600); err != nil {
		t.Fatal(err)
	}
	// Caddy keeps state under HOME and the XDG directories: keep them in the test's.
	env := []string{"HOME=" + dir, "XDG_DATA_HOME=" + filepath.Join(dir, "data"), "XDG_CONFIG_HOME=" + filepath.Join(dir, "config")}
	startProxy(t, listen, "", env, caddy, "run", "--config", conf, "--adapter", "caddyfile")
	rig.check(t, "http://"+listen)
}

// get asks the proxy at base for an API path, as the client, with extra
// headers whose names go on the wire exactly as spelled here.
func (rig *proxyRig) get(t *testing.T, base, authz string, hdr ...string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/reports/daily", nil)
	if err != nil {
		t.Fatal(err)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header[hdr[i]] = append(req.Header[hdr[i]], hdr[i+1])
	}
	resp, err := rig.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	if _, err := body.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: body.String()}
}

// check runs the contract through a proxy at base.
func (rig *proxyRig) check(t *testing.T, base string) {
	t.Helper()
	get := func(authz string, hdr ...string) answer {
		t.Helper()
		return rig.get(t, base, authz, hdr...)
	}

	t.Run("valid token reaches the upstream with its name", func(t *testing.T) {
		// The client tries to pose as another token, under every spelling a
		// CGI/WSGI backend folds into the identity headers, and to choose its
		// own IP.
		a := get("Bearer "+rig.tokens["api-client"], append([]string{"X-Token-Name", "root", "X-Token-Access", "third-party-feeds", "X-Forwarded-For", "198.51.100.66"}, spoofedIdentity...)...)
		if a.status != http.StatusOK {
			t.Fatalf("status %d: %s", a.status, a.body)
		}
		var saw upstreamSaw
		if err := json.Unmarshal([]byte(a.body), &saw); err != nil {
			t.Fatalf("upstream answer %q: %v", a.body, err)
		}
		if len(saw.TokenName) != 1 || saw.TokenName[0] != "api-client" {
			t.Errorf("upstream got X-Token-Name %q, want [api-client]", saw.TokenName)
		}
		if len(saw.TokenAccess) != 1 || saw.TokenAccess[0] != "security-director" {
			t.Errorf("upstream got X-Token-Access %q, want [security-director]", saw.TokenAccess)
		}
		if saw.Path != "/reports/daily" {
			t.Errorf("upstream got path %q", saw.Path)
		}
		wantOnlyGateIdentity(t, saw.Environ, "api-client", "security-director")
	})
	t.Run("two Authorization headers never reach the upstream", func(t *testing.T) {
		// The proxy refuses them itself (400) or the gate does (401
		// malformed_token): either way no credential is half-checked.
		for _, second := range []string{"Bearer " + rig.tokens["feeds-only"], "Bearer junk"} {
			a := get("Bearer "+rig.tokens["api-client"], "Authorization", second)
			if a.status != http.StatusBadRequest && (a.status != http.StatusUnauthorized || a.header.Get("X-Apptokens-Reason") != "malformed_token") {
				t.Errorf("got %d %q, want 400 from the proxy or 401 malformed_token", a.status, a.header.Get("X-Apptokens-Reason"))
			}
			if strings.Contains(a.body, `"token_name"`) {
				t.Error("the upstream answered a request with two credentials")
			}
			t.Logf("two Authorization headers: %d %q", a.status, a.header.Get("X-Apptokens-Reason"))
		}
	})
	t.Run("invalid token is a 401 with the challenge", func(t *testing.T) {
		a := get("Bearer aptk_not-a-token")
		if a.status != http.StatusUnauthorized || a.header.Get("WWW-Authenticate") != challengeInvalidToken {
			t.Errorf("got %d, WWW-Authenticate %q", a.status, a.header.Get("WWW-Authenticate"))
		}
		if got := a.header.Get("X-Apptokens-Reason"); got != "malformed_token" {
			t.Errorf("X-Apptokens-Reason %q", got)
		}
		if strings.Contains(a.body, `"token_name"`) {
			t.Error("the upstream answered a refused request")
		}
	})
	t.Run("missing token is a 401 with the bare challenge", func(t *testing.T) {
		a := get("")
		if a.status != http.StatusUnauthorized || a.header.Get("WWW-Authenticate") != challengeBare {
			t.Errorf("got %d, WWW-Authenticate %q", a.status, a.header.Get("WWW-Authenticate"))
		}
	})
	t.Run("blocked IP is a 403", func(t *testing.T) {
		a := get("Bearer " + rig.tokens["blocked-client"])
		if a.status != http.StatusForbidden || a.header.Get("X-Apptokens-Reason") != "ip_blocked" {
			t.Errorf("got %d, reason %q", a.status, a.header.Get("X-Apptokens-Reason"))
		}
	})
	t.Run("wrong access type is a 403", func(t *testing.T) {
		a := get("Bearer " + rig.tokens["feeds-only"])
		if a.status != http.StatusForbidden || a.header.Get("X-Apptokens-Reason") != "insufficient_access" {
			t.Errorf("got %d, reason %q", a.status, a.header.Get("X-Apptokens-Reason"))
		}
	})
	t.Run("usage shows the client IP the proxy forwarded", func(t *testing.T) {
		var got []store.Usage
		ok := pollUntil(2*time.Second, func() bool {
			u, err := rig.store.Usage("api-client")
			if err != nil {
				t.Fatal(err)
			}
			got = u
			return len(u) > 0
		})
		if !ok || len(got) != 1 || got[0].IP != clientIP || got[0].Allowed != 1 {
			t.Fatalf("usage of api-client: %+v, want one row for %s with 1 allowed", got, clientIP)
		}
		ok = pollUntil(2*time.Second, func() bool {
			u, err := rig.store.Usage("blocked-client")
			if err != nil {
				t.Fatal(err)
			}
			got = u
			return len(u) == 1 && u[0].Denied > 0
		})
		if !ok || got[0].IP != clientIP || !got[0].Blocked {
			t.Fatalf("usage of blocked-client: %+v", got)
		}
	})
}

func pollUntil(within time.Duration, cond func() bool) bool {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			return cond()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return true
}

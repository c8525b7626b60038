package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestServeUpstream runs `serve --upstream` in front of an API: an allowed
// request reaches it with the token's name, a token deactivated over SSH is
// refused by the very next proxied request, and the gate's own /auth still
// answers on the same listener.
func TestServeUpstream(t *testing.T) {
	var reached atomic.Int32
	var sawName, sawAuthz atomic.Value
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		sawName.Store(r.Header.Get("X-Token-Name"))
		sawAuthz.Store(r.Header.Get("Authorization"))
		io.WriteString(w, "feed for "+r.Header.Get("X-Token-Name"))
	}))
	defer api.Close()
	s := startServe(t, "--upstream", api.URL, "--access", "third-party-feeds")
	out, errOut, code := s.ssh("create", "--name", "feed-reader", "--access", "third-party-feeds")
	if code != 0 {
		t.Fatal(errOut)
	}
	tok := strings.TrimSpace(out)
	get := func(path string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+s.httpAddr+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header["X_Token_Name"] = []string{"root"}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	if resp, body := get("/v1/feeds"); resp.StatusCode != http.StatusOK || body != "feed for feed-reader" {
		t.Fatalf("allowed request: %d %q", resp.StatusCode, body)
	}
	if sawName.Load() != "feed-reader" || sawAuthz.Load() != "" {
		t.Errorf("the API saw X-Token-Name %q and Authorization %q", sawName.Load(), sawAuthz.Load())
	}
	if resp, _ := get("/auth/third-party-feeds"); resp.StatusCode != http.StatusOK || resp.Header.Get("X-Token-Name") != "feed-reader" {
		t.Errorf("/auth on the proxy-mode listener: %d %v", resp.StatusCode, resp.Header)
	}
	if _, errOut, code := s.ssh("deactivate", "feed-reader"); code != 0 {
		t.Fatal(errOut)
	}
	resp, body := get("/v1/feeds")
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("X-Apptokens-Reason") != "inactive_token" || body != "{\"error\":\"inactive_token\"}\n" {
		t.Fatalf("deactivated over SSH, next proxied request: %d %v %q", resp.StatusCode, resp.Header, body)
	}
	if n := reached.Load(); n != 1 {
		t.Errorf("the API got %d requests, want 1", n)
	}
	if strings.Contains(s.logs.String(), tok) || strings.Contains(s.logs.String(), tok[5:45]) {
		t.Fatal("the token appears in serve's logs")
	}
}

// TestServeUpstreamFlagErrors: proxy-mode flags that cannot work stop serve
// before it opens anything, with one line saying why.
func TestServeUpstreamFlagErrors(t *testing.T) {
	home := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--upstream", "127.0.0.1:9000"}, "--upstream: bad route: upstream \"127.0.0.1:9000\": want http://"},
		{[]string{"--upstream", "http://127.0.0.1:9000", "--access", "security-directr"}, `unknown access type "security-directr"`},
		{[]string{"--access", "security-director"}, "--access needs --upstream"},
		{[]string{"--pass-authorization"}, "--pass-authorization needs --upstream or --route"},
		{[]string{"--route", "/auth=http://127.0.0.1:9000"}, "the gate answers /auth itself"},
		{[]string{"--route", "/v1=http://127.0.0.1:9000", "--route", "/v1/=http://127.0.0.1:9001"}, "two routes for /v1"},
	} {
		args := append([]string{"serve", "--ssh", "127.0.0.1:0", "--http", "127.0.0.1:0",
			"--authorized-keys", home + "/none", "--host-key", home + "/hk"}, tc.args...)
		_, errOut, code := runBin(t, home+"/db", args...)
		if code == 0 || !strings.Contains(errOut, tc.want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("serve %v: exit %d, stderr %q, want one line with %q", tc.args, code, errOut, tc.want)
		}
	}
}

package main

import (
	"crypto/hmac"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apptokens/apptokens/internal/webhook"
)

// serve refuses webhook flags it cannot use with one line, before it opens
// the database.
func TestServeRefusesBadWebhookFlags(t *testing.T) {
	home := t.TempDir()
	db := filepath.Join(home, "db")
	empty := filepath.Join(home, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	confFile := filepath.Join(home, "config.toml")
	conf := "[serve]\nwebhook = [\"http://127.0.0.1:9/a\", \"http://127.0.0.1:9/b\"]\nwebhook_secret_file = " + strconv.Quote(empty) + "\n"
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--webhook", "http://127.0.0.1:9/hook", "--webhook-secret-file", empty}, "is empty"},
		{[]string{"--webhook", "http://127.0.0.1:9/hook", "--webhook-secret-file", filepath.Join(home, "missing")}, "no such file"},
		{[]string{"--webhook", "127.0.0.1:9/hook"}, "--webhook: webhook URL"},
		{[]string{"--webhook-secret-file", empty}, "--webhook-secret-file needs --webhook"},
		// The same settings from config.toml's [serve] table.
		{[]string{"--config", confFile}, "is empty"},
	} {
		args := append([]string{"serve", "--ssh", "127.0.0.1:0", "--http", "127.0.0.1:0", "--host-key", filepath.Join(home, "hk")}, tc.args...)
		_, errOut, code := runBin(t, db, args...)
		if code == 0 || !strings.Contains(errOut, tc.want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%v: code %d, stderr %q; want one line with %q", tc.args, code, errOut, tc.want)
		}
	}
	if _, err := os.Stat(db); !os.IsNotExist(err) {
		t.Errorf("the database directory was created: %v", err)
	}
}

// The real binary: a token reported at POST /revoke is refused by the next
// /auth, and the receiver given with --webhook gets token.revoked_by_report,
// signed with the key of --webhook-secret-file.
func TestServeRevokeSendsWebhook(t *testing.T) {
	key := "a shared secret"
	events := make(chan webhook.Payload, 10)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if sig := r.Header.Get(webhook.HeaderSignature); !hmac.Equal([]byte(sig), []byte(webhook.Sign([]byte(key), body))) {
			t.Errorf("signature %q over %s", sig, body)
		}
		var p webhook.Payload
		if err := json.Unmarshal(body, &p); err != nil {
			t.Errorf("%s: %v", body, err)
		}
		events <- p
	}))
	defer recv.Close()
	keyFile := filepath.Join(t.TempDir(), "webhook.key")
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, "--webhook", recv.URL+"/apptokens", "--webhook-secret-file", keyFile)
	out, errOut, code := s.ssh("create", "--name", "leaky", "--access", "security-director")
	if code != 0 {
		t.Fatal(errOut)
	}
	tok := strings.TrimSpace(out)
	if r := gateGet(t, s.httpAddr, "/auth", tok); r.StatusCode != 200 {
		t.Fatalf("before the report: %d", r.StatusCode)
	}
	resp, err := http.PostForm("http://"+s.httpAddr+"/revoke", url.Values{"token": {tok}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/revoke: %d", resp.StatusCode)
	}
	if r := gateGet(t, s.httpAddr, "/auth", tok); r.StatusCode != 401 || r.Header.Get("X-Apptokens-Reason") != "inactive_token" {
		t.Fatalf("after the report: %d %v", r.StatusCode, r.Header)
	}
	select {
	case p := <-events:
		if p.Event != "token.revoked_by_report" || p.Token != "leaky" || !strings.Contains(p.Reason, "127.0.0.1") {
			t.Errorf("event %+v", p)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no webhook within 20s")
	}
	if strings.Contains(s.logs.String(), tok) {
		t.Error("the token appears in serve's logs")
	}
}

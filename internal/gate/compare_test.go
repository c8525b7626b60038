package gate

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// TestDeploymentComparison measures the deployments README compares, on
// loopback in one process tree, interleaved round by round so that the
// machine's noise falls on every one alike:
//
//   - nginx → upstream, no auth (testdata/nginx.conf without its auth_request);
//   - nginx auth_request → the gate (testdata/nginx.conf);
//   - Caddy forward_auth → the gate (testdata/Caddyfile);
//   - the gate's proxy mode → upstream (apptokens serve --upstream).
//
// The upstream is a bare Go server in this process; the gate is the real
// binary, one `serve --upstream` that also answers /auth for nginx and Caddy;
// the load is wrk (apt-get install wrk). It prints requests/s and p99 latency
// of each, with the ratio to no auth. It is a measurement, not a check: it runs
// only with APPTOKENS_COMPARE=1 (CI does not set it). Knobs:
// APPTOKENS_COMPARE_TOKENS (tokens in the database, default 100000),
// APPTOKENS_COMPARE_ROUNDS (default 3), APPTOKENS_COMPARE_SECONDS (per run,
// default 5), APPTOKENS_COMPARE_CONNS (wrk connections, default 64).
//
//	APPTOKENS_COMPARE=1 go test -run TestDeploymentComparison -v -timeout 30m ./internal/gate/
func TestDeploymentComparison(t *testing.T) {
	if os.Getenv("APPTOKENS_COMPARE") != "1" {
		t.Skip("a measurement, not a test: set APPTOKENS_COMPARE=1 to run it (needs nginx, caddy and wrk)")
	}
	nginx := needBinary(t, "nginx", "nginx-light")
	caddy := needBinary(t, "caddy", "caddy")
	wrk := needBinary(t, "wrk", "wrk")
	tokens, rounds := envInt(t, "APPTOKENS_COMPARE_TOKENS", 100_000), envInt(t, "APPTOKENS_COMPARE_ROUNDS", 3)
	seconds, conns := envInt(t, "APPTOKENS_COMPARE_SECONDS", 5), envInt(t, "APPTOKENS_COMPARE_CONNS", 64)

	dir := t.TempDir()
	bin := filepath.Join(dir, "apptokens")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/apptokens/apptokens/cmd/apptokens").CombinedOutput(); err != nil {
		t.Fatalf("build apptokens: %v\n%s", err, out)
	}
	env := []string{"HOME=" + dir, "XDG_DATA_HOME=" + filepath.Join(dir, "data"), "XDG_CONFIG_HOME=" + filepath.Join(dir, "config")}
	db := filepath.Join(dir, "db")
	runBin := func(args ...string) string {
		cmd := exec.Command(bin, append([]string{"--db", db}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("apptokens %v: %v", args, err)
		}
		return strings.TrimSpace(string(out))
	}
	start := time.Now()
	runBin("seed", "--tokens", strconv.Itoa(tokens))
	token := runBin("create", "--name", "bench-client", "--access", "security-director")
	t.Logf("seeded %d tokens in %v", tokens+1, time.Since(start).Round(time.Second))

	// The bare upstream.
	upLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"ok"}`)
	})}
	go func() { _ = up.Serve(upLn) }()
	t.Cleanup(func() { _ = up.Close() })
	upstream := upLn.Addr().String()

	// The gate: proxy mode, with /auth for nginx and Caddy on the same listener.
	gateAddr, sshAddr := freeAddr(t), freeAddr(t)
	keys := filepath.Join(dir, "authorized_keys")
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := gossh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keys, gossh.MarshalAuthorizedKey(sshPub), 0o600); err != nil {
		t.Fatal(err)
	}
	startProxy(t, gateAddr, "", env, bin, "--db", db, "serve", "--http", gateAddr, "--ssh", sshAddr,
		"--authorized-keys", keys, "--host-key", filepath.Join(dir, "host_key"),
		"--trusted-proxy", "127.0.0.1/32", "--upstream", "http://"+upstream, "--access", "security-director")

	rig := &proxyRig{gateAddr: gateAddr, upstream: upstream}
	withAuth := rig.config(t, "nginx.conf", confListen)
	var noAuth []string
	for _, line := range strings.Split(withAuth, "\n") {
		if !strings.Contains(line, "auth_request") && !strings.Contains(line, "$token_") && !strings.Contains(line, "$apptokens_") {
			noAuth = append(noAuth, line)
		}
	}
	caddyListen := freeAddr(t)
	caddyConf := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(caddyConf, []byte(rig.config(t, "Caddyfile", caddyListen)), 0o600); err != nil {
		t.Fatal(err)
	}
	startProxy(t, caddyListen, "", env, caddy, "run", "--config", caddyConf, "--adapter", "caddyfile")

	deployments := []struct{ name, base string }{
		{"nginx → upstream (no auth)", "http://" + startBenchNginx(t, nginx, strings.Join(noAuth, "\n"), true)},
		{"nginx auth_request → gate, as in testdata", "http://" + startBenchNginx(t, nginx, withAuth, false)},
		{"nginx auth_request → gate, keep-alive 64", "http://" + startBenchNginx(t, nginx, withAuth, true)},
		{"Caddy forward_auth → gate", "http://" + caddyListen},
		{"gate proxy mode → upstream", "http://" + gateAddr},
	}
	const authRequest, tunedAuthRequest, proxyMode = 1, 2, 4
	const path = "/reports/daily"
	authz := "Authorization: Bearer " + token
	// Each deployment first answers a request as it should, then warms up.
	for _, d := range deployments {
		req, _ := http.NewRequest(http.MethodGet, d.base+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", d.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != `{"status":"ok"}` {
			t.Fatalf("%s: %d %q, want the upstream's answer", d.name, resp.StatusCode, body)
		}
		runWrk(t, wrk, d.base+path, authz, conns, 1)
	}

	results := make([][]wrkResult, len(deployments))
	for round := range rounds {
		for i := range deployments {
			k := (i + round) % len(deployments) // each round starts with the next one
			r := runWrk(t, wrk, deployments[k].base+path, authz, conns, seconds)
			t.Logf("round %d: %-44s %8.0f req/s  p99 %v", round+1, deployments[k].name, r.rps, r.p99)
			results[k] = append(results[k], r)
		}
	}

	var table strings.Builder
	fmt.Fprintf(&table, "wrk -t2 -c%d -d%ds --latency, %d rounds interleaved, median of the rounds; %d tokens; %d CPUs\n\n", conns, seconds, rounds, tokens+1, runtimeCPUs())
	fmt.Fprintf(&table, "| deployment | requests/s | × no auth | p99 latency |\n|---|---|---|---|\n")
	var base float64
	for i, d := range deployments {
		rps, p99 := median(results[i], func(r wrkResult) float64 { return r.rps }), median(results[i], func(r wrkResult) float64 { return float64(r.p99) })
		if i == 0 {
			base = rps
		}
		fmt.Fprintf(&table, "| %s | %.0f | %.2f× | %v |\n", d.name, rps, rps/base, time.Duration(p99).Round(10*time.Microsecond))
	}
	rpsOf := func(i int) float64 { return median(results[i], func(r wrkResult) float64 { return r.rps }) }
	fmt.Fprintf(&table, "\nproxy mode / nginx auth_request: %.2f× (as in testdata), %.2f× (keep-alive 64)\n",
		rpsOf(proxyMode)/rpsOf(authRequest), rpsOf(proxyMode)/rpsOf(tunedAuthRequest))
	t.Log("\n" + table.String())
}

type wrkResult struct {
	rps float64
	p99 time.Duration
}

var (
	wrkRPS    = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkP99    = regexp.MustCompile(`\n\s+99%\s+([0-9.]+)(us|ms|s)\b`)
	wrkErrors = regexp.MustCompile(`Non-2xx or 3xx responses: \d+|Socket errors: [^\n]+`)
)

// runWrk loads url for seconds and returns wrk's requests/s and p99; any
// non-2xx answer or socket error fails the test, as it would flatter the figure.
func runWrk(t *testing.T, wrk, url, header string, conns, seconds int) wrkResult {
	t.Helper()
	out, err := exec.Command(wrk, "-t2", "-c"+strconv.Itoa(conns), "-d"+strconv.Itoa(seconds)+"s", "--latency", "-H", header, url).CombinedOutput()
	if err != nil {
		t.Fatalf("wrk %s: %v\n%s", url, err, out)
	}
	if m := wrkErrors.Find(out); m != nil {
		t.Fatalf("wrk %s: %s\n%s", url, m, out)
	}
	rps, p99 := wrkRPS.FindSubmatch(out), wrkP99.FindSubmatch(out)
	if rps == nil || p99 == nil {
		t.Fatalf("wrk %s: no requests/s or p99 in:\n%s", url, out)
	}
	var r wrkResult
	r.rps, _ = strconv.ParseFloat(string(rps[1]), 64)
	v, _ := strconv.ParseFloat(string(p99[1]), 64)
	unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[string(p99[2])]
	r.p99 = time.Duration(v * float64(unit)).Round(time.Microsecond)
	return r
}

func median(rs []wrkResult, f func(wrkResult) float64) float64 {
	vs := make([]float64, len(rs))
	for i, r := range rs {
		vs[i] = f(r)
	}
	slices.Sort(vs)
	return vs[len(vs)/2]
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive whole number", name, s)
	}
	return n
}

func runtimeCPUs() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "\nprocessor") + 1
}

// startBenchNginx runs nginx with the server block site for a measurement: as
// startNginx, but with a worker per CPU, room for the load's connections and
// no access log (the other deployments keep none). Tuned, it also keeps
// connections to the API (as Caddy and proxy mode do) and as many to the gate
// as the load has.
func startBenchNginx(t *testing.T, nginx, site string, tuned bool) string {
	t.Helper()
	if !strings.Contains(site, "upstream api_backend {") {
		t.Fatal("testdata/nginx.conf has no upstream api_backend block")
	}
	if tuned {
		if site = tuneNginx(site); strings.Count(site, "keepalive 64;") != 2 || !strings.Contains(site, "proxy_set_header Connection \"\";\n        proxy_pass http://api_backend;") {
			t.Fatalf("testdata/nginx.conf changed: the keep-alive tuning no longer applies:\n%s", site)
		}
	}
	return startNginxMain(t, nginx, site)
}

func tuneNginx(site string) string {
	site = regexp.MustCompile(`(upstream api_backend \{\n\s+server [^;]+;)`).ReplaceAllString(site, "$1\n    keepalive 64;")
	site = strings.Replace(site, "keepalive 16;", "keepalive 64;", 1) // to the gate: one per wrk connection
	site = strings.Replace(site, "proxy_pass http://api_backend;", "proxy_http_version 1.1;\n        proxy_set_header Connection \"\";\n        proxy_pass http://api_backend;", 1)
	return site
}

func startNginxMain(t *testing.T, nginx, site string) string {
	t.Helper()
	prefix := t.TempDir()
	listen := freeAddr(t)
	sitePath := filepath.Join(prefix, "apptokens.conf")
	if err := os.WriteFile(sitePath, []byte(strings.ReplaceAll(site, confListen, listen)), 0o600); err != nil {
		t.Fatal(err)
	}
	errorLog := filepath.Join(prefix, "error.log")
	var main strings.Builder
	fmt.Fprintf(&main, "pid %s;\nerror_log %s warn;\nworker_processes auto;\nevents { worker_connections 4096; }\nhttp {\n", filepath.Join(prefix, "nginx.pid"), errorLog)
	fmt.Fprintf(&main, "  access_log off;\n")
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

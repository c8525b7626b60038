package main

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// binPath is the apptokens binary built once for the end-to-end tests.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "apptokens-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "apptokens")
	build := exec.Command("go", "build", "-o", binPath, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build apptokens:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// requireTool skips when a tool is missing, unless APPTOKENS_REQUIRE_E2E=1.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("APPTOKENS_REQUIRE_E2E") == "1" {
			t.Fatalf("%s is required (APPTOKENS_REQUIRE_E2E=1) but not installed", name)
		}
		t.Skipf("%s not installed: skipping end-to-end test (install it, or set APPTOKENS_REQUIRE_E2E=1 to make this fail)", name)
	}
	return p
}

// cleanEnv is the environment for the binary: no database or config from the
// developer's home.
func cleanEnv(home string) []string {
	var env []string
	for _, kv := range withoutCI(os.Environ()) {
		if strings.HasPrefix(kv, "APPTOKENS_DB=") || strings.HasPrefix(kv, "XDG_") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+home, "XDG_DATA_HOME="+filepath.Join(home, "data"), "XDG_CONFIG_HOME="+filepath.Join(home, "config"))
}

// runBin runs the binary with args on db and returns stdout, stderr and exit code.
func runBin(t *testing.T, db string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binPath, append([]string{"--db", db}, args...)...)
	cmd.Env = cleanEnv(t.TempDir())
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// clientKey is an admin's SSH key pair on disk.
type clientKey struct {
	path   string // private key file for ssh -i
	public string // authorized_keys line
	signer gossh.Signer
}

func newClientKey(t *testing.T, dir, name string) clientKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := gossh.MarshalPrivateKey(priv, name)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sshPub, err := gossh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return clientKey{path: path, public: strings.TrimSpace(string(gossh.MarshalAuthorizedKey(sshPub))) + " " + name, signer: signer}
}

// server is a running `apptokens serve`.
type server struct {
	t        *testing.T
	cmd      *exec.Cmd
	db       string
	store    string // --store instead of --db when set
	home     string
	sshAddr  string
	sshPort  string
	httpAddr string
	hostKey  string
	authKeys string
	admin    clientKey
	logs     *syncBuffer
	done     chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
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

var startedRe = regexp.MustCompile(`apptokens serve started.* ssh=(\S+) http=(\S+)`)

// startServe starts serve on random loopback ports over a fresh database (or the
// given one), with one authorized admin key.
func startServe(t *testing.T, extra ...string) *server {
	t.Helper()
	return startServeOn(t, "", extra...)
}

// startServeOn is startServe on the store at url (--store) instead of a
// fresh database; "" is startServe.
func startServeOn(t *testing.T, url string, extra ...string) *server {
	t.Helper()
	requireTool(t, "ssh")
	home := t.TempDir()
	s := &server{t: t, home: home, db: filepath.Join(home, "db"), store: url,
		hostKey: filepath.Join(home, "host_key"), authKeys: filepath.Join(home, "authorized_keys")}
	s.admin = newClientKey(t, home, "admin_key")
	content := "# admins\n\n" + `no-port-forwarding,from="127.0.0.1,::1" ` + s.admin.public + "\n"
	if err := os.WriteFile(s.authKeys, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	s.start(extra...)
	t.Cleanup(s.stop)
	return s
}

func (s *server) start(extra ...string) {
	t := s.t
	t.Helper()
	where := []string{"--db", s.db}
	if s.store != "" {
		where = []string{"--store", s.store}
	}
	args := append(append(where, "serve", "--ssh", "127.0.0.1:0", "--http", "127.0.0.1:0",
		"--host-key", s.hostKey, "--authorized-keys", s.authKeys), extra...)
	s.cmd = exec.Command(binPath, args...)
	s.cmd.Env = cleanEnv(s.home)
	s.logs = &syncBuffer{}
	pr, pw := io.Pipe()
	s.cmd.Stderr = io.MultiWriter(s.logs, pw)
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.done = make(chan struct{})
	go func() {
		_ = s.cmd.Wait()
		pw.Close()
		close(s.done)
	}()
	found := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := startedRe.FindStringSubmatch(sc.Text()); m != nil {
				found <- m
				break
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	select {
	case m := <-found:
		s.sshAddr, s.httpAddr = m[1], m[2]
		s.sshPort = s.sshAddr[strings.LastIndex(s.sshAddr, ":")+1:]
	case <-s.done:
		t.Fatalf("serve exited before starting:\n%s", s.logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not start:\n%s", s.logs.String())
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		s.t.Errorf("serve did not stop within 15 s of SIGTERM:\n%s", s.logs.String())
	}
}

// kill9 kills serve without warning.
func (s *server) kill9() {
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}

// sshArgs are the options for the real OpenSSH client with key.
func (s *server) sshArgs(key clientKey, user string, extra ...string) []string {
	args := []string{"-F", "/dev/null", "-p", s.sshPort, "-i", key.path,
		"-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "StrictHostKeyChecking=no",
		"-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
		"-o", "ConnectTimeout=10"}
	args = append(args, extra...)
	return append(args, user+"@127.0.0.1")
}

// ssh runs a command over the real ssh client as the admin.
func (s *server) ssh(args ...string) (string, string, int) {
	return s.sshAs(s.admin, "admin", args...)
}

func (s *server) sshAs(key clientKey, user string, args ...string) (string, string, int) {
	s.t.Helper()
	cmd := exec.Command("ssh", append(s.sshArgs(key, user), args...)...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		s.t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func execSSH(args []string, command ...string) *exec.Cmd {
	return exec.Command("ssh", append(args, command...)...)
}

package sshd

import (
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

func newPub(t *testing.T) gossh.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := gossh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pk
}

func line(pk gossh.PublicKey) string {
	return strings.TrimSpace(string(gossh.MarshalAuthorizedKey(pk)))
}

func TestKeyringToleratesOptionsAndCommentsAndRereads(t *testing.T) {
	a, b, c := newPub(t), newPub(t), newPub(t)
	path := filepath.Join(t.TempDir(), "authorized_keys")
	content := "# admins\n\n" +
		`from="127.0.0.1",no-pty ` + line(a) + " alice@laptop\n" +
		"garbage line\n" +
		line(b) + "\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := newKeyring(path)
	if err != nil {
		t.Fatal(err)
	}
	local := &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 5555}
	other := &net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 5555}
	if !k.authorized(a, local) || !k.authorized(b, other) || k.authorized(c, local) || k.authorized(nil, local) {
		t.Fatal("wrong keys authorized")
	}
	if k.authorized(a, other) {
		t.Fatal(`from="127.0.0.1" was not honoured`)
	}
	// Removing b and adding c takes effect without a restart.
	if err := os.WriteFile(path, []byte(line(a)+"\n"+line(c)+" carol\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if k.authorized(b, local) || !k.authorized(c, local) {
		t.Fatal("the changed file was not read again")
	}
	// A deleted file authorizes nobody.
	os.Remove(path)
	if k.authorized(a, local) {
		t.Fatal("a key was authorized after the file was removed")
	}
}

func TestKeyringRefusesNoUsableKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "authorized_keys")
	os.WriteFile(path, []byte("# only a comment\n"), 0o600)
	if _, err := newKeyring(path); err == nil || !strings.Contains(err.Error(), "no usable public key in "+path) {
		t.Fatalf("err = %v", err)
	}
	if _, err := newKeyring(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("err = %v", err)
	}
}

func TestHostKeyGeneratedPrivateAndReused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "host_key")
	s1, err := loadOrCreateHostKey(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", fi.Mode(), err)
	}
	if s1.PublicKey().Type() != gossh.KeyAlgoED25519 {
		t.Fatalf("host key type %s", s1.PublicKey().Type())
	}
	s2, err := loadOrCreateHostKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if gossh.FingerprintSHA256(s1.PublicKey()) != gossh.FingerprintSHA256(s2.PublicKey()) {
		t.Fatal("host key not reused")
	}
	os.Chmod(path, 0o644)
	if _, err := loadOrCreateHostKey(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("readable host key: err = %v", err)
	}
}

// authorized is lookup without the entry, for tests.
func (k *keyring) authorized(key gossh.PublicKey, addr net.Addr) bool {
	_, ok := k.lookup(key, addr)
	return ok
}

func TestKeyringOptions(t *testing.T) {
	a := newPub(t)
	ip := func(s string) net.Addr { return &net.TCPAddr{IP: net.ParseIP(s), Port: 22} }
	cases := []struct {
		opts    string
		addr    string
		ok      bool
		command string
		noPTY   bool
	}{
		{``, "192.0.2.1", true, "", false},
		{`from="10.0.0.0/8,!10.9.9.9"`, "10.1.1.1", true, "", false},
		{`from="10.0.0.0/8,!10.9.9.9"`, "10.9.9.9", false, "", false},
		{`from="192.0.2.*"`, "192.0.2.77", true, "", false},
		{`from="192.0.2.*"`, "198.51.100.1", false, "", false},
		{`from="admin.example.com"`, "192.0.2.1", false, "", false},
		{`from="::1"`, "::1", true, "", false},
		{`expiry-time="20200101"`, "192.0.2.1", false, "", false},
		{`expiry-time="29991231235959Z"`, "192.0.2.1", true, "", false},
		{`expiry-time="tomorrow"`, "192.0.2.1", false, "", false},
		{`command="list --json",no-pty`, "192.0.2.1", true, "list --json", true},
		{`command=""`, "192.0.2.1", true, "", false},
		{`from="10.0.0.1/8"`, "10.1.1.1", false, "", false},
		{`from="10.0.0.[1-9]"`, "10.0.0.5", false, "", false},
		{`restrict`, "192.0.2.1", true, "", true},
		{`restrict,pty`, "192.0.2.1", true, "", false},
	}
	for _, c := range cases {
		line := line(a)
		if c.opts != "" {
			line = c.opts + " " + line
		}
		entries := parseAuthorizedKeys([]byte(line + "\n"))
		k := &keyring{now: time.Now, entries: entries, loaded: true, path: writeTemp(t, line+"\n")}
		e, ok := k.lookup(a, ip(c.addr))
		if ok != c.ok {
			t.Errorf("%s from %s: authorized=%v, want %v", c.opts, c.addr, ok, c.ok)
			continue
		}
		if ok && (e.command != c.command || e.noPTY != c.noPTY || e.hasCommand != strings.Contains(c.opts, "command=")) {
			t.Errorf("%s: command %q noPTY %v, want %q %v", c.opts, e.command, e.noPTY, c.command, c.noPTY)
		}
	}
}

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "authorized_keys")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// An edit that keeps the file's size and time stamp is seen all the same.
func TestKeyringSeesSameSizeEdit(t *testing.T) {
	a := newPub(t)
	path := writeTemp(t, `from="10.0.0.5" `+line(a)+"\n")
	k, err := newKeyring(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	at := func(s string) net.Addr { return &net.TCPAddr{IP: net.ParseIP(s), Port: 22} }
	if !k.authorized(a, at("10.0.0.5")) {
		t.Fatal("key not authorized from 10.0.0.5")
	}
	os.WriteFile(path, []byte(`from="10.0.0.6" `+line(a)+"\n"), 0o600)
	os.Chtimes(path, fi.ModTime(), fi.ModTime())
	if k.authorized(a, at("10.0.0.5")) || !k.authorized(a, at("10.0.0.6")) {
		t.Fatal("a same-size edit with the same time stamp was missed")
	}
}

package sshd

import (
	"crypto/ed25519"
	"crypto/rand"
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
	if !k.authorized(a) || !k.authorized(b) || k.authorized(c) || k.authorized(nil) {
		t.Fatal("wrong keys authorized")
	}
	// Removing b and adding c takes effect without a restart.
	time.Sleep(10 * time.Millisecond)
	if err := os.WriteFile(path, []byte(line(a)+"\n"+line(c)+" carol\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if k.authorized(b) || !k.authorized(c) {
		t.Fatal("the changed file was not read again")
	}
	// A deleted file authorizes nobody.
	os.Remove(path)
	if k.authorized(a) {
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

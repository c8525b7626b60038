package sshd

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/charmbracelet/ssh"
	gossh "golang.org/x/crypto/ssh"
)

// loadOrCreateHostKey reads the ed25519 host key at path, generating it (mode
// 0600) on first start. A key that others can read is refused, as sshd does.
func loadOrCreateHostKey(path string) (gossh.Signer, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := generateHostKey(path); err != nil {
			return nil, err
		}
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("read host key: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("host key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("host key %s is accessible by others (mode %04o); run: chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	signer, err := gossh.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("host key %s: %w", path, err)
	}
	return signer, nil
}

func generateHostKey(path string) error {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("generate host key: %w", err)
	}
	block, err := gossh.MarshalPrivateKey(priv, "apptokens host key")
	if err != nil {
		return fmt.Errorf("generate host key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create host key directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write host key: %w", err)
	}
	if err := pem.Encode(f, block); err != nil {
		f.Close()
		return fmt.Errorf("write host key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write host key: %w", err)
	}
	return f.Close()
}

// keyring is the set of admin keys from an OpenSSH authorized_keys file, read
// again whenever the file changes.
type keyring struct {
	path string

	mu      sync.Mutex
	modTime time.Time
	size    int64
	keys    []gossh.PublicKey
}

func newKeyring(path string) (*keyring, error) {
	k := &keyring{path: path}
	keys, err := k.current()
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no usable public key in %s: add an admin's key (a line of ~/.ssh/id_ed25519.pub) to it", path)
	}
	return k, nil
}

// current returns the keys, re-reading the file if it changed since last time.
func (k *keyring) current() ([]gossh.PublicKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	fi, err := os.Stat(k.path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("authorized keys file %s does not exist: create it with an admin's public key (a line of ~/.ssh/id_ed25519.pub)", k.path)
		}
		return nil, fmt.Errorf("authorized keys: %w", err)
	}
	if k.keys != nil && fi.ModTime().Equal(k.modTime) && fi.Size() == k.size {
		return k.keys, nil
	}
	b, err := os.ReadFile(k.path)
	if err != nil {
		return nil, fmt.Errorf("authorized keys: %w", err)
	}
	keys := parseAuthorizedKeys(b)
	k.keys, k.modTime, k.size = keys, fi.ModTime(), fi.Size()
	return keys, nil
}

// parseAuthorizedKeys takes every valid key line, tolerating options, comments,
// blank lines and lines it cannot parse.
func parseAuthorizedKeys(b []byte) []gossh.PublicKey {
	keys := []gossh.PublicKey{}
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		pk, _, _, _, err := gossh.ParseAuthorizedKey(line)
		if err != nil {
			continue
		}
		keys = append(keys, pk)
	}
	return keys
}

// authorized reports whether key is in the file as it is now.
func (k *keyring) authorized(key ssh.PublicKey) bool {
	if key == nil {
		return false
	}
	keys, err := k.current()
	if err != nil {
		return false
	}
	for _, ak := range keys {
		if ssh.KeysEqual(ak, key) {
			return true
		}
	}
	return false
}

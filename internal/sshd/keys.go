package sshd

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/charmbracelet/ssh"
	gossh "golang.org/x/crypto/ssh"

	"github.com/apptokens/apptokens/internal/cidr"
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
	now  func() time.Time

	mu      sync.Mutex
	content []byte
	entries []keyEntry
	loaded  bool
}

// keyEntry is one authorized key with the options apptokens honours:
// from="pattern-list", expiry-time="YYYYMMDD[HHMM[SS]]", command="...",
// no-pty and restrict (which here means no PTY: commands only).
type keyEntry struct {
	key     gossh.PublicKey
	from    []string // patterns; empty: any address
	expires time.Time
	command string // forced command, when hasCommand
	// hasCommand: command= was given, even empty (which, as in OpenSSH, runs nothing).
	hasCommand bool
	noPTY      bool
}

func newKeyring(path string) (*keyring, error) {
	k := &keyring{path: path, now: time.Now}
	entries, err := k.current()
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("no usable public key in %s: add an admin's key (a line of ~/.ssh/id_ed25519.pub) to it", path)
	}
	return k, nil
}

// current returns the entries of the file as it is now. The file is small and
// read at each authentication, so an edit that keeps its size and time stamp is
// still seen; it is parsed again only when its content changed.
func (k *keyring) current() ([]keyEntry, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	b, err := os.ReadFile(k.path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("authorized keys file %s does not exist: create it with an admin's public key (a line of ~/.ssh/id_ed25519.pub)", k.path)
		}
		return nil, fmt.Errorf("authorized keys: %w", err)
	}
	if k.loaded && bytes.Equal(b, k.content) {
		return k.entries, nil
	}
	k.entries, k.content, k.loaded = parseAuthorizedKeys(b), b, true
	return k.entries, nil
}

// parseAuthorizedKeys takes every valid key line, tolerating comments, blank
// lines and lines it cannot parse. A key with an option it cannot honour
// safely (a malformed from= or expiry-time=) is left out: refusing is safer
// than granting more than the file says.
func parseAuthorizedKeys(b []byte) []keyEntry {
	entries := []keyEntry{}
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		pk, _, opts, _, err := gossh.ParseAuthorizedKey(line)
		if err != nil {
			continue
		}
		e, ok := parseOptions(pk, opts)
		if !ok {
			continue
		}
		entries = append(entries, e)
	}
	return entries
}

func parseOptions(pk gossh.PublicKey, opts []string) (keyEntry, bool) {
	e := keyEntry{key: pk}
	for _, o := range opts {
		name, value, hasValue := strings.Cut(o, "=")
		name = strings.ToLower(name)
		if hasValue {
			v, err := strconv.Unquote(value)
			if err != nil {
				v = strings.Trim(value, `"`)
			}
			value = v
		}
		switch name {
		case "from":
			for _, p := range strings.Split(value, ",") {
				if p = strings.TrimSpace(p); p != "" {
					if !validFromPattern(p) {
						return e, false
					}
					e.from = append(e.from, p)
				}
			}
			if len(e.from) == 0 {
				return e, false
			}
		case "expiry-time":
			t, ok := parseExpiry(value)
			if !ok {
				return e, false
			}
			e.expires = t
		case "command":
			e.command, e.hasCommand = value, true
		case "no-pty", "restrict":
			e.noPTY = true
		case "pty":
			e.noPTY = false
		}
	}
	return e, true
}

// parseExpiry reads OpenSSH's YYYYMMDD[HHMM[SS]] (local time, or UTC with a Z suffix).
func parseExpiry(v string) (time.Time, bool) {
	loc := time.Local
	if strings.HasSuffix(v, "Z") || strings.HasSuffix(v, "z") {
		v, loc = v[:len(v)-1], time.UTC
	}
	for _, layout := range []string{"20060102150405", "200601021504", "20060102"} {
		if len(v) == len(layout) {
			t, err := time.ParseInLocation(layout, v, loc)
			return t, err == nil
		}
	}
	return time.Time{}, false
}

// lookup returns the entry for key when it is authorized now from addr.
func (k *keyring) lookup(key ssh.PublicKey, addr net.Addr) (keyEntry, bool) {
	if key == nil {
		return keyEntry{}, false
	}
	entries, err := k.current()
	if err != nil {
		return keyEntry{}, false
	}
	ip := addrIP(addr)
	now := k.now()
	for _, e := range entries {
		if !ssh.KeysEqual(e.key, key) {
			continue
		}
		if !e.expires.IsZero() && !now.Before(e.expires) {
			continue
		}
		if len(e.from) > 0 && !matchFrom(e.from, ip) {
			continue
		}
		return e, true
	}
	return keyEntry{}, false
}

func addrIP(addr net.Addr) netip.Addr {
	if addr == nil {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// validFromPattern accepts what OpenSSH accepts: a CIDR without host bits, or a
// pattern of address or name characters with the wildcards * and ?.
func validFromPattern(p string) bool {
	p = strings.TrimPrefix(p, "!")
	if strings.Contains(p, "/") {
		_, err := cidr.Parse(p) // as serve --trusted-proxy reads it
		return err == nil
	}
	return p != "" && !strings.ContainsAny(p, "[]\\")
}

// matchFrom applies an OpenSSH from= pattern list to an address: wildcards (*, ?)
// and CIDR match the address; a matching negated pattern (!) refuses. Host names
// are not looked up, so a name pattern never matches.
func matchFrom(patterns []string, ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	s := ip.String()
	matched := false
	for _, p := range patterns {
		neg := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(p, "!")
		var ok bool
		if pfx, err := netip.ParsePrefix(p); err == nil {
			ok = pfx.Contains(ip)
		} else {
			ok, _ = path.Match(p, s)
		}
		if ok && neg {
			return false
		}
		matched = matched || ok
	}
	return matched
}

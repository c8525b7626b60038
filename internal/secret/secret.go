// Package secret defines the application token format:
//
//	aptk_ + 40 base62 characters from crypto/rand + 6 base62 characters of CRC32
//
// Parse checks prefix, length, alphabet and checksum without any I/O, so typos
// and junk are refused before a lookup.
package secret

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"math/big"
	"unsafe"
)

const (
	// Prefix starts every token.
	Prefix = "aptk_"
	// RandomLen is the number of random base62 characters.
	RandomLen = 40
	// ChecksumLen is the number of base62 characters of the CRC32.
	ChecksumLen = 6
	// Len is the whole token length.
	Len = len(Prefix) + RandomLen + ChecksumLen

	alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

// Errors returned by Parse; callers branch on them with errors.Is.
var (
	ErrPrefix   = errors.New(`token must start with "aptk_"`)
	ErrLength   = fmt.Errorf("token must be %d characters long", Len)
	ErrAlphabet = errors.New("token may contain only letters and digits after the prefix")
	ErrChecksum = errors.New("token checksum does not match (mistyped or truncated?)")
)

// Digest is the SHA-256 of a token: the only form the store keeps.
type Digest [sha256.Size]byte

// Token is a parsed, checksum-valid token in plain form.
type Token string

// Generate returns a new random token.
func Generate() (Token, error) {
	var body [RandomLen]byte
	max := big.NewInt(int64(len(alphabet)))
	for i := range body {
		n, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", fmt.Errorf("generate token: %w", err)
		}
		body[i] = alphabet[n.Int64()]
	}
	buf := make([]byte, 0, Len)
	buf = append(buf, Prefix...)
	buf = append(buf, body[:]...)
	buf = appendChecksum(buf, body[:])
	return Token(buf), nil
}

// appendChecksum appends the 6-character base62 CRC32 of body.
func appendChecksum(dst, body []byte) []byte {
	sum := crc32.ChecksumIEEE(body)
	var out [ChecksumLen]byte
	for i := ChecksumLen - 1; i >= 0; i-- {
		out[i] = alphabet[sum%62]
		sum /= 62
	}
	return append(dst, out[:]...)
}

// Parse checks s and returns it as a Token. It never does I/O.
func Parse(s string) (Token, error) {
	if err := Check(s); err != nil {
		return "", err
	}
	return Token(s), nil
}

// Check validates the format and checksum of s without allocating.
func Check(s string) error {
	if len(s) < len(Prefix) || s[:len(Prefix)] != Prefix {
		return ErrPrefix
	}
	if len(s) != Len {
		return ErrLength
	}
	for i := len(Prefix); i < Len; i++ {
		if !base62[s[i]] {
			return ErrAlphabet
		}
	}
	body := s[len(Prefix) : len(Prefix)+RandomLen]
	// A read-only view of the string: []byte(body) would be copied to the heap,
	// as ChecksumIEEE's argument escapes. The gate checks every request with this.
	sum := crc32.ChecksumIEEE(unsafe.Slice(unsafe.StringData(body), len(body)))
	for i := Len - 1; i >= Len-ChecksumLen; i-- {
		if s[i] != alphabet[sum%62] {
			return ErrChecksum
		}
		sum /= 62
	}
	return nil
}

// base62 marks the bytes of the alphabet: one predictable table load per
// character, where range comparisons mispredict on random text.
var base62 = func() (set [256]bool) {
	for i := 0; i < len(alphabet); i++ {
		set[alphabet[i]] = true
	}
	return set
}()

// DigestOf returns the SHA-256 digest of a token string. A token-sized string is
// hashed from a stack copy, so the gate's hot path does not allocate.
func DigestOf(s string) Digest {
	var buf [Len]byte
	if len(s) <= len(buf) {
		n := copy(buf[:], s)
		return sha256.Sum256(buf[:n])
	}
	return sha256.Sum256([]byte(s))
}

// Digest returns the SHA-256 digest of the token.
func (t Token) Digest() Digest { return DigestOf(string(t)) }

// Hint returns the non-secret display form: prefix, an ellipsis and the last 4 characters.
func (t Token) Hint() string { return HintOf(string(t)) }

// HintOf returns the hint for a token string.
func HintOf(s string) string {
	if len(s) < Len {
		return Prefix + "…"
	}
	return Prefix + "…" + s[len(s)-4:]
}

// String hides the secret so that a stray %v or log line never prints it.
func (t Token) String() string { return t.Hint() }

// GoString hides the secret from %#v too.
func (t Token) GoString() string { return "secret.Token(" + t.Hint() + ")" }

// Reveal returns the plain token. Call it only to show it once or print it for create.
func (t Token) Reveal() string { return string(t) }

// MarshalText encodes the digest as hex (compact in JSON, unlike a byte array).
func (d Digest) MarshalText() ([]byte, error) {
	out := make([]byte, hex.EncodedLen(len(d)))
	hex.Encode(out, d[:])
	return out, nil
}

// UnmarshalText decodes a hex digest.
func (d *Digest) UnmarshalText(b []byte) error {
	if hex.DecodedLen(len(b)) != len(d) {
		return errors.New("digest: want 64 hex characters")
	}
	_, err := hex.Decode(d[:], b)
	return err
}

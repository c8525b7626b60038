package secret_test

import (
	"errors"
	"fmt"
	"hash/crc32"
	"regexp"
	"strings"
	"testing"

	"github.com/apptokens/apptokens/internal/secret"
)

// formatRE is the token format of DESIGN.md, written out independently of the package.
var formatRE = regexp.MustCompile(`^aptk_[0-9A-Za-z]{46}$`)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// checksumOf is an independent computation of the 6-character base62 CRC32 of body
// (most significant digit first).
func checksumOf(body string) string {
	sum := uint64(crc32.ChecksumIEEE([]byte(body)))
	out := make([]byte, 6)
	for i := 5; i >= 0; i-- {
		out[i] = base62[sum%62]
		sum /= 62
	}
	return string(out)
}

// tokenFrom builds a token around a 40-character body with its correct checksum.
func tokenFrom(body string) string {
	return "aptk_" + body + checksumOf(body)
}

func TestGenerateFormat(t *testing.T) {
	for range 200 {
		tok, err := secret.Generate()
		if err != nil {
			t.Fatal(err)
		}
		s := tok.Reveal()
		if len(s) != 51 || secret.Len != 51 {
			t.Fatalf("generated token has %d characters, want 51", len(s))
		}
		if !formatRE.MatchString(s) {
			t.Fatalf("generated token does not match %s", formatRE)
		}
		if got, want := s[45:], checksumOf(s[5:45]); got != want {
			t.Fatalf("checksum characters differ from an independent CRC32 computation")
		}
		if _, err := secret.Parse(s); err != nil {
			t.Fatalf("generated token refused by Parse: %v", err)
		}
		if tok.Digest() != secret.DigestOf(s) {
			t.Fatal("Token.Digest and DigestOf disagree")
		}
	}
}

func TestGenerateUnique(t *testing.T) {
	const n = 10000
	seen := make(map[string]struct{}, n)
	bodies := make(map[string]struct{}, n)
	for range n {
		tok, err := secret.Generate()
		if err != nil {
			t.Fatal(err)
		}
		s := tok.Reveal()
		if _, dup := seen[s]; dup {
			t.Fatalf("Generate repeated a token after %d tokens", len(seen))
		}
		seen[s] = struct{}{}
		bodies[s[5:45]] = struct{}{}
	}
	if len(bodies) != n {
		t.Fatalf("%d distinct random bodies in %d tokens", len(bodies), n)
	}
}

// TestGenerateUsesWholeAlphabet guards against a biased or truncated alphabet:
// over 1000 tokens (40,000 random characters) every base62 character shows up,
// and none is wildly over- or under-represented.
func TestGenerateUsesWholeAlphabet(t *testing.T) {
	counts := map[rune]int{}
	const n = 1000
	for range n {
		tok, err := secret.Generate()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range tok.Reveal()[5:45] {
			counts[r]++
		}
	}
	mean := n * 40 / 62 // ≈645
	for _, r := range base62 {
		if c := counts[r]; c < mean/2 || c > mean*3/2 {
			t.Errorf("character %q appears %d times in %d random characters (mean %d)", r, c, n*40, mean)
		}
	}
}

func TestParseErrors(t *testing.T) {
	valid := tokenFrom(strings.Repeat("aB3", 13) + "z")
	if len(valid) != 51 || valid[10] == valid[11] {
		t.Fatalf("bad fixture %q", valid)
	}
	flipLast := valid[:50] + string(nextBase62(valid[50]))
	flipBody := valid[:10] + string(nextBase62(valid[10])) + valid[11:]
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"valid", valid, nil},
		{"empty", "", secret.ErrPrefix},
		{"prefix only", "aptk_", secret.ErrLength},
		{"wrong prefix", "aptx_" + valid[5:], secret.ErrPrefix},
		{"upper-case prefix", "APTK_" + valid[5:], secret.ErrPrefix},
		{"no prefix", valid[5:], secret.ErrPrefix},
		{"short prefix", "apt", secret.ErrPrefix},
		{"bearer prefix kept", "Bearer " + valid, secret.ErrPrefix},
		{"leading space", " " + valid, secret.ErrPrefix},
		{"truncated", valid[:50], secret.ErrLength},
		{"one too many", valid + "a", secret.ErrLength},
		{"trailing newline", valid + "\n", secret.ErrLength},
		{"dash in body", valid[:20] + "-" + valid[21:], secret.ErrAlphabet},
		{"underscore in body", valid[:20] + "_" + valid[21:], secret.ErrAlphabet},
		{"non-ASCII byte in body", valid[:20] + "\xff" + valid[21:], secret.ErrAlphabet},
		{"NUL in checksum", valid[:50] + "\x00", secret.ErrAlphabet},
		{"checksum digit changed", flipLast, secret.ErrChecksum},
		{"body character changed", flipBody, secret.ErrChecksum},
		{"two body characters swapped", valid[:10] + valid[11:12] + valid[10:11] + valid[12:], secret.ErrChecksum},
	}
	sentinels := []error{secret.ErrPrefix, secret.ErrLength, secret.ErrAlphabet, secret.ErrChecksum}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := secret.Parse(tt.in)
			checkErr := secret.Check(tt.in)
			if !errors.Is(err, checkErr) {
				t.Errorf("Parse error %v and Check error %v differ", err, checkErr)
			}
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Parse refused a valid token: %v", err)
				}
				if tok.Reveal() != tt.in {
					t.Fatal("Parse changed the token")
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse error = %v, want %v", err, tt.want)
			}
			for _, s := range sentinels {
				if s != tt.want && errors.Is(err, s) {
					t.Errorf("error also matches %v: errors are not distinct", s)
				}
			}
			if tok != "" {
				t.Error("Parse returned a token with an error")
			}
			if strings.Contains(err.Error(), tt.in[min(5, len(tt.in)):]) && len(tt.in) > 8 {
				t.Errorf("error message %q echoes the input", err)
			}
		})
	}
}

func TestErrorsAreDistinct(t *testing.T) {
	errs := []error{secret.ErrPrefix, secret.ErrLength, secret.ErrAlphabet, secret.ErrChecksum}
	msgs := map[string]bool{}
	for i, a := range errs {
		if msgs[a.Error()] {
			t.Errorf("two errors share the message %q", a)
		}
		msgs[a.Error()] = true
		for j, b := range errs {
			if i != j && errors.Is(a, b) {
				t.Errorf("%v matches %v", a, b)
			}
		}
	}
	if !strings.Contains(secret.ErrLength.Error(), "51") {
		t.Errorf("length error %q does not say how long a token is", secret.ErrLength)
	}
}

// TestEverySingleCharacterChangeRefused changes each position of a valid token to
// every other base62 character: CRC32 catches every such change (a burst of at most
// 8 bits), and the 6-digit base62 encoding of the checksum is checked digit by digit.
func TestEverySingleCharacterChangeRefused(t *testing.T) {
	tok, err := secret.Generate()
	if err != nil {
		t.Fatal(err)
	}
	s := tok.Reveal()
	b := []byte(s)
	for i := range b {
		orig := b[i]
		for c := 0; c < 256; c++ {
			if byte(c) == orig {
				continue
			}
			b[i] = byte(c)
			if err := secret.Check(string(b)); err == nil {
				t.Fatalf("token with byte %d changed from %q to %q accepted", i, orig, byte(c))
			}
		}
		b[i] = orig
	}
}

func TestHint(t *testing.T) {
	tok, err := secret.Generate()
	if err != nil {
		t.Fatal(err)
	}
	s := tok.Reveal()
	hint := tok.Hint()
	if want := "aptk_…" + s[47:]; hint != want {
		t.Fatalf("Hint = %q, want %q", hint, want)
	}
	if secret.HintOf(s) != hint {
		t.Fatal("HintOf and Token.Hint disagree")
	}
	// The hint reveals the last 4 characters and nothing else of the body.
	for i := 5; i+5 <= 47; i++ {
		if strings.Contains(hint, s[i:i+5]) {
			t.Fatalf("hint %q contains 5 characters of the secret body", hint)
		}
	}
	if got := secret.HintOf("aptk_abc"); strings.Contains(got, "abc") {
		t.Errorf("hint of a short string %q shows its tail", got)
	}
}

func TestFormattingHidesSecret(t *testing.T) {
	tok, err := secret.Generate()
	if err != nil {
		t.Fatal(err)
	}
	s := tok.Reveal()
	body := s[5:]
	wrapped := struct {
		Name   string
		Secret secret.Token
	}{"x", tok}
	ptr := &tok
	outputs := map[string]string{
		"Sprint":         fmt.Sprint(tok),
		"Sprintln":       fmt.Sprintln(tok),
		"struct %v":      fmt.Sprintf("%v", wrapped),
		"struct %+v":     fmt.Sprintf("%+v", wrapped),
		"struct %#v":     fmt.Sprintf("%#v", wrapped),
		"pointer %v":     fmt.Sprintf("%v", ptr),
		"slice %v":       fmt.Sprintf("%v", []secret.Token{tok}),
		"error wrapping": fmt.Errorf("create failed for %v", tok).Error(),
	}
	for _, verb := range []string{"%v", "%s", "%q", "%x", "%X", "%#v", "%+v", "%10s", "%.60s"} {
		outputs[verb] = fmt.Sprintf(verb, tok)
	}
	hexBody := fmt.Sprintf("%x", body)
	for verb, out := range outputs {
		if strings.Contains(out, body) || strings.Contains(out, hexBody) {
			t.Errorf("%s prints the secret: %q", verb, out)
		}
	}
	if !strings.Contains(outputs["%v"], tok.Hint()) {
		t.Errorf("%%v = %q, want the hint %q", outputs["%v"], tok.Hint())
	}
	if !strings.HasPrefix(outputs["%#v"], "secret.Token(") {
		t.Errorf("%%#v = %q", outputs["%#v"])
	}
}

func TestDigest(t *testing.T) {
	a, err := secret.Generate()
	if err != nil {
		t.Fatal(err)
	}
	b, err := secret.Generate()
	if err != nil {
		t.Fatal(err)
	}
	if a.Digest() == b.Digest() {
		t.Fatal("two tokens share a digest")
	}
	if a.Digest() != secret.DigestOf(a.Reveal()) {
		t.Fatal("digest is not a function of the token text")
	}
	var zero secret.Digest
	if a.Digest() == zero {
		t.Fatal("zero digest")
	}
}

// nextBase62 returns the base62 character after c, wrapping around.
func nextBase62(c byte) byte {
	i := strings.IndexByte(base62, c)
	return base62[(i+1)%62]
}

// TestCheckDoesNotAllocate: the gate checks every request's token with Check and
// DigestOf before any lookup; neither may allocate.
func TestCheckDoesNotAllocate(t *testing.T) {
	tok, err := secret.Generate()
	if err != nil {
		t.Fatal(err)
	}
	s := tok.Reveal()
	bad := s[:50] + string(nextBase62(s[50]))
	var sink secret.Digest
	allocs := testing.AllocsPerRun(200, func() {
		if secret.Check(s) != nil || secret.Check(bad) == nil {
			panic("Check gave the wrong answer")
		}
		sink = secret.DigestOf(s)
	})
	if allocs != 0 {
		t.Errorf("Check + DigestOf allocate %.1f times per call", allocs)
	}
	if sink != tok.Digest() {
		t.Error("digest differs")
	}
}

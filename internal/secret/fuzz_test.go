package secret_test

import (
	"strings"
	"testing"

	"github.com/apptokens/apptokens/internal/secret"
)

// FuzzParse checks that Parse never panics, that whatever it accepts has the
// documented format and a checksum that recomputes, and that a one-character
// change to a freshly generated token is always refused.
func FuzzParse(f *testing.F) {
	valid := tokenFrom(strings.Repeat("0aZ9", 10))
	f.Add(valid, uint8(0), byte('x'))
	f.Add(valid[:50], uint8(50), byte('0'))
	f.Add(valid+"0", uint8(7), byte('-'))
	f.Add("", uint8(0), byte(0))
	f.Add("aptk_", uint8(4), byte('_'))
	f.Add("aptk_"+strings.Repeat("0", 46), uint8(45), byte('1'))
	f.Add("aptk_"+strings.Repeat("é", 23), uint8(30), byte(0xc3))
	f.Add("Bearer "+valid, uint8(255), byte('A'))
	f.Fuzz(func(t *testing.T, s string, pos uint8, c byte) {
		tok, err := secret.Parse(s)
		if err == nil {
			if !formatRE.MatchString(s) {
				t.Fatalf("Parse accepted %q, which does not match %s", s, formatRE)
			}
			if s[45:] != checksumOf(s[5:45]) {
				t.Fatalf("Parse accepted %q with a wrong checksum", s)
			}
			if tok.Reveal() != s {
				t.Fatalf("Parse(%q) returned %q", s, tok.Reveal())
			}
		} else if tok != "" {
			t.Fatalf("Parse(%q) returned a token and an error", s)
		}
		if (err == nil) != (secret.Check(s) == nil) {
			t.Fatalf("Parse and Check disagree on %q", s)
		}
		// The input that is valid by construction must parse, whatever the fuzzer
		// feeds in: build one from the fuzzed string's base62 characters.
		var body []byte
		for i := 0; i < len(s) && len(body) < 40; i++ {
			if strings.IndexByte(base62, s[i]) >= 0 {
				body = append(body, s[i])
			}
		}
		for len(body) < 40 {
			body = append(body, base62[len(body)])
		}
		built := tokenFrom(string(body))
		if _, err := secret.Parse(built); err != nil {
			t.Fatalf("Parse refused the well-formed %q: %v", built, err)
		}

		gen, err := secret.Generate()
		if err != nil {
			t.Fatal(err)
		}
		for _, good := range []string{gen.Reveal(), built} {
			if _, err := secret.Parse(good); err != nil {
				t.Fatalf("Parse refused %q: %v", good, err)
			}
			i := int(pos) % len(good)
			if good[i] == c {
				continue
			}
			changed := good[:i] + string([]byte{c}) + good[i+1:]
			if _, err := secret.Parse(changed); err == nil {
				t.Fatalf("Parse accepted %q: byte %d of %q changed to %q", changed, i, good, c)
			}
		}
	})
}

package store_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/apptokens/apptokens/store"
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9-]{1,32}$`)

// safeMessage reports whether an error message can go onto a terminal as is:
// valid UTF-8 and no control characters.
func safeMessage(msg string) bool {
	if !utf8.ValidString(msg) {
		return false
	}
	for _, r := range msg {
		if dangerous(r) {
			return false
		}
	}
	return true
}

func FuzzValidateName(f *testing.F) {
	for _, s := range []string{
		"", "a", "Feed-1", "my token", "my_token", "a.b", "café", "аpi",
		strings.Repeat("x", 32), strings.Repeat("x", 33), "a\x1b[2J", "\xff", "-", "a\u202eb",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := store.ValidateName(name)
		if want := nameRE.MatchString(name); want != (err == nil) {
			t.Fatalf("ValidateName(%q) = %v, regexp says valid=%v", name, err, want)
		}
		if err == nil {
			return
		}
		if !errors.Is(err, store.ErrInvalidName) {
			t.Fatalf("ValidateName(%q) error %v is not ErrInvalidName", name, err)
		}
		var fe *store.FieldError
		if !errors.As(err, &fe) || fe.Field != "name" {
			t.Fatalf("ValidateName(%q) error %#v is not a name FieldError", name, err)
		}
		if !safeMessage(err.Error()) {
			t.Fatalf("ValidateName(%q) message %q is not safe to print", name, err)
		}
	})
}

// dangerous reports a rune that can act on a terminal or reorder what it shows:
// C0, DEL and C1 controls, the bidi embeddings, overrides and isolates, and the
// Unicode line and paragraph separators. (The bidi marks LRM, RLM and ALM only
// nudge neutral characters and are allowed.)
func dangerous(r rune) bool {
	if r == 0x061c || r == 0x200e || r == 0x200f {
		return false
	}
	return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == 0x2028 || r == 0x2029
}

// descriptionOK is the description rule of DESIGN.md written out independently:
// valid UTF-8, at most 1024 runes, no C0/C1 control or DEL except newline and tab,
// and none of the invisible direction or line-separator controls.
func descriptionOK(d string) bool {
	if !utf8.ValidString(d) || utf8.RuneCountInString(d) > 1024 {
		return false
	}
	for _, r := range d {
		if r == '\n' || r == '\t' {
			continue
		}
		if dangerous(r) {
			return false
		}
	}
	return true
}

func FuzzValidateDescription(f *testing.F) {
	for _, s := range []string{
		"", "plain", "line\nnext\ttab", "esc \x1b[31m", "nul\x00", "bel\a", "csi \u009b", "raw \x9b",
		"cr\r", "del\x7f", "rtl \u202e", "ls \u2028", strings.Repeat("é", 1024), strings.Repeat("é", 1025),
		strings.Repeat("a", 1024) + "\x1b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, d string) {
		err := store.ValidateDescription(d)
		if want := descriptionOK(d); want != (err == nil) {
			t.Fatalf("ValidateDescription(%q) = %v, rule says valid=%v", d, err, want)
		}
		if rem := store.DescriptionRemaining(d); utf8.ValidString(d) && rem != 1024-utf8.RuneCountInString(d) {
			t.Fatalf("DescriptionRemaining = %d for %d runes", rem, utf8.RuneCountInString(d))
		}
		if err == nil {
			return
		}
		if !errors.Is(err, store.ErrInvalidDescription) {
			t.Fatalf("error %v is not ErrInvalidDescription", err)
		}
		var fe *store.FieldError
		if !errors.As(err, &fe) || fe.Field != "description" {
			t.Fatalf("error %#v is not a description FieldError", err)
		}
		if !safeMessage(err.Error()) {
			t.Fatalf("message %q is not safe to print", err)
		}
		if p := store.Printable(d); !safeMessage(p) {
			t.Fatalf("Printable(%q) = %q still holds control characters", d, p)
		}
	})
}

package store

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits of the data rules.
const (
	MaxNameLen        = 32
	MaxDescriptionLen = 1024
)

// Sentinel errors callers branch on with errors.Is.
var (
	ErrInvalidName        = errors.New("invalid name")
	ErrNameTaken          = errors.New("name taken")
	ErrInvalidDescription = errors.New("invalid description")
	ErrInvalidAccess      = errors.New("invalid access type")
	ErrInvalidIP          = errors.New("invalid IP address")
	ErrNotFound           = errors.New("not found")
	ErrLocked             = errors.New("database in use by another process")
	ErrNotEmpty           = errors.New("database not empty")
)

// Holders named by a HeldError.
const (
	HolderServe = "serve"     // apptokens serve
	HolderLocal = "apptokens" // the TUI or a local command
)

// HeldError is an error matching ErrLocked that says who holds the store (the
// Badger engine's *LockedError): HolderServe or HolderLocal when the holder
// said who it is, else "", and the SSH address `serve` announced, if it did
// (control characters escaped).
type HeldError interface {
	error
	HeldBy() (holder, sshAddr string)
}

// FieldError is a refused value: Field names the input ("name", "description",
// "access", "ip"), Error() is the one-line message for the user, and errors.Is
// matches the sentinel in Kind.
type FieldError struct {
	Field string
	Kind  error
	Msg   string
}

func (e *FieldError) Error() string { return e.Msg }
func (e *FieldError) Unwrap() error { return e.Kind }

func fieldErr(field string, kind error, format string, args ...any) error {
	return &FieldError{Field: field, Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// ValidateName checks a token name: 1 to 32 ASCII letters, digits and dashes.
func ValidateName(name string) error {
	if name == "" {
		return fieldErr("name", ErrInvalidName, "name is required")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return fieldErr("name", ErrInvalidName, "name %s may contain only letters, digits and dashes", quote(name))
		}
	}
	if len(name) > MaxNameLen {
		return fieldErr("name", ErrInvalidName, "name is %d characters long; at most %d allowed", len(name), MaxNameLen)
	}
	return nil
}

// ValidateDescription checks a description: at most 1024 runes of valid UTF-8,
// no control characters except newline and tab.
func ValidateDescription(d string) error {
	if !utf8.ValidString(d) {
		return fieldErr("description", ErrInvalidDescription, "description is not valid UTF-8")
	}
	n := 0
	for _, r := range d {
		n++
		if r == '\n' || r == '\t' {
			continue
		}
		if isControl(r) {
			return fieldErr("description", ErrInvalidDescription, "description may not contain control character %U", r)
		}
	}
	if n > MaxDescriptionLen {
		return fieldErr("description", ErrInvalidDescription, "description is %d characters long; at most %d allowed", n, MaxDescriptionLen)
	}
	return nil
}

// DescriptionRemaining is how many more characters the description may take (negative when over).
func DescriptionRemaining(d string) int {
	return MaxDescriptionLen - utf8.RuneCountInString(d)
}

func isControl(r rune) bool {
	return r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) ||
		r == 0x2028 || r == 0x2029 || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069)
}

// validateFields checks every field a new token has, in the order a form shows them.
func validateFields(name, description string, access []Access) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	if err := ValidateDescription(description); err != nil {
		return err
	}
	return ValidateAccess(access)
}

// ValidateAccess checks a non-empty set of known access types without duplicates.
func ValidateAccess(access []Access) error {
	if len(access) == 0 {
		return fieldErr("access", ErrInvalidAccess, "choose at least one access type (security-director, third-party-feeds)")
	}
	seen := map[Access]bool{}
	for _, a := range access {
		if a != AccessSecurityDirector && a != AccessThirdPartyFeeds {
			return fieldErr("access", ErrInvalidAccess, "unknown access type %s (use security-director or third-party-feeds)", quote(string(a)))
		}
		if seen[a] {
			return fieldErr("access", ErrInvalidAccess, "access type %s given twice", a)
		}
		seen[a] = true
	}
	return nil
}

// ParseAccessList parses a comma-separated list such as "security-director,third-party-feeds".
func ParseAccessList(s string) ([]Access, error) {
	var out []Access
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		out = append(out, Access(strings.ToLower(p)))
	}
	if err := ValidateAccess(out); err != nil {
		return nil, err
	}
	return normalizeAccess(out), nil
}

// normalizeAccess orders access types as AllAccess does.
func normalizeAccess(in []Access) []Access {
	out := make([]Access, 0, len(in))
	for _, a := range accessOrder() {
		for _, x := range in {
			if x == a {
				out = append(out, a)
				break
			}
		}
	}
	return out
}

// ParseIP checks and normalizes an IP address ("::ffff:1.2.3.4" becomes "1.2.3.4").
func ParseIP(s string) (string, error) {
	addr, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return "", fieldErr("ip", ErrInvalidIP, "%s is not an IP address", quote(s))
	}
	return addr.Unmap().WithZone("").String(), nil
}

// ClientIP is ParseIP for the address of a client, as usage and blocks record
// it: the unspecified addresses (0.0.0.0, ::), which no client has, are refused
// too (ErrInvalidIP).
func ClientIP(s string) (string, error) {
	ip, err := ParseIP(s)
	if err != nil {
		return "", err
	}
	if addr := netip.MustParseAddr(ip); addr.IsUnspecified() {
		return "", fieldErr("ip", ErrInvalidIP, "%s is not a client's IP address", quote(s))
	}
	return ip, nil
}

// Printable escapes control characters (and invalid UTF-8) so that text from
// outside can be shown on a terminal without acting on it. Newline and tab are
// escaped too: use it for one-line fields.
func Printable(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || isControl(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == utf8.RuneError:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case isControl(r):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func quote(s string) string {
	return `"` + Printable(s) + `"`
}

package cidr

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // the prefix, or the error's text
		err  error
	}{
		{"10.0.0.0/8", "10.0.0.0/8", nil},
		{"127.0.0.1/32", "127.0.0.1/32", nil},
		{"2001:db8::/32", "2001:db8::/32", nil},
		{"192.0.2.7", "192.0.2.7/32", nil},
		{"::ffff:192.0.2.7", "192.0.2.7/32", nil},
		{"2001:db8::1", "2001:db8::1/128", nil},
		// The input: masked silently by --trusted-proxy before.
		{"10.0.0.1/8", "host bits set: write 10.0.0.0/8 for the network, or 10.0.0.1/32 for the one address", ErrHostBits},
		{"2001:db8::1/32", "host bits set: write 2001:db8::/32 for the network, or 2001:db8::1/128 for the one address", ErrHostBits},
		{"10.0.0.0/33", "want a CIDR such as 10.0.0.0/8 or an IP address", ErrInvalid},
		{"10.0.0.0/", "", ErrInvalid},
		{"proxy.example.com", "", ErrInvalid},
		{"fe80::1%eth0", "", ErrInvalid},
		{"", "", ErrInvalid},
	} {
		p, err := Parse(tc.in)
		if tc.err != nil {
			if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse(%q) = %v, %v; want an error %q wrapping %v", tc.in, p, err, tc.want, tc.err)
			}
			continue
		}
		if err != nil || p != netip.MustParsePrefix(tc.want) {
			t.Errorf("Parse(%q) = %v, %v; want %s", tc.in, p, err, tc.want)
		}
	}
}

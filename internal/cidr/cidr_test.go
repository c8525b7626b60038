package cidr

import (
	"errors"
	"net/netip"
	"strconv"
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

func TestCanonical(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"192.0.2.7", "192.0.2.7", ""},
		{"192.0.2.7/32", "192.0.2.7", ""},
		{"::ffff:192.0.2.7", "192.0.2.7", ""},
		{"::ffff:192.0.2.0/120", "192.0.2.0/24", ""},
		{"::ffff:192.0.2.7/128", "192.0.2.7", ""},
		{" 10.0.0.0/8 ", "10.0.0.0/8", ""},
		{"2001:DB8::1/128", "2001:db8::1", ""},
		{"2001:db8::/32", "2001:db8::/32", ""},
		{"::ffff:0:0/95", "::ffff:0:0/95", "host bits set"}, // not an IPv4 range: stays IPv6, and its host bits are refused
		{"10.0.0.1/8", "", "host bits set: write 10.0.0.0/8 for the network, or 10.0.0.1/32 for the one address"},
		{"::ffff:192.0.2.1/120", "", "host bits set: write 192.0.2.0/24"},
		{"fe80::1%eth0/64", "", "want a CIDR"},
		{"nope", "", "want a CIDR"},
	} {
		got, err := Canonical(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || strings.Contains(err.Error(), "\n") {
				t.Errorf("Canonical(%q) = %q, %v; want error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Canonical(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestSetEdges(t *testing.T) {
	s, err := NewSet([]string{
		"192.0.2.0/24",
		"192.0.2.128/25",                       // inside the first: overlapping
		"198.51.100.0/25", "198.51.100.128/25", // adjacent: one range
		"203.0.113.9",
		"2001:db8::/32",
		"::ffff:100.64.0.0/112", // IPv4-mapped: 100.64.0.0/16
		"255.255.255.255",       // the very last address
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Len(); got != 6 {
		t.Errorf("Len = %d, want 6 (overlapping and adjacent ranges merged)", got)
	}
	for _, tc := range []struct {
		ip   string
		want bool
	}{
		{"192.0.1.255", false}, {"192.0.2.0", true}, {"192.0.2.255", true}, {"192.0.3.0", false},
		{"::ffff:192.0.2.0", true}, {"::ffff:192.0.3.0", false},
		{"198.51.100.0", true}, {"198.51.100.127", true}, {"198.51.100.128", true}, {"198.51.100.255", true}, {"198.51.101.0", false},
		{"203.0.113.8", false}, {"203.0.113.9", true}, {"203.0.113.10", false},
		{"2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", false}, {"2001:db8::", true}, {"2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", true}, {"2001:db9::", false},
		{"100.64.0.0", true}, {"100.64.255.255", true}, {"100.65.0.0", false},
		{"255.255.255.255", true}, {"0.0.0.0", false}, {"::", false},
		{"::c000:200", false}, // 192.0.2.0 as an IPv4-compatible (not mapped) address: IPv6
	} {
		if got := s.Contains(netip.MustParseAddr(tc.ip)); got != tc.want {
			t.Errorf("Contains(%s) = %v, want %v", tc.ip, got, tc.want)
		}
	}
	var empty Set
	if empty.Contains(netip.MustParseAddr("192.0.2.1")) {
		t.Error("the empty set contains an address")
	}
	if _, err := NewSet([]string{"10.0.0.0/8", "10.0.0.1/8"}); !errors.Is(err, ErrHostBits) {
		t.Errorf("NewSet with host bits: %v", err)
	}
}

func BenchmarkSetContains(b *testing.B) {
	for _, n := range []int{1, 1000} {
		texts := make([]string, n)
		for i := range texts {
			texts[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 25).String() // gaps between: none merge
		}
		s, err := NewSet(texts)
		if err != nil {
			b.Fatal(err)
		}
		probe := netip.MustParseAddr("10.3.231.77")
		b.Run("ranges="+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				_ = s.Contains(probe)
			}
		})
	}
}

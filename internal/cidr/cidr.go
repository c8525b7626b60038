// Package cidr reads the address ranges operators write (serve
// --trusted-proxy, an authorized_keys from="..." option) in one way, so that
// every place takes or refuses the same text alike.
package cidr

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Errors of Parse, for callers that branch on them.
var (
	// ErrInvalid: the text is neither a CIDR nor an IP address.
	ErrInvalid = errors.New("want a CIDR such as 10.0.0.0/8 or an IP address")
	// ErrHostBits: a CIDR has bits set past its length, such as 10.0.0.1/8.
	ErrHostBits = errors.New("host bits set")
)

// Parse reads a CIDR ("10.0.0.0/8", "2001:db8::/32") or one IP address, which
// is the prefix of that address alone (/32 or /128; an IPv4-mapped IPv6
// address is its IPv4 address). A CIDR with host bits set (10.0.0.1/8) is
// refused, never masked: the writer meant either the network or the one
// address, and only they know which; the error names both. Zones (fe80::1%eth0)
// are refused: no peer address carries one.
//
// Errors wrap ErrInvalid or ErrHostBits and do not repeat s.
func Parse(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, ErrInvalid
		}
		if m := p.Masked(); m != p {
			return netip.Prefix{}, fmt.Errorf("%w: write %s for the network, or %s for the one address",
				ErrHostBits, m, netip.PrefixFrom(p.Addr(), p.Addr().BitLen()))
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, ErrInvalid
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

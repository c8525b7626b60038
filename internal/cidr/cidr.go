// Package cidr reads the address ranges operators write (serve
// --trusted-proxy, an authorized_keys from="..." option) in one way, so that
// every place takes or refuses the same text alike.
package cidr

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
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
// An IPv4-mapped IPv6 prefix of at least /96 is its IPv4 prefix
// (::ffff:192.0.2.0/120 is 192.0.2.0/24).
//
// Errors wrap ErrInvalid or ErrHostBits and do not repeat s.
func Parse(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, ErrInvalid
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			// ::ffff:192.0.2.0/120 is 192.0.2.0/24: the same addresses.
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		} else if a.Zone() != "" {
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

// Canonical is the one text of what Parse reads: a prefix of one address
// (a /32 or /128) is that address alone ("192.0.2.7"), any other prefix is
// the network in CIDR form ("192.0.2.0/24", "2001:db8::/32"). Two inputs
// that cover the same addresses have the same Canonical text. Errors as Parse.
func Canonical(s string) (string, error) {
	p, err := Parse(strings.TrimSpace(s))
	if err != nil {
		return "", err
	}
	return String(p), nil
}

// String is the canonical text of p (see Canonical).
func String(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// Contains reports whether the address or range inner (canonical text, as
// Canonical gives) lies wholly inside outer; false when either does not parse.
func Contains(outer, inner string) bool {
	o, err := Parse(outer)
	if err != nil {
		return false
	}
	i, err := Parse(inner)
	if err != nil {
		return false
	}
	return o.Bits() <= i.Bits() && o.Contains(i.Addr())
}

// Set is a set of addresses given as prefixes, for asking whether one address
// is inside any of them: the prefixes are merged into sorted, disjoint
// ranges, and Contains is a binary search that allocates nothing, however
// many prefixes there are and however they overlap. The zero Set is empty.
// A Set is immutable once built, and safe for concurrent use.
type Set struct {
	v4, v6 []addrRange
}

// addrRange is the addresses from lo to hi, both included.
type addrRange struct{ lo, hi netip.Addr }

// NewSet builds the set of the prefixes in texts (as Parse reads them; the
// canonical forms Canonical gives are what the store keeps). The first text
// that does not parse is refused with Parse's error.
func NewSet(texts []string) (Set, error) {
	var s Set
	for _, t := range texts {
		p, err := Parse(t)
		if err != nil {
			return Set{}, fmt.Errorf("%q: %w", t, err)
		}
		r := addrRange{p.Addr(), lastAddr(p)}
		if r.lo.Is4() {
			s.v4 = append(s.v4, r)
		} else {
			s.v6 = append(s.v6, r)
		}
	}
	s.v4, s.v6 = mergeRanges(s.v4), mergeRanges(s.v6)
	return s, nil
}

// Len is how many disjoint ranges the set holds after merging.
func (s Set) Len() int { return len(s.v4) + len(s.v6) }

// Contains reports whether a is in the set; an IPv4-mapped IPv6 address is
// its IPv4 address, and a zone is ignored.
func (s Set) Contains(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	rs := s.v6
	if a.Is4() {
		rs = s.v4
	}
	// The first range whose end is not before a.
	lo, hi := 0, len(rs)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if rs[m].hi.Less(a) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo < len(rs) && !a.Less(rs[lo].lo)
}

// lastAddr is the last address of the masked prefix p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// mergeRanges sorts rs and merges those that overlap or touch.
func mergeRanges(rs []addrRange) []addrRange {
	if len(rs) < 2 {
		return rs
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].lo.Less(rs[j].lo) })
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if next := last.hi.Next(); next.IsValid() && next.Less(r.lo) {
			out = append(out, r)
			continue
		}
		if last.hi.Less(r.hi) {
			last.hi = r.hi
		}
	}
	return out
}

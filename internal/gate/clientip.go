package gate

import (
	"net/http"
	"net/netip"
	"strings"
)

// proxies is the set of trusted reverse proxies (--trusted-proxy CIDRs).
type proxies []netip.Prefix

func (p proxies) trusted(ip netip.Addr) bool {
	for _, pfx := range p {
		if pfx.Contains(ip) {
			return true
		}
	}
	return false
}

// clientIP is the address a request is counted and blocked under: the socket's
// peer; only when that peer is a trusted proxy, the rightmost X-Forwarded-For
// entry that is not itself a trusted proxy, else X-Real-IP. Never the leftmost
// entry: the client writes that one. The zero Addr means the peer is unknown
// (not a TCP socket).
func (p proxies) clientIP(r *http.Request) netip.Addr {
	peer := parseAddr(r.RemoteAddr)
	if !peer.IsValid() || !p.trusted(peer) {
		return peer
	}
	if ip, ok := p.fromForwardedFor(r.Header["X-Forwarded-For"]); ok {
		return ip
	}
	if ip := parseAddr(strings.TrimSpace(r.Header.Get("X-Real-Ip"))); ip.IsValid() {
		return ip
	}
	return peer
}

// fromForwardedFor walks X-Forwarded-For (all its lines, as one list) from the
// right, past trusted proxies, to the first address that is not one. An entry
// that is not an address stops the walk: everything left of it came from the
// client, unverified.
func (p proxies) fromForwardedFor(lines []string) (netip.Addr, bool) {
	for i := len(lines) - 1; i >= 0; i-- {
		list := lines[i]
		for list != "" {
			var item string
			if j := strings.LastIndexByte(list, ','); j >= 0 {
				list, item = list[:j], list[j+1:]
			} else {
				list, item = "", list
			}
			item = strings.TrimSpace(item)
			if item == "" {
				continue
			}
			ip := parseAddr(item)
			if !ip.IsValid() {
				return netip.Addr{}, false
			}
			if !p.trusted(ip) {
				return ip, true
			}
		}
	}
	return netip.Addr{}, false
}

// parseAddr reads "ip", "ip:port" or "[ip]:port", without a zone, unmapped
// (::ffff:192.0.2.1 is 192.0.2.1). It returns the zero Addr for anything else.
func parseAddr(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone("")
	}
	if ip, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")); err == nil {
		return ip.Unmap().WithZone("")
	}
	return netip.Addr{}
}

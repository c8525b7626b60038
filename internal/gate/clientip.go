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
// entry that is not itself a trusted proxy. Never the leftmost entry: the client
// writes that one. X-Real-IP is believed only when there is no X-Forwarded-For
// at all: a proxy that appends to X-Forwarded-For may pass a client's X-Real-IP
// on untouched. The zero Addr means the peer is unknown (not a TCP socket).
func (p proxies) clientIP(r *http.Request) netip.Addr {
	peer := parseAddr(r.RemoteAddr)
	if !peer.IsValid() || !p.trusted(peer) {
		return peer
	}
	if xff, ok := r.Header["X-Forwarded-For"]; ok {
		return p.fromForwardedFor(xff, peer)
	}
	if ip := parseAddr(strings.TrimSpace(r.Header.Get("X-Real-Ip"))); ip.IsValid() {
		return ip
	}
	return peer
}

// fromForwardedFor walks X-Forwarded-For (all its lines, as one list) from the
// right, starting at peer, past trusted proxies, to the first address that is
// not one. An entry that is not an address stops the walk at the trusted hop
// right of it (the one that wrote the entry): everything left of it is
// unverified. When every entry is a trusted proxy, the leftmost one is the
// client.
func (p proxies) fromForwardedFor(lines []string, peer netip.Addr) netip.Addr {
	last := peer // the last trusted hop walked
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
				return last
			}
			if !p.trusted(ip) {
				return ip
			}
			last = ip
		}
	}
	return last
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

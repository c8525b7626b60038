package gate

import (
	"net/netip"
	"strings"

	"github.com/apptokens/apptokens/internal/secret"
)

// reason is the outcome of a verification, as X-Apptokens-Reason names it.
type reason uint8

const (
	reasonOK reason = iota
	reasonMissingToken
	reasonMalformedToken
	reasonUnknownToken
	reasonInactiveToken
	reasonExpiredToken
	reasonRotatedToken
	reasonIPBlocked
	reasonIPNotAllowed
	reasonInsufficientAccess
	reasonNotFound // not a gate path; never a verdict of verify
	// The token was allowed, but proxy mode's upstream could not be reached or
	// failed to answer (502); never a verdict of verify.
	reasonUpstreamUnavailable
	// POST /revoke from an address past its rate (403); never a verdict of verify.
	reasonRateLimited
)

var reasonNames = [...]string{
	reasonOK:                  "ok",
	reasonMissingToken:        "missing_token",
	reasonMalformedToken:      "malformed_token",
	reasonUnknownToken:        "unknown_token",
	reasonInactiveToken:       "inactive_token",
	reasonExpiredToken:        "expired_token",
	reasonRotatedToken:        "rotated_token",
	reasonIPBlocked:           "ip_blocked",
	reasonIPNotAllowed:        "ip_not_allowed",
	reasonInsufficientAccess:  "insufficient_access",
	reasonNotFound:            "not_found",
	reasonUpstreamUnavailable: "upstream_unavailable",
	reasonRateLimited:         "rate_limited",
}

func (r reason) String() string { return reasonNames[r] }

// verdict is what verify decided. For a request that identified a token
// (ok, inactive, expired, rotated, blocked, not allowed, insufficient
// access), e and x say which.
type verdict struct {
	reason reason
	e      entry
	x      *index
}

func (v *verdict) identified() bool { return v.x != nil }

// bearer returns the credentials of an "Authorization: Bearer <token>" header
// value (scheme case-insensitive); ok is false for no header or another scheme.
func bearer(authz string) (token string, ok bool) {
	const scheme = "bearer"
	if len(authz) < len(scheme) || !strings.EqualFold(authz[:len(scheme)], scheme) {
		return "", false
	}
	rest := authz[len(scheme):]
	if rest == "" {
		return "", true
	}
	if rest[0] != ' ' && rest[0] != '\t' {
		return "", false // "Bearerxyz" is some other scheme
	}
	start, end := 0, len(rest)
	for start < end && (rest[start] == ' ' || rest[start] == '\t') {
		start++
	}
	for end > start && (rest[end-1] == ' ' || rest[end-1] == '\t') {
		end--
	}
	return rest[start:end], true
}

// verify decides a request from its Authorization header, the access it needs
// (0: any) and the client IP, at now (unix nanoseconds). It reads only memory:
// the format is checked before any hashing or lookup, then the index snapshot.
// The checks go in the contract's order: unknown, inactive, expired, the
// previous secret past its grace window, blocked address or range, outside
// the allow-list, access. A request without a client IP (not a TCP peer)
// passes no allow-list.
func (g *Gate) verify(authz string, need accessSet, ip netip.Addr, now int64) verdict {
	tok, ok := bearer(authz)
	if !ok {
		return verdict{reason: reasonMissingToken}
	}
	if secret.Check(tok) != nil {
		return verdict{reason: reasonMalformedToken}
	}
	x := g.current()
	e, found := x.lookup(secret.DigestOf(tok))
	if !found {
		return verdict{reason: reasonUnknownToken}
	}
	v := verdict{e: e, x: x}
	switch {
	case v.e.flags&flagActive == 0:
		v.reason = reasonInactiveToken
	case x.expired(&v.e, now) && !g.usedAfter(x.id(&v.e), now-x.inactiveAfter):
		// Expired by the index, and no use the index has yet to learn of
		// (rare: only tokens actually past the policy get here).
		v.reason = reasonInactiveToken
		g.nudgeSweep()
	case v.e.expires != 0 && now >= v.e.expires:
		v.reason = reasonExpiredToken
	case v.e.flags&flagOldSecret != 0 && now >= v.e.until:
		v.reason = reasonRotatedToken
	case v.e.flags&(flagBlocked|flagRules) != 0:
		v.reason = x.network(&v.e, ip.Unmap())
		if v.reason == reasonOK && v.e.access&need != need {
			v.reason = reasonInsufficientAccess
		}
	case v.e.access&need != need:
		v.reason = reasonInsufficientAccess
	}
	return v
}

// network checks ip against the blocked addresses and ranges and the
// allow-list of the token e: reasonOK, reasonIPBlocked or reasonIPNotAllowed.
// ip is unmapped.
func (x *index) network(e *entry, ip netip.Addr) reason {
	if !ip.IsValid() {
		if e.flags&flagAllow != 0 {
			return reasonIPNotAllowed
		}
		return reasonOK
	}
	if e.flags&flagBlocked != 0 && x.isBlocked(e.slot, ip) {
		return reasonIPBlocked
	}
	if e.flags&flagRules == 0 {
		return reasonOK
	}
	n := u128Of(ip)
	block := x.spans[e.spanOff : e.spanOff+e.nBlock]
	if in(block, n) {
		return reasonIPBlocked
	}
	if e.flags&flagAllow != 0 {
		start := e.spanOff + e.nBlock
		if !in(x.spans[start:start+uint32(e.nAllow)], n) {
			return reasonIPNotAllowed
		}
	}
	return reasonOK
}

package gate

import (
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/apptokens/apptokens/internal/secret"
)

// Limits of POST /revoke.
const (
	// maxRevokeBody bounds a report's body: "token=" and a 51-character
	// token, with room for RFC 7009's token_type_hint. A larger body is not
	// read, and reports nothing.
	maxRevokeBody = 4 << 10
	// reportBurst reports are taken from one address within reportWindow;
	// the next is refused with rate_limited until the window has room again.
	reportBurst  = 100
	reportWindow = time.Minute
	// maxReporters bounds the addresses the limiter remembers, so that a
	// flood from many addresses cannot grow its memory without bound (at
	// most reportBurst times of 8 bytes each: 13 MiB at worst).
	maxReporters = 1 << 14
)

// revoke answers POST /revoke (RFC 7009 style): a form body token=<secret>
// reports a leaked token, which the store deactivates at once (audited as
// revoked_by_report with the reporter's address). The answer is the same 200,
// with no body, whether the token existed, was already inactive, or was junk:
// it tells nothing. Only the checksum is checked here; a token that passes it
// goes to the store. Reports are limited per client address (IPv6 by /64):
// the reportBurst+1st within reportWindow is 403 rate_limited, and revokes
// nothing. A report the store
// could not write (a full disk, etcd without quorum) is 403 degraded, so the
// reporter knows to try again.
func (g *Gate) revoke(w http.ResponseWriter, r *http.Request) {
	ip := g.proxies.clientIP(r)
	if !g.reports.allow(ip, g.now()) {
		v := verdict{reason: reasonRateLimited}
		g.metrics.count(v.reason, pathRevoke)
		g.answer(w, &v, 0, "")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxRevokeBody)
	var tok string
	if err := r.ParseForm(); err == nil {
		tok = r.PostForm.Get("token")
	}
	if secret.Check(tok) == nil {
		reporter := "none"
		if ip.IsValid() {
			reporter = ip.String()
		}
		// found is not looked at: the answer is the same either way.
		if _, err := g.store.RevokeByReport(secret.DigestOf(tok), reporter); err != nil {
			g.log.Error("gate: a token reported at /revoke could not be deactivated", "hint", secret.HintOf(tok), "reporter", reporter, "err", err)
			h := w.Header()
			h[headerReason] = []string{"degraded"}
			h["Cache-Control"] = []string{"no-store"}
			h["Content-Type"] = []string{"application/json"}
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`{"error":"degraded"}` + "\n"))
			return
		}
		// The deactivation is committed: the next request sees it (verify
		// applies the feed first), on this node and, through the engine's
		// feed, on every other.
	}
	g.metrics.count(reasonOK, pathRevoke)
	h := w.Header()
	h[headerReason] = []string{reasonNames[reasonOK]}
	h["Cache-Control"] = []string{"no-store"}
	w.WriteHeader(http.StatusOK)
}

// reportLimiter limits reports per address: it keeps the times of each
// address's reports within the last reportWindow (at most reportBurst), and
// refuses one more while it has reportBurst. An address with no report in the
// window is as good as unknown, and is what the limiter forgets first when
// it is full.
type reportLimiter struct {
	mu        sync.Mutex
	times     map[[16]byte][]int64 // unix nanoseconds, oldest first
	lastPrune int64
}

// reporterKey is the address a report is counted under: an IPv4 address, or
// an IPv6 address's /64 (one host commonly holds a whole /64).
func reporterKey(ip netip.Addr) [16]byte {
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.Addr().As16()
	}
	return ip.As16()
}

// allow reports whether a report from ip at now (unix nanoseconds) is within
// its rate, and counts it if so.
func (l *reportLimiter) allow(ip netip.Addr, now int64) bool {
	k := reporterKey(ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.times == nil {
		l.times = map[[16]byte][]int64{}
	}
	times, known := l.times[k]
	cut := 0
	for cut < len(times) && times[cut] <= now-int64(reportWindow) {
		cut++
	}
	times = times[cut:]
	if len(times) >= reportBurst {
		l.times[k] = times
		return false
	}
	if !known && len(l.times) >= maxReporters {
		l.makeRoom(now)
	}
	if cap(times) == len(times) && len(times) > 0 {
		// Copy rather than let append keep the dropped times' memory.
		times = append(make([]int64, 0, min(2*len(times), reportBurst)), times...)
	}
	l.times[k] = append(times, now)
	return true
}

// makeRoom forgets the addresses with no report in the window (at most once a
// second: a scan reads every address), else one address at random: its next
// reports start afresh, which a flood from many addresses gains nothing from.
func (l *reportLimiter) makeRoom(now int64) {
	if now-l.lastPrune >= int64(time.Second) {
		l.lastPrune = now
		for k, times := range l.times {
			if times[len(times)-1] <= now-int64(reportWindow) {
				delete(l.times, k)
			}
		}
	}
	for k := range l.times {
		if len(l.times) < maxReporters {
			break
		}
		delete(l.times, k)
	}
}

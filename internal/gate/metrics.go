package gate

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metricPath is the access path a request was checked for, as the
// apptokens_gate_requests_total "path" label names it: a small fixed set, so
// that no path a client makes up becomes a label value.
type metricPath uint8

const (
	pathAuth metricPath = iota
	pathSecurityDirector
	pathThirdPartyFeeds
	pathOther // an /auth/ path naming no access type, or no gate path at all (not_found)
	pathRevoke
	numPaths
)

var pathNames = [numPaths]string{
	pathAuth:             "/auth",
	pathSecurityDirector: "/auth/security-director",
	pathThirdPartyFeeds:  "/auth/third-party-feeds",
	pathOther:            "other",
	pathRevoke:           "/revoke",
}

// pathOf is the path label of a check for need (route's need; the
// middleware's access counts as the /auth path of that access).
func pathOf(need accessSet) metricPath {
	switch need {
	case 0:
		return pathAuth
	case accessSecurityDirector:
		return pathSecurityDirector
	case accessThirdPartyFeeds:
		return pathThirdPartyFeeds
	}
	return pathOther
}

// Sweep results, as apptokens_sweeps_total's "result" label names them.
const (
	sweepNone        = iota // the sweep changed no token
	sweepDeactivated        // tokens were changed: inactivated, expired, deleted, or a rotation ended
	sweepFailed             // the store refused the flush or the sweep
	numSweepResults
)

var sweepResultNames = [numSweepResults]string{"none", "deactivated", "failed"}

// sampleVerify picks the requests whose verification is timed: about one in
// 8, by bits of the start time in nanoseconds, so that timing costs no shared
// counter. A clock read costs about 60 ns, a tenth of a verification: timing
// every request would cost the gate more than the 5% the metrics may.
func sampleVerify(now int64) bool { return (now>>6)&7 == 0 }

// verifyBuckets are the upper bounds of apptokens_gate_verify_duration_seconds:
// a verification takes about a microsecond, so the buckets go from 250 ns to
// about 4 ms by factors of 4.
var verifyBuckets = prometheus.ExponentialBuckets(250e-9, 4, 9)

// flushBuckets are the upper bounds of apptokens_usage_flush_duration_seconds:
// 1 ms to about 16 s.
var flushBuckets = prometheus.ExponentialBuckets(1e-3, 4, 8)

// metrics are a gate's Prometheus metrics. Every per-request series is
// resolved here, once: a request costs an index into a fixed array and atomic
// increments, never a map lookup or an allocation.
type metrics struct {
	requests    [len(reasonNames)][numPaths]prometheus.Counter
	verify      prometheus.Histogram
	flush       prometheus.Histogram
	reloads     prometheus.Counter
	sweeps      [numSweepResults]prometheus.Counter
	sweptTokens prometheus.Counter
	monoStart   time.Time // verify latency is time.Since of this, a monotonic read
}

// newMetrics makes g's metrics and registers them in reg. Gauges (pending
// pairs, index size and lag) are read at scrape time.
func newMetrics(g *Gate, reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{monoStart: time.Now()}
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "apptokens_gate_requests_total",
		Help: "Requests answered by the token gate, by X-Apptokens-Reason and access path (/auth, /auth/security-director, /auth/third-party-feeds, /revoke, other).",
	}, []string{"reason", "path"})
	for r := range m.requests {
		for p := range m.requests[r] {
			m.requests[r][p] = requests.WithLabelValues(reasonNames[r], pathNames[p])
		}
	}
	m.verify = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "apptokens_gate_verify_duration_seconds",
		Help:    "Time to verify a request's token in memory (header, checksum, digest, index lookup, state, block and access checks), for a sample of about one request in 8.",
		Buckets: verifyBuckets,
	})
	m.flush = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "apptokens_usage_flush_duration_seconds",
		Help:    "Time to write the usage counted in memory to the store, per flush.",
		Buckets: flushBuckets,
	})
	m.reloads = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "apptokens_feed_reloads_total",
		Help: "Times the gate re-read every token because the change feed said reload (restore, seed, overflow) or an apply failed.",
	})
	sweeps := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "apptokens_sweeps_total",
		Help: "Lifecycle sweeps run, by result: none (no token changed), deactivated (tokens inactivated, expired, deleted, or a rotation's grace window ended), failed.",
	}, []string{"result"})
	for r := range m.sweeps {
		m.sweeps[r] = sweeps.WithLabelValues(sweepResultNames[r])
	}
	m.sweptTokens = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "apptokens_sweep_deactivated_tokens_total",
		Help: "Tokens the inactivity sweep deactivated.",
	})
	collectors := []prometheus.Collector{
		requests, m.verify, m.flush, m.reloads, sweeps, m.sweptTokens,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "apptokens_usage_pending_pairs",
			Help: "(token, IP) pairs counted in memory and waiting for the next usage flush.",
		}, func() float64 { return float64(g.usage.pairs.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "apptokens_usage_dropped_requests_total",
			Help: "Requests whose usage was not counted because too many (token, IP) pairs were waiting to be written.",
		}, func() float64 { return float64(g.usage.droppedTotal.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "apptokens_index_tokens",
			Help: "Tokens in the gate's in-memory index.",
		}, func() float64 { return float64(g.idx.Load().size()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "apptokens_index_version_lag",
			Help: "Store change-feed versions published but not yet applied to the gate's index.",
		}, func() float64 {
			// Index first: the feed version only grows, so the lag is never negative.
			applied := g.idx.Load().version
			return float64(g.store.FeedVersion() - applied)
		}),
	}
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// count records one answer.
func (m *metrics) count(r reason, p metricPath) {
	if m != nil {
		m.requests[r][p].Inc()
	}
}

// since is the monotonic time since the metrics were made, for latencies.
func (m *metrics) since() time.Duration { return time.Since(m.monoStart) }

// size counts the live tokens of x: base, plus the tokens recent adds, minus
// the ones it deletes. It reads recent (at most maxRecent entries) at scrape
// time, never on a request.
func (x *index) size() int {
	n := len(x.base) - x.olds // a previous secret is no token of its own
	for d, e := range x.recent {
		_, inBase := x.base[d]
		// x.olds counts the live previous secrets wherever they are: count
		// every live entry here, as base's are.
		switch live := e.flags&flagLive != 0; {
		case live && !inBase:
			n++
		case !live && inBase:
			n--
		}
	}
	return n
}

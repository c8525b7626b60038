// Package gate is the HTTP token gate: it checks `Authorization: Bearer` tokens
// for an API, as a forward-auth endpoint (nginx auth_request, Caddy forward_auth,
// Traefik ForwardAuth, Envoy ext_authz) or as Go middleware.
//
// Verification reads only memory: an immutable index of every token (digest to
// state, access and blocked IPs) behind an atomic pointer, rebuilt or patched from
// the store's change feed. Before using the index a request compares its version
// with the store's feed version; when a commit has not been applied yet, the
// request applies it first, so a deactivation or a block is refused by the very
// next request after the commit returns. Every change carries the state it sets
// (the token's fields, an address and its block, a new last-used time), so
// applying one reads nothing from the store; only a reload (restore, seed) reads
// everything again. Usage is
// counted in memory per (token, client IP), up to a bound, and written to the
// store in batches.
package gate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/apptokens/apptokens/store"
)

// Defaults of Config.
const (
	DefaultFlushInterval = time.Second
	DefaultSweepInterval = time.Minute
)

// Config configures a Gate.
type Config struct {
	// Store is the token store; the gate subscribes to its change feed.
	Store *store.Store
	// TrustedProxies are the reverse proxies whose X-Forwarded-For and X-Real-IP
	// headers are believed (--trusted-proxy).
	TrustedProxies []netip.Prefix
	// FlushInterval is how often usage counts are written; default 1s.
	FlushInterval time.Duration
	// Logger receives the gate's logs (never a token); nil discards them.
	Logger *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// SweepInterval is how often the store's lifecycle sweep runs
	// (store.Sweep: inactivity, expiry, auto-delete, rotation grace windows,
	// warnings); default 1m.
	SweepInterval time.Duration
	// Metrics is where the gate registers its Prometheus metrics (a registry
	// of this serve, never the global default one); nil keeps none, and
	// requests then count nothing.
	Metrics prometheus.Registerer
	// MetricsHandler is served at GET /metrics by Handler (promhttp over the
	// same registry); nil: /metrics is not_found, as when serve --metrics puts
	// it on another address.
	MetricsHandler http.Handler
}

// sweepActor is who the audit trail names for the inactivity sweep.
var sweepActor = store.Actor{User: "inactivity-policy"}

// Gate verifies bearer tokens against an in-memory index of the store.
type Gate struct {
	store      *store.Store
	proxies    proxies
	log        *slog.Logger
	now        func() int64 // unix nanoseconds
	clock      *wallClock   // nil when Config.Now is the clock
	flushEvery time.Duration
	sweepEvery time.Duration
	sweepGap   time.Duration // least time between sweeps asked for by requests, on the gate's clock

	idx            atomic.Pointer[index]
	usage          usage
	reports        reportLimiter // POST /revoke per client address
	metrics        *metrics      // nil: no metrics
	metricsHandler http.Handler
	sweep          chan struct{} // a request saw a token the policy has made Inactive
	// storeReads counts reads of tokens from the store (rebuilds and admin
	// changes): tests and benchmarks check that usage flushes cause none.
	storeReads atomic.Uint64
	// sweeps counts the inactivity sweeps run, for tests.
	sweeps atomic.Uint64

	healthCache healthCache

	warnMu       sync.Mutex
	lastDropWarn int64 // when dropped usage was last logged, unix nanoseconds on the gate's clock

	flushMu sync.Mutex // one flush at a time: inflight is its own
	// inflight is the kept uses (see usageShard.used) of the flush under way,
	// until the index has applied it.
	inflight atomic.Pointer[map[string]int64]

	mu     sync.Mutex // serializes appliers; guards the fields below
	sub    *store.Subscription
	byID   map[string]keys
	broken bool // the last apply failed: rebuild everything at the next chance
}

// New builds the index from the store and subscribes to its change feed. Call
// Run to keep usage flowing to the store.
func New(cfg Config) (*Gate, error) {
	if cfg.Store == nil {
		return nil, errors.New("gate: no store")
	}
	g := &Gate{
		store:      cfg.Store,
		proxies:    proxies(cfg.TrustedProxies),
		log:        cfg.Logger,
		flushEvery: cfg.FlushInterval,
		sweepEvery: cfg.SweepInterval,
		sweepGap:   minSweepGap,
		sweep:      make(chan struct{}, 1),

		metricsHandler: cfg.MetricsHandler,
	}
	g.usage.limit = maxPendingPairs
	if g.log == nil {
		g.log = slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError + 1}))
	}
	if cfg.Now != nil {
		g.now = func() int64 { return cfg.Now().UnixNano() }
	} else {
		g.clock = newWallClock()
		g.now = g.clock.now
	}
	if g.flushEvery <= 0 {
		g.flushEvery = DefaultFlushInterval
	}
	if g.sweepEvery <= 0 {
		g.sweepEvery = DefaultSweepInterval
	}
	for _, p := range cfg.TrustedProxies {
		if !p.IsValid() {
			return nil, fmt.Errorf("gate: invalid trusted proxy prefix %v", p)
		}
	}
	if cfg.Metrics != nil {
		m, err := newMetrics(g, cfg.Metrics)
		if err != nil {
			return nil, fmt.Errorf("gate: metrics: %w", err)
		}
		g.metrics = m
	}
	// Subscribe before reading the version, and read it before the snapshot: a
	// commit missing from the snapshot then moves the version past the index's.
	g.sub = g.store.Subscribe()
	if err := g.rebuildLocked(); err != nil {
		g.sub.Close()
		return nil, err
	}
	return g, nil
}

// current is the index to verify with, with every published commit applied.
func (g *Gate) current() *index {
	x := g.idx.Load()
	if x.version != g.store.FeedVersion() {
		x = g.catchUp()
	}
	return x
}

// catchUp applies the changes waiting on the feed and returns the new index.
func (g *Gate) catchUp() *index {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.applyLocked(); err != nil {
		g.log.Error("gate: cannot read token changes; serving the last known state until the next retry", "err", err)
	}
	return g.idx.Load()
}

func (g *Gate) rebuildLocked() error {
	if g.metrics != nil && g.idx.Load() != nil { // not the first build
		g.metrics.reloads.Inc()
	}
	v := g.store.FeedVersion()
	g.sub.Take() // everything up to v is in the snapshot below
	g.storeReads.Add(1)
	entries, err := g.store.GateEntries()
	if err != nil {
		return fmt.Errorf("gate: read tokens: %w", err)
	}
	g.byID = make(map[string]keys, len(entries))
	g.idx.Store(build(entries, g.store.InactiveAfter(), v, g.byID))
	g.broken = false
	return nil
}

// applyLocked brings the index up to the store's feed version: the version is
// read first, then the waiting changes are taken, so every change published up
// to that version is among them (or was applied before).
func (g *Gate) applyLocked() error {
	x := g.idx.Load()
	v := g.store.FeedVersion()
	if v == x.version && !g.broken {
		return nil
	}
	changes, reload := g.sub.Take()
	if reload || g.broken {
		return g.markBroken(g.rebuildLocked())
	}
	ed := newEditor(x, g.byID)
	// Each change carries the state it sets: applying it reads nothing.
	for _, c := range changes {
		switch c.Kind {
		case store.ChangeReload:
			return g.markBroken(g.rebuildLocked())
		case store.ChangePolicy:
			ed.x.inactiveAfter = int64(c.InactiveAfter)
		case store.ChangeDeleted:
			ed.remove(c.TokenID)
		case store.ChangeUsed:
			// The gate's own flush: only the last-used time moved.
			if !c.LastUsedAt.IsZero() {
				ed.used(c.TokenID, c.LastUsedAt.UnixNano())
			}
		case store.ChangeToken:
			if c.Token == nil {
				return g.markBroken(g.rebuildLocked())
			}
			ed.token(c.Token)
		case store.ChangeUsage:
			ed.block(c.TokenID, c.IP, c.Blocked)
		case store.ChangeAllowed:
			if c.Token != nil {
				ed.token(c.Token)
			} else if k, ok := ed.byID[c.TokenID]; ok {
				if e, live := ed.x.lookup(k.cur); live {
					ed.allow(c.TokenID, &e, c.Allowed)
				}
			}
		}
	}
	g.idx.Store(ed.done(v))
	return nil
}

func (g *Gate) markBroken(err error) error {
	if err != nil {
		g.broken = true
		next := *g.idx.Load()
		next.version = g.store.FeedVersion()
		g.idx.Store(&next)
	}
	return err
}

// nudgeSweep asks the sweeper to deactivate expired tokens now rather than at
// its next tick, so the audit trail says when the policy took a token.
func (g *Gate) nudgeSweep() {
	select {
	case g.sweep <- struct{}{}:
	default:
	}
}

// Run keeps the gate current and its usage flowing until ctx is done: it applies
// the change feed as it comes, flushes usage every FlushInterval, and runs the
// inactivity sweep every SweepInterval while this node leads the sweeps
// (store.Store.Lead: always, on an engine of one process). When ctx is done it
// flushes usage one last time and returns that flush's error: stop serving
// requests first, and close the store only after Run has returned.
func (g *Gate) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { g.follow(ctx) })
	// The sweeps change tokens for every node: one node of a cluster runs
	// them at a time (the store's election; with one process, this one).
	wg.Go(func() {
		if err := g.store.Lead(ctx, "sweep", g.sweepLoop); err != nil {
			g.log.Error("gate: the sweeps' election failed; this node will not sweep", "err", err)
		}
	})
	tick := time.NewTicker(g.flushEvery)
	defer tick.Stop()
	noSpace := false // flushes refused for a full disk: said once, not every second
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return g.Flush()
		case <-tick.C:
			if g.clock != nil {
				g.clock.sync()
			}
			err := g.Flush()
			switch {
			case err == nil && noSpace:
				noSpace = false
				g.log.Info("gate: usage written again")
			case errors.Is(err, store.ErrNoSpace) && noSpace:
			case errors.Is(err, store.ErrNoSpace):
				noSpace = true
				g.log.Error("gate: usage kept in memory until space is freed", "err", err, "max_pairs", g.usage.limit)
			case err != nil:
				g.log.Error("gate: usage not written; will retry", "err", err)
			}
			// Cheap when the index is current; rebuilds a broken one.
			g.catchUp()
		}
	}
}

// follow applies the change feed as soon as it signals, so that requests rarely
// find the index behind.
func (g *Gate) follow(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-g.sub.C():
			if !ok {
				return // the store is closed
			}
			g.catchUp()
		}
	}
}

// minSweepGap bounds how often requests for expired tokens can trigger a sweep.
const minSweepGap = time.Second

// sweepLoop prunes old usage history and runs the inactivity sweep at start, every SweepInterval, and when a
// request met a token the policy has made Inactive (at most once per sweepGap).
// The gap is measured on the gate's clock (Config.Now), the one verify and the
// store judge inactivity by.
func (g *Gate) sweepLoop(ctx context.Context) {
	tick := time.NewTicker(g.sweepEvery)
	defer tick.Stop()
	for {
		g.pruneHistory()
		g.expire()
		last := g.now()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-g.sweep:
			if wait := int64(g.sweepGap) - (g.now() - last); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Duration(wait)):
				}
			}
		}
	}
}

// pruneHistory drops the usage history older than the store keeps
// (store.HistoryRetention); the store makes it a no-op within an hour.
func (g *Gate) pruneHistory() {
	if _, err := g.store.PruneHistory(); err != nil {
		g.log.Error("gate: old usage history not pruned; will retry", "err", err)
	}
}

// expire runs the store's lifecycle sweep (store.Sweep): inactivity, expiry,
// auto-delete, the end of rotation grace windows, and the warnings before a
// token stops working. When a token of the index is unused for as long as a
// policy allows, the usage counted here is written first, so that the store
// judges inactivity and auto-deletion by the last uses; otherwise the sweep
// leaves usage to the flush interval (a token's clock in the index never runs
// ahead of the store's: uses and reactivations only move it on).
func (g *Gate) expire() {
	defer g.sweeps.Add(1)
	result := sweepNone
	if m := g.metrics; m != nil {
		defer func() { m.sweeps[result].Inc() }()
	}
	after := g.store.InactiveAfter()
	if del := g.store.DeleteAfter(); del > 0 && (after <= 0 || del < after) {
		after = del
	}
	if g.current().anyUnusedFor(g.store.Now().UnixNano(), int64(after)) {
		if err := g.Flush(); err != nil {
			result = sweepFailed
			g.log.Error("gate: usage not written before the lifecycle sweep; will retry", "err", err)
			return
		}
	}
	res, err := g.store.Sweep(sweepActor)
	if err != nil {
		result = sweepFailed
		g.log.Error("gate: lifecycle sweep failed", "err", err)
	}
	if res.Changed() {
		if result == sweepNone {
			result = sweepDeactivated
		}
		if g.metrics != nil {
			g.metrics.sweptTokens.Add(float64(len(res.Inactivated)))
		}
		g.log.Info("gate: lifecycle sweep", "inactivated", res.Inactivated, "expired", res.Expired,
			"deleted", res.Deleted, "rotation_ended", res.RotationEnd, "inactive_after", g.store.InactiveAfter())
	}
}

// anyUnusedFor reports whether a token of x has been unused for after or
// longer at now (unix nanoseconds; after <= 0: never). It reads every entry:
// the sweep calls it once a minute.
func (x *index) anyUnusedFor(now, after int64) bool {
	if after <= 0 {
		return false
	}
	for _, e := range x.recent {
		if e.flags&flagLive != 0 && now-e.since >= after {
			return true
		}
	}
	for d, e := range x.base {
		if _, changed := x.recent[d]; !changed && now-e.since >= after {
			return true
		}
	}
	return false
}

// flushBatch bounds the deltas given to the store at once. Each token in a
// batch comes back as one change on the feed, and Flush applies them before the
// next batch, so that the gate's subscription never overflows into a reload (a
// full re-read of the store) however many tokens were used.
const flushBatch = 1024

// Flush writes the usage counted since the last flush. Counts that could not be
// written are kept for the next flush, within the bound on waiting pairs.
func (g *Gate) Flush() error {
	g.flushMu.Lock()
	defer g.flushMu.Unlock()
	if m := g.metrics; m != nil {
		start := m.since()
		defer func() { m.flush.Observe((m.since() - start).Seconds()) }()
	}
	g.warnDropped()
	pending, used := g.usage.take()
	if used != nil {
		g.inflight.Store(&used)
		defer g.inflight.Store(nil) // after the index has the uses, or requeue has them back
	}
	for len(pending) > 0 {
		batch := pending[:min(len(pending), flushBatch)]
		written, err := g.store.RecordUsage(deltasOf(batch))
		// The tokens' last-used times moved: their inactivity clocks restart.
		g.catchUp()
		if err != nil {
			g.usage.requeue(pending[written:], used)
			return fmt.Errorf("gate: %w", err)
		}
		pending = pending[len(batch):]
	}
	return nil
}

// usedAfter reports whether the gate allowed a request for the token later than
// cutoff (unix nanoseconds) that the index does not know of yet.
func (g *Gate) usedAfter(id string, cutoff int64) bool {
	if m := g.inflight.Load(); m != nil && (*m)[id] > cutoff {
		return true
	}
	return g.usage.usedAfter(id, cutoff)
}

// dropWarnEvery rate-limits the warning about usage dropped at the bound.
const dropWarnEvery = time.Minute

// warnDropped logs how many requests went uncounted because too many (token,
// IP) pairs were waiting, at most once per dropWarnEvery.
func (g *Gate) warnDropped() {
	g.warnMu.Lock()
	defer g.warnMu.Unlock()
	now := g.now()
	if g.lastDropWarn != 0 && now-g.lastDropWarn < int64(dropWarnEvery) {
		return
	}
	n := g.usage.dropped.Swap(0)
	if n == 0 {
		return
	}
	g.lastDropWarn = now
	g.log.Warn("gate: usage of some requests not counted: too many (token, IP) pairs waiting to be written",
		"dropped_requests", n, "max_pairs", g.usage.limit)
}

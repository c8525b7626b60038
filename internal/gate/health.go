package gate

import (
	"sync"
	"time"
)

// healthTTL is how long /healthz reuses the store's answer: a load balancer
// probing every gate often costs the store (with etcd, a round trip to a
// quorum) one check per TTL, and a probe never waits longer than one check.
const healthTTL = 500 * time.Millisecond

// healthCache is the store's last answer to Health and when it was given (on
// the monotonic clock: the gate's Config.Now may be a test's fixed clock).
type healthCache struct {
	mu  sync.Mutex
	at  time.Time
	err error
}

// storeHealth is nil when the store accepts writes now, or why it does not
// (a full disk, etcd without quorum), at most healthTTL old. Verification
// never depends on it: the index is in memory.
func (g *Gate) storeHealth() error {
	h := &g.healthCache
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.at.IsZero() && time.Since(h.at) < healthTTL {
		return h.err
	}
	h.err = g.store.Health()
	h.at = time.Now()
	return h.err
}

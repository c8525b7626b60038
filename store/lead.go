package store

import "context"

// Lead runs fn while this process leads the work named name (the sweeps)
// among the processes that share the engine, and returns nil when ctx is
// done. On a SharedEngine that is its election: at most one process of the
// cluster at a time, fn's context cancelled when the leadership is lost, fn
// run again when it is won again. On an engine of one process, this process
// leads: fn runs at once, with ctx.
func (s *Store) Lead(ctx context.Context, name string, fn func(ctx context.Context)) error {
	if s.shared == nil {
		fn(ctx)
		return nil
	}
	return s.shared.Lead(ctx, name, fn)
}

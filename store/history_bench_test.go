package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/storetest"
)

// BenchmarkRecordUsage is one gate flush on each engine (Badger: a real
// directory): 200 busy tokens, each used from 10 addresses in the last second
// (2,000 deltas; 4 transactions on Badger, as many as the engine's Limits ask
// elsewhere). "totals" is RecordUsage without the usage history (what it
// wrote before it); "history" adds the hourly buckets, per address and per
// token, in the same transactions: the difference is what the history costs.
// "floor" writes the very keys and values of one flush with history in as
// many bare transactions of the engine: the difference to "history" is the
// store's own cost.
func BenchmarkRecordUsage(b *testing.B) {
	storetest.EachB(b, benchEngines(), func(b *testing.B, e storetest.Engine) {
		setup := func(b *testing.B, history bool) (*store.Store, []store.UsageDelta) {
			s := e.Open(b)
			if !history {
				s.WithoutHistory()
			}
			var ids []string
			for i := range 200 {
				ids = append(ids, mustCreate(b, s, fmt.Sprintf("busy-%03d", i)).Token.ID)
			}
			deltas := make([]store.UsageDelta, 0, 2000)
			for _, id := range ids {
				for j := range 10 {
					deltas = append(deltas, store.UsageDelta{TokenID: id, IP: fmt.Sprintf("10.0.0.%d", j+1), Allowed: 40, Denied: 2})
				}
			}
			return s, deltas
		}
		start := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
		flush := func(b *testing.B, s *store.Store, deltas []store.UsageDelta, i int) {
			at := start.Add(time.Duration(i) * time.Second)
			for j := range deltas {
				deltas[j].FirstUsedAt, deltas[j].LastUsedAt = at, at
			}
			if n, err := s.RecordUsage(deltas); err != nil || n != len(deltas) {
				b.Fatal(n, err)
			}
		}
		for _, history := range []bool{false, true} {
			name := "totals"
			if history {
				name = "history"
			}
			b.Run(name, func(b *testing.B) {
				s, deltas := setup(b, history)
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					flush(b, s, deltas, i)
				}
			})
		}
		b.Run("floor", func(b *testing.B) {
			s, deltas := setup(b, true)
			before := allKV(b, s.Engine())
			flush(b, s, deltas, 0)
			keys, vals := written(before, allKV(b, s.Engine()))
			txns := (len(deltas) + s.UsageChunk() - 1) / s.UsageChunk()
			b.ReportAllocs()
			for b.Loop() {
				setAll(b, s.Engine(), keys, vals, txns)
			}
		})
	})
}

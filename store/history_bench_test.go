package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/apptokens/apptokens/store"
)

// BenchmarkRecordUsage is one gate flush into a real directory: 200 busy tokens,
// each used from 10 addresses in the last second (2,000 deltas, 4 transactions).
// "totals" is the floor, RecordUsage without the usage history (what it wrote
// before it); "history" adds the hourly buckets, per address and per token, in
// the same transactions: the difference is what the history costs.
func BenchmarkRecordUsage(b *testing.B) {
	for _, history := range []bool{false, true} {
		name := "totals"
		if history {
			name = "history"
		}
		b.Run(name, func(b *testing.B) {
			s, _ := openDir(b)
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
			start := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				at := start.Add(time.Duration(i) * time.Second)
				for j := range deltas {
					deltas[j].FirstUsedAt, deltas[j].LastUsedAt = at, at
				}
				if n, err := s.RecordUsage(deltas); err != nil || n != len(deltas) {
					b.Fatal(n, err)
				}
			}
		})
	}
}

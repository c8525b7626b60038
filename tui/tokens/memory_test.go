package tokens

import (
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/tui/common"
	"github.com/apptokens/apptokens/tui/styles"
	"github.com/apptokens/apptokens/tui/tokenset"
)

// liveHeap is the heap in use after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkSessionView measures what one more session costs over the shared
// set of 100,000 tokens (bytes/session): its view alone, since the tokens and
// their sorted orders are shared. Unfiltered, the view is the shared order;
// filtered, it is the positions that pass (4 bytes each; "service" passes
// every token). BenchmarkSessionViewFloor is one such []int32 of every token.
//
// Measured (2 cores): unfiltered ~10 KB/session, filtered ~0.4 MB/session
// (the floor); before the shared set a session held its own copy of every
// token: ~71 MiB at 100,000 tokens in serve.
func BenchmarkSessionView(b *testing.B) {
	set := tokenset.FromTokens(makeTokens(100000), store.DefaultInactiveAfter)
	set.Order(SortName)
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.Ascii)
	st := styles.New(r)
	for _, filter := range []string{"", "service"} {
		b.Run("filter="+filter, func(b *testing.B) {
			var sessions []*Model
			before := liveHeap()
			for b.Loop() {
				ctx := &common.Context{Styles: st, Now: func() time.Time { return now }}
				m := New(ctx, nil)
				m.SetSize(120, 40)
				m.Update(common.ChangesMsg{Tokens: set})
				m.setQuery(filter)
				if len(m.idx.view) != 100000 {
					b.Fatalf("%d rows shown", len(m.idx.view))
				}
				sessions = append(sessions, m)
			}
			b.ReportMetric(float64(liveHeap()-before)/float64(len(sessions)), "bytes/session")
			runtime.KeepAlive(sessions)
		})
	}
}

func BenchmarkSessionViewFloor(b *testing.B) {
	var views [][]int32
	before := liveHeap()
	for b.Loop() {
		v := make([]int32, 100000)
		for i := range v {
			v[i] = int32(i)
		}
		views = append(views, v)
	}
	b.ReportMetric(float64(liveHeap()-before)/float64(len(views)), "bytes/session")
	runtime.KeepAlive(views)
}

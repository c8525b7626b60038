package gate

import (
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/apptokens/apptokens/store"
)

// TestFlushAcrossHourLandsInBoth: requests on both sides of the turn of an hour
// that reach the store in one flush land each in its own hour's bucket.
func TestFlushAcrossHourLandsInBoth(t *testing.T) {
	clk := newClock()
	clk.Add(59*time.Minute + 30*time.Second) // 12:59:30
	s := openStore(t, clk.Now)
	tok := create(t, s, "turn", store.AccessSecurityDirector)
	g := newGate(t, Config{Store: s, Now: clk.Now})
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(srv.Close)
	c := srv.Client()

	call(t, c, srv.URL+"/auth", "Bearer "+tok)
	call(t, c, srv.URL+"/auth/third-party-feeds", "Bearer "+tok) // denied: no such access
	clk.Add(time.Minute)                                         // 13:00:30
	call(t, c, srv.URL+"/auth", "Bearer "+tok)
	call(t, c, srv.URL+"/auth", "Bearer "+tok)
	if err := g.Flush(); err != nil {
		t.Fatal(err)
	}
	got, err := s.UsageSeries("turn", "127.0.0.1", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	h12 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	want := []store.HourCount{{Hour: h12, Allowed: 1, Denied: 1}, {Hour: h12.Add(time.Hour), Allowed: 2}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("hours = %+v, want %+v", got, want)
	}
	rows, err := s.Usage("turn")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Allowed != 3 || rows[0].Denied != 1 ||
		!rows[0].FirstUsedAt.Equal(h12.Add(59*time.Minute+30*time.Second)) || !rows[0].LastUsedAt.Equal(h12.Add(time.Hour+30*time.Second)) {
		t.Fatalf("totals = %+v, want one row of 3 allowed, 1 denied, 12:59:30 to 13:00:30", rows)
	}
}

// TestSweepPrunesHistory: the gate's sweep drops usage history older than the
// store keeps.
func TestSweepPrunesHistory(t *testing.T) {
	clk := newClock()
	s := openStore(t, clk.Now)
	create(t, s, "aged", store.AccessSecurityDirector)
	toks, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	at := clk.Now()
	if _, err := s.RecordUsage([]store.UsageDelta{{TokenID: toks[0].ID, IP: "192.0.2.1", FirstUsedAt: at, LastUsedAt: at, Allowed: 1}}); err != nil {
		t.Fatal(err)
	}
	clk.Add(store.HistoryRetention + 2*time.Hour)
	g := newGate(t, Config{Store: s, Now: clk.Now, SweepInterval: time.Hour})
	run(t, g)
	waitFor(t, 10*time.Second, "the first sweep", func() bool { return g.sweeps.Load() > 0 })
	if got, err := s.UsageSeries("aged", "", time.Time{}); err != nil || len(got) != 0 {
		t.Fatalf("history after the sweep: %+v, %v; want none", got, err)
	}
}

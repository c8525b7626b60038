package store_test

import (
	"bytes"
	"errors"
	"io/fs"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apptokens/apptokens/internal/secret"
	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/storetest"
)

// recordAt records one delta of the token from ip at the time at.
func recordAt(t *testing.T, s *store.Store, id, ip string, at time.Time, allowed, denied uint64) {
	t.Helper()
	if _, err := s.RecordUsage([]store.UsageDelta{{TokenID: id, IP: ip, FirstUsedAt: at, LastUsedAt: at, Allowed: allowed, Denied: denied}}); err != nil {
		t.Fatal(err)
	}
}

func series(t *testing.T, s *store.Store, name, ip string, since time.Time) []store.HourCount {
	t.Helper()
	hs, err := s.UsageSeries(name, ip, since)
	if err != nil {
		t.Fatalf("UsageSeries(%q, %q): %v", name, ip, err)
	}
	return hs
}

func sumHours(hs []store.HourCount) (a, d uint64) {
	for _, h := range hs {
		a += h.Allowed
		d += h.Denied
	}
	return a, d
}

// TestHistoryAddsUpToTotals: the hourly buckets RecordUsage writes add up to
// the totals, for the token and for each address, hour by hour.
func TestHistoryAddsUpToTotals(t *testing.T) {
	storetest.Each(t, func(t *testing.T, eng storetest.Engine) {
		s := openOn(t, eng, newClock())
		tok := mustCreate(t, s, "hist").Token
		other := mustCreate(t, s, "other").Token
		h9 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
		// Several flushes, two addresses, three hours, and one flush with many
		// deltas of one token (several chunks' worth of addresses).
		recordAt(t, s, tok.ID, "192.0.2.1", h9.Add(5*time.Minute), 3, 1)
		recordAt(t, s, tok.ID, "192.0.2.1", h9.Add(50*time.Minute), 2, 0)
		recordAt(t, s, tok.ID, "2001:db8::1", h9.Add(59*time.Minute), 0, 4)
		recordAt(t, s, tok.ID, "192.0.2.1", h9.Add(2*time.Hour+time.Second), 7, 2)
		recordAt(t, s, other.ID, "192.0.2.1", h9.Add(time.Minute), 100, 100)
		var many []store.UsageDelta
		for i := range 1200 {
			at := h9.Add(time.Hour + time.Duration(i)*time.Second)
			many = append(many, store.UsageDelta{TokenID: tok.ID, IP: "10.0." + itoa(i/250) + "." + itoa(i%250+1), FirstUsedAt: at, LastUsedAt: at, Allowed: 1, Denied: uint64(i % 2)})
		}
		if _, err := s.RecordUsage(many); err != nil {
			t.Fatal(err)
		}

		got := series(t, s, "HIST", "", time.Time{})
		want := []store.HourCount{
			{Hour: h9, Allowed: 5, Denied: 5},
			{Hour: h9.Add(time.Hour), Allowed: 1200, Denied: 600},
			{Hour: h9.Add(2 * time.Hour), Allowed: 7, Denied: 2},
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("token series = %+v, want %+v", got, want)
		}
		rows, err := s.Usage("hist")
		if err != nil {
			t.Fatal(err)
		}
		var ta, td uint64
		for _, u := range rows {
			a, d := sumHours(series(t, s, "hist", u.IP, time.Time{}))
			if a != u.Allowed || d != u.Denied {
				t.Errorf("%s: hours add up to %d/%d, totals are %d/%d", u.IP, a, d, u.Allowed, u.Denied)
			}
			ta, td = ta+u.Allowed, td+u.Denied
		}
		if a, d := sumHours(got); a != ta || d != td {
			t.Errorf("token hours add up to %d/%d, totals are %d/%d", a, d, ta, td)
		}
		if got := series(t, s, "hist", "192.0.2.1", h9.Add(30*time.Minute)); !reflect.DeepEqual(got, []store.HourCount{{Hour: h9.Add(2 * time.Hour), Allowed: 7, Denied: 2}}) {
			t.Errorf("since 09:30 from 192.0.2.1 = %+v, want the 11:00 hour alone", got)
		}
		// An address given in another form is the same address.
		if got := series(t, s, "hist", "::ffff:192.0.2.1", time.Time{}); len(got) != 2 {
			t.Errorf("::ffff:192.0.2.1 = %+v, want the hours of 192.0.2.1", got)
		}
		if _, err := s.UsageSeries("ghost", "", time.Time{}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown name: %v, want ErrNotFound", err)
		}
		if _, err := s.UsageSeries("hist", "192.0.2.300", time.Time{}); err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("bad ip: %v, want a one-line error", err)
		}

		var each []string
		if err := s.EachRecentHour(h9.Add(time.Hour), func(id string, h store.HourCount) error {
			each = append(each, id+" "+h.Hour.Format("15")+" "+itoa(int(h.Allowed)))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if want := []string{tok.ID + " 10 1200", tok.ID + " 11 7"}; !reflect.DeepEqual(each, want) {
			t.Errorf("EachRecentHour since 10:00 = %q, want %q", each, want)
		}
	})
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

// TestHistoryPrunedAfter30Days: buckets are kept 30 days by the store's clock;
// PruneHistory drops older ones, per token and per address, and nothing else.
func TestHistoryPrunedAfter30Days(t *testing.T) {
	storetest.Each(t, func(t *testing.T, eng storetest.Engine) {
		c := newClock() // 2026-03-01 09:00
		s := openOn(t, eng, c)
		tok := mustCreate(t, s, "old").Token
		t0 := c.Now()
		for i := range 5 {
			recordAt(t, s, tok.ID, "192.0.2.1", t0.Add(time.Duration(i)*time.Hour+time.Minute), 1, 1)
			recordAt(t, s, tok.ID, "192.0.2."+itoa(i+10), t0.Add(time.Duration(i)*time.Hour+time.Minute), 1, 0)
		}
		// 30 days and 30 minutes later: the 09:00 hour ended 30 days minus 30 minutes ago.
		c.Add(30*24*time.Hour + 30*time.Minute)
		if n, err := s.PruneHistory(); err != nil || n != 0 {
			t.Fatalf("prune at 30 days: %d, %v; want nothing pruned", n, err)
		}
		if got := series(t, s, "old", "", time.Time{}); len(got) != 5 {
			t.Fatalf("kept %d hours, want 5", len(got))
		}
		// Two hours later: 09:00 and 10:00 are older than 30 days.
		c.Add(2 * time.Hour)
		n, err := s.PruneHistory()
		if err != nil {
			t.Fatal(err)
		}
		// Per token, per 192.0.2.1 and per 192.0.2.1x: three buckets an hour.
		if n != 6 {
			t.Errorf("pruned %d buckets, want 6", n)
		}
		got := series(t, s, "old", "", time.Time{})
		if len(got) != 3 || !got[0].Hour.Equal(t0.Add(2*time.Hour)) {
			t.Fatalf("after pruning: %+v, want 11:00, 12:00, 13:00", got)
		}
		if got := series(t, s, "old", "192.0.2.10", time.Time{}); len(got) != 0 {
			t.Errorf("192.0.2.10 (09:00 only) still has %+v", got)
		}
		if got := series(t, s, "old", "192.0.2.1", time.Time{}); len(got) != 3 {
			t.Errorf("192.0.2.1 has %d hours, want 3", len(got))
		}
		// The totals are not history: they stay.
		rows, _ := s.Usage("old")
		if len(rows) != 6 {
			t.Errorf("usage rows = %d, want 6", len(rows))
		}
		// Within the hour, a second call reads nothing and prunes nothing.
		if n, err := s.PruneHistory(); err != nil || n != 0 {
			t.Errorf("second prune: %d, %v", n, err)
		}
		// Far later, everything goes, over several chunks.
		var many []store.UsageDelta
		at := c.Now()
		for i := range 1500 {
			many = append(many, store.UsageDelta{TokenID: tok.ID, IP: "10.1." + itoa(i/250) + "." + itoa(i%250+1), FirstUsedAt: at, LastUsedAt: at, Allowed: 1})
		}
		if _, err := s.RecordUsage(many); err != nil {
			t.Fatal(err)
		}
		c.Add(60 * 24 * time.Hour)
		if n, err := s.PruneHistory(); err != nil || n != 3*3+1500+1 {
			t.Errorf("prune everything: %d, %v; want %d", n, err, 3*3+1500+1)
		}
		if got := series(t, s, "old", "", time.Time{}); len(got) != 0 {
			t.Errorf("left %+v", got)
		}
	})
}

// TestHistoryClearedWithToken: deleting a token deletes its history.
func TestHistoryClearedWithToken(t *testing.T) {
	storetest.Each(t, func(t *testing.T, eng storetest.Engine) {
		c := newClock()
		s := openOn(t, eng, c)
		tok := mustCreate(t, s, "gone").Token
		recordAt(t, s, tok.ID, "192.0.2.1", c.Now(), 1, 0)
		if _, err := s.Delete(admin, []string{"gone"}); err != nil {
			t.Fatal(err)
		}
		raw, err := s.DumpKV()
		if err != nil {
			t.Fatal(err)
		}
		for k := range raw {
			if strings.HasPrefix(k, "68") { // 'h'
				t.Errorf("history key %s left after delete", k)
			}
		}
	})
}

// TestHistorySurvivesRestart: the buckets are on disk.
func TestHistorySurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	s, err := storetest.OpenWith(storetest.Options{Dir: dir, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	tok := mustCreate(t, s, "kept").Token
	recordAt(t, s, tok.ID, "192.0.2.1", c.Now(), 4, 2)
	recordAt(t, s, tok.ID, "192.0.2.2", c.Now().Add(time.Hour), 1, 0)
	before := series(t, s, "kept", "", time.Time{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = storetest.OpenWith(storetest.Options{Dir: dir, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	after := series(t, s, "kept", "", time.Time{})
	if len(before) != 2 || !reflect.DeepEqual(before, after) {
		t.Fatalf("after restart %+v, before %+v", after, before)
	}
	if got := series(t, s, "kept", "192.0.2.1", time.Time{}); len(got) != 1 || got[0].Allowed != 4 || got[0].Denied != 2 {
		t.Fatalf("192.0.2.1 after restart: %+v", got)
	}
}

// TestHistoryBackupRestore: a backup carries the history and a restore brings
// it back; a restore checks every bucket and refuses a bad one.
func TestHistoryBackupRestore(t *testing.T) {
	c := newClock()
	src := openMem(t, c)
	tok := mustCreate(t, src, "carried").Token
	recordAt(t, src, tok.ID, "192.0.2.1", c.Now(), 4, 2)
	recordAt(t, src, tok.ID, "2001:db8::7", c.Now().Add(3*time.Hour), 1, 9)
	var buf bytes.Buffer
	if err := src.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	dst := openMem(t, c)
	if err := dst.Restore(admin, bytes.NewReader(buf.Bytes()), false); err != nil {
		t.Fatal(err)
	}
	for _, ip := range []string{"", "192.0.2.1", "2001:db8::7"} {
		if a, b := series(t, src, "carried", ip, time.Time{}), series(t, dst, "carried", ip, time.Time{}); len(a) == 0 || !reflect.DeepEqual(a, b) {
			t.Errorf("ip %q: restored %+v, backed up %+v", ip, b, a)
		}
	}

	good := rawToken(t, "good")
	h := time.Date(2026, 2, 1, 8, 0, 0, 0, time.UTC)
	bad := map[string]map[string][]byte{
		"corrupt count":      {store.HourKey(good.ID, "", h): {0xff}},
		"trailing bytes":     {store.HourKey(good.ID, "192.0.2.1", h): append(store.EncodeHour(1, 2), 0)},
		"address not normal": {store.HourKey(good.ID, "::ffff:192.0.2.1", h): store.EncodeHour(1, 2)},
		"not an address":     {store.HourKey(good.ID, "example.com", h): store.EncodeHour(1, 2)},
		"short key":          {"ht/" + good.ID: store.EncodeHour(1, 2)},
	}
	for name, extra := range bad {
		recs := records(good)
		for k, v := range extra {
			recs[k] = v
		}
		fresh := openMem(t, c)
		err := fresh.Restore(admin, bytes.NewReader(craftedBackup(t, recs)), false)
		if !errors.Is(err, store.ErrInvalidBackup) || !strings.Contains(err.Error(), "usage history") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: restore error = %v, want one line naming the usage history record", name, err)
		}
		if toks, _ := fresh.List(); len(toks) != 0 {
			t.Errorf("%s: restore refused but wrote %d tokens", name, len(toks))
		}
	}
	// A well-formed bucket of a token that is not in the backup is an orphan: left out.
	recs := records(good)
	recs[store.HourKey("0123456789abcdef", "", h)] = store.EncodeHour(1, 1)
	recs[store.HourKey(good.ID, "192.0.2.1", h)] = store.EncodeHour(5, 1)
	recs[store.HourKey(good.ID, "", h)] = store.EncodeHour(5, 1)
	fresh := openMem(t, c)
	if err := fresh.Restore(admin, bytes.NewReader(craftedBackup(t, recs)), false); err != nil {
		t.Fatal(err)
	}
	if got := series(t, fresh, "good", "192.0.2.1", time.Time{}); !reflect.DeepEqual(got, []store.HourCount{{Hour: h, Allowed: 5, Denied: 1}}) {
		t.Errorf("crafted bucket restored as %+v", got)
	}
	var ids []string
	_ = fresh.EachRecentHour(time.Time{}, func(id string, _ store.HourCount) error { ids = append(ids, id); return nil })
	if !reflect.DeepEqual(ids, []string{good.ID}) {
		t.Errorf("restored history of tokens %q, want only %q", ids, good.ID)
	}
}

// TestFeedCarriesHourIncrements: ChangeUsed carries what each commit added per
// (IP, hour), and collapsed changes carry the increments of all of them.
func TestFeedCarriesHourIncrements(t *testing.T) {
	storetest.Each(t, func(t *testing.T, eng storetest.Engine) {
		c := newClock()
		s := openOn(t, eng, c)
		tok := mustCreate(t, s, "live").Token
		sub := s.Subscribe()
		defer sub.Close()
		h := c.Now()
		recordAt(t, s, tok.ID, "192.0.2.1", h.Add(10*time.Minute), 2, 0)
		recordAt(t, s, tok.ID, "192.0.2.1", h.Add(20*time.Minute), 1, 1)
		recordAt(t, s, tok.ID, "192.0.2.2", h.Add(70*time.Minute), 5, 0)
		changes, reload := sub.Take()
		if reload || len(changes) != 1 {
			t.Fatalf("got %d changes (reload %v), want one collapsed ChangeUsed", len(changes), reload)
		}
		want := []store.UsageHour{
			{IP: "192.0.2.1", Hour: h, Allowed: 2},
			{IP: "192.0.2.1", Hour: h, Allowed: 1, Denied: 1},
			{IP: "192.0.2.2", Hour: h.Add(time.Hour), Allowed: 5},
		}
		if !reflect.DeepEqual(changes[0].Hours, want) {
			t.Fatalf("Hours = %+v, want %+v", changes[0].Hours, want)
		}
	})
}

// TestHistorySizePerTokenDay measures what a day of history takes for a token
// used every hour from 10 addresses (8 IPv4, 2 IPv6; thousands of requests an
// hour): encoded (keys and values as written) and in the SST files on disk
// (one version per bucket, as after compaction; Snappy), beside the same
// traffic without history. The encoded size is bounded by the layout.
func TestHistorySizePerTokenDay(t *testing.T) {
	const tokens = 100
	ips := []string{"203.0.113.17", "203.0.113.201", "198.51.100.4", "198.51.100.77",
		"192.0.2.143", "192.0.2.9", "100.64.12.250", "172.16.254.3",
		"2001:db8:85a3::8a2e:370:7334", "2001:db8:4006:812::200e"}
	day := func(history bool) (encoded, sst int64) {
		dir := t.TempDir()
		c := newClock()
		s, err := storetest.OpenWith(storetest.Options{Dir: dir, Now: c.Now})
		if err != nil {
			t.Fatal(err)
		}
		if !history {
			s.WithoutHistory()
		}
		var deltas []store.UsageDelta
		for i := range tokens {
			id := mustCreate(t, s, "size-"+itoa(i)).Token.ID
			for _, ip := range ips {
				deltas = append(deltas, store.UsageDelta{TokenID: id, IP: ip, Allowed: 3600, Denied: 12})
			}
		}
		start := c.Now()
		for h := range 24 {
			at := start.Add(time.Duration(h)*time.Hour + 30*time.Minute)
			for j := range deltas {
				deltas[j].FirstUsedAt, deltas[j].LastUsedAt = at, at
			}
			if _, err := s.RecordUsage(deltas); err != nil {
				t.Fatal(err)
			}
		}
		n, err := s.HistoryBytes()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && strings.HasSuffix(p, ".sst") {
				fi, err := d.Info()
				if err != nil {
					return err
				}
				sst += fi.Size()
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return int64(n), sst
	}
	enc, withSST := day(true)
	_, withoutSST := day(false)
	perEnc := enc / tokens
	perSST := (withSST - withoutSST) / tokens
	t.Logf("usage history per token per day at 10 addresses: %d bytes encoded, %d bytes in SST files (with %d, without %d for %d tokens)",
		perEnc, perSST, withSST, withoutSST, tokens)
	// 24 hours × (1 per-token bucket of 24+3 bytes + 10 per-address buckets of
	// at most 25+39+3 bytes).
	if max := int64(24 * (27 + 10*67)); perEnc > max || perEnc < 24*11*27 {
		t.Errorf("%d bytes a token a day, want at most %d", perEnc, max)
	}
}

// TestBulkLoadHistory: seed data can carry usage history; it reads back per
// address and per token, and an hour that is not the start of one is refused.
func TestBulkLoadHistory(t *testing.T) {
	storetest.Each(t, func(t *testing.T, eng storetest.Engine) {
		s := openOn(t, eng, newClock())
		h := time.Date(2026, 2, 27, 14, 0, 0, 0, time.UTC)
		tok := rawToken(t, "seeded")
		tok.ID = ""
		sec, _ := secret.Generate()
		err := s.BulkLoad(admin, []store.SeedToken{{Token: tok, Secret: sec, History: []store.UsageHour{
			{IP: "192.0.2.1", Hour: h, Allowed: 3, Denied: 1},
			{IP: "::ffff:192.0.2.1", Hour: h, Allowed: 2},
			{IP: "192.0.2.2", Hour: h, Allowed: 10},
			{IP: "192.0.2.2", Hour: h.Add(time.Hour), Denied: 4},
		}}})
		if err != nil {
			t.Fatal(err)
		}
		if got := series(t, s, "seeded", "", time.Time{}); !reflect.DeepEqual(got, []store.HourCount{{Hour: h, Allowed: 15, Denied: 1}, {Hour: h.Add(time.Hour), Denied: 4}}) {
			t.Errorf("token history = %+v", got)
		}
		if got := series(t, s, "seeded", "192.0.2.1", time.Time{}); !reflect.DeepEqual(got, []store.HourCount{{Hour: h, Allowed: 5, Denied: 1}}) {
			t.Errorf("192.0.2.1 history = %+v", got)
		}
		bad := rawToken(t, "badhour")
		bad.ID = ""
		sec2, _ := secret.Generate()
		err = s.BulkLoad(admin, []store.SeedToken{{Token: bad, Secret: sec2, History: []store.UsageHour{{IP: "192.0.2.1", Hour: h.Add(time.Minute), Allowed: 1}}}})
		if err == nil || !strings.Contains(err.Error(), "start of an hour") {
			t.Errorf("history at 14:01: %v, want refused", err)
		}
		if _, err := s.Get("badhour"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("refused seed wrote its token: %v", err)
		}
	})
}

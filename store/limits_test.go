package store_test

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apptokens/apptokens/internal/secret"
	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/storetest"
)

// seedTokens bulk-loads n active tokens named prefix-00001… created at created,
// each described by desc, with usage rows from ips addresses, and returns them.
func seedTokens(t *testing.T, s *store.Store, prefix string, n int, created time.Time, desc string, ips int) []store.Token {
	t.Helper()
	toks := make([]store.SeedToken, n)
	for i := range toks {
		sec, err := secret.Generate()
		if err != nil {
			t.Fatal(err)
		}
		toks[i] = store.SeedToken{
			Token: store.Token{
				Name:        fmt.Sprintf("%s-%05d", prefix, i+1),
				Description: desc,
				Access:      []store.Access{store.AccessThirdPartyFeeds},
				Active:      true,
				CreatedAt:   created,
				UpdatedAt:   created,
			},
			Secret: sec,
		}
		for j := range ips {
			toks[i].Usage = append(toks[i].Usage, store.Usage{IP: fmt.Sprintf("2001:db8::%x", j+1), FirstUsedAt: created, LastUsedAt: created, Allowed: 1})
		}
	}
	if err := s.BulkLoad(admin, toks); err != nil {
		t.Fatal(err)
	}
	out := make([]store.Token, n)
	for i := range toks {
		out[i] = toks[i].Token
	}
	return out
}

func names(toks []store.Token) []string {
	out := make([]string, len(toks))
	for i, t := range toks {
		out[i] = t.Name
	}
	return out
}

func usageKeys(t *testing.T, s *store.Store) int {
	t.Helper()
	raw, err := s.DumpKV()
	if err != nil {
		t.Fatal(err)
	}
	prefix := hex.EncodeToString([]byte(store.PrefixUsage))
	n := 0
	for k := range raw {
		if strings.HasPrefix(k, prefix) {
			n++
		}
	}
	return n
}

// TestRecordUsageManyPairs: a flush of token/IP pairs two and a half times
// what one transaction of the engine holds is written whole, and every
// token's last use moves.
func TestRecordUsageManyPairs(t *testing.T) {
	storetest.Each(t, func(t *testing.T, eng storetest.Engine) {
		c := newClock()
		s := openOn(t, eng, c)
		const tokens = 10
		ips := (5*s.UsageChunk()/2)/tokens + 1 // per token
		toks := seedTokens(t, s, "gate", tokens, c.Now(), "", 0)
		at := c.Now().Add(time.Hour)
		var deltas []store.UsageDelta
		for i, tok := range toks {
			for j := range ips {
				deltas = append(deltas, store.UsageDelta{
					TokenID: tok.ID, IP: fmt.Sprintf("10.0.%d.%d", j, i),
					FirstUsedAt: at, LastUsedAt: at.Add(time.Duration(j) * time.Second),
					Allowed: uint64(i + 1), Denied: uint64(j),
				})
			}
		}
		written, err := s.RecordUsage(deltas)
		if err != nil || written != len(deltas) {
			t.Fatalf("RecordUsage = %d, %v; want %d, nil", written, err, len(deltas))
		}
		for i, tok := range toks {
			rows, err := s.Usage(tok.Name)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != ips {
				t.Fatalf("%s: %d usage rows, want %d", tok.Name, len(rows), ips)
			}
			for _, u := range rows {
				var j int
				if _, err := fmt.Sscanf(u.IP, "10.0.%d.", &j); err != nil {
					t.Fatal(err)
				}
				if u.Allowed != uint64(i+1) || u.Denied != uint64(j) || !u.LastUsedAt.Equal(at.Add(time.Duration(j)*time.Second)) {
					t.Fatalf("%s %s: %+v", tok.Name, u.IP, u)
				}
			}
			got, err := s.Get(tok.Name)
			if err != nil {
				t.Fatal(err)
			}
			if want := at.Add(time.Duration(ips-1) * time.Second); !got.LastUsedAt.Equal(want) {
				t.Fatalf("%s: LastUsedAt %v, want %v", tok.Name, got.LastUsedAt, want)
			}
		}
	})
}

// TestRecordUsageStopsAtFailedChunk: when a later chunk fails, the earlier
// chunks stay written, written says where to resume, and nothing after it is.
func TestRecordUsageStopsAtFailedChunk(t *testing.T) {
	storetest.Each(t, func(t *testing.T, eng storetest.Engine) {
		c := newClock()
		s := openOn(t, eng, c)
		good := mustCreate(t, s, "good").Token
		broken := mustCreate(t, s, "broken").Token
		if err := s.PutRaw([]byte(store.PrefixToken+broken.ID), []byte("not a token record")); err != nil {
			t.Fatal(err)
		}
		at := c.Now()
		deltas := make([]store.UsageDelta, 3000)
		for i := range deltas {
			deltas[i] = store.UsageDelta{TokenID: good.ID, IP: fmt.Sprintf("10.1.%d.%d", i/250, i%250), FirstUsedAt: at, LastUsedAt: at, Allowed: 1}
		}
		deltas[2200].TokenID = broken.ID
		written, err := s.RecordUsage(deltas)
		if err == nil {
			t.Fatal("RecordUsage over a corrupt token record succeeded")
		}
		if written <= 0 || written > 2200 || written%s.UsageChunk() != 0 {
			t.Fatalf("written = %d: want the whole chunks before delta 2200", written)
		}
		rows, err := s.Usage("good")
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != written {
			t.Fatalf("%d usage rows written, RecordUsage says %d", len(rows), written)
		}
		for _, u := range rows {
			var a, b int
			if _, err := fmt.Sscanf(u.IP, "10.1.%d.%d", &a, &b); err != nil || a*250+b >= written {
				t.Fatalf("row %s is past written=%d", u.IP, written)
			}
		}
	})
}

// TestExpireStaleMany: a sweep over stale tokens, two and a half times what
// one transaction of the engine holds, deactivates and audits every one.
func TestExpireStaleMany(t *testing.T) {
	storetest.Each(t, func(t *testing.T, eng storetest.Engine) {
		c := newClock()
		s := openOn(t, eng, c)
		n := 5*s.MaxBatch()/2 + 1 // a sweep's chunk is MaxBatch tokens
		toks := seedTokens(t, s, "idle", n, c.Now().Add(-60*day), "long idle", 0)
		fresh := mustCreate(t, s, "fresh")
		sub := s.Subscribe()
		defer sub.Close()
		got, err := s.ExpireStale(store.Actor{User: "policy"})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != n {
			t.Fatalf("swept %d tokens, want %d", len(got), n)
		}
		want := map[string]bool{}
		for _, tok := range toks {
			want[tok.Name] = true
		}
		for _, name := range got {
			if !want[name] {
				t.Fatalf("swept %q twice or wrongly", name)
			}
			delete(want, name)
		}
		list, err := s.List()
		if err != nil {
			t.Fatal(err)
		}
		for _, tok := range list {
			if tok.Active != (tok.Name == fresh.Token.Name) {
				t.Fatalf("%s: Active = %v", tok.Name, tok.Active)
			}
		}
		events, err := s.Audit(0)
		if err != nil {
			t.Fatal(err)
		}
		expired := map[string]bool{}
		for _, e := range events {
			if e.Action == store.ActionExpire {
				if e.Actor != "policy" || e.Details != "unused for 30 days" || !e.Time.Equal(c.Now()) || expired[e.Token] {
					t.Fatalf("audit event %+v", e)
				}
				expired[e.Token] = true
			}
		}
		if len(expired) != n {
			t.Fatalf("%d expire events, want %d", len(expired), n)
		}
		wait(t, sub)
		if changes, reload := sub.Take(); !reload && len(changes) != n {
			t.Fatalf("subscriber got %d changes and no reload, want %d", len(changes), n)
		}
		if again, err := s.ExpireStale(store.Actor{User: "policy"}); err != nil || len(again) != 0 {
			t.Fatalf("second sweep = %d names, %v", len(again), err)
		}
	})
}

// TestBatchLimit: SetActive, Delete and SetBlocked refuse more than MaxBatch
// items up front and change nothing; MaxBatch itself fits in one transaction
// even with the largest records (long descriptions, a long actor name).
func TestBatchLimit(t *testing.T) {
	storetest.Each(t, func(t *testing.T, eng storetest.Engine) {
		c := newClock()
		s := openOn(t, eng, c)
		desc := strings.Repeat("d", 880) // a token record just under Badger's 1 KB value threshold
		limit := s.MaxBatch()            // store.MaxBatch on Badger, fewer on a tighter engine
		if eng.Name == storetest.Badger().Name && limit != store.MaxBatch {
			t.Fatalf("MaxBatch on Badger = %d, want %d", limit, store.MaxBatch)
		}
		toks := seedTokens(t, s, "limit", limit+1, c.Now(), desc, 0)
		all := names(toks)
		before := takeSnapshot(t, s)
		wantMsg := fmt.Sprintf("at most %d tokens at once (got %d)", limit, len(all))
		if _, err := s.SetActive(admin, all, false); !errors.Is(err, store.ErrTooMany) || err.Error() != wantMsg {
			t.Fatalf("SetActive over the limit: %v, want %q (ErrTooMany)", err, wantMsg)
		}
		if _, err := s.Delete(admin, all); !errors.Is(err, store.ErrTooMany) || err.Error() != wantMsg {
			t.Fatalf("Delete over the limit: %v, want %q (ErrTooMany)", err, wantMsg)
		}
		ips := make([]string, store.MaxBatch+1)
		for i := range ips {
			ips[i] = fmt.Sprintf("192.0.2.%d", i%250)
		}
		if _, err := s.SetBlocked(admin, all[0], ips, true); !errors.Is(err, store.ErrTooMany) {
			t.Fatalf("SetBlocked over the limit: %v, want ErrTooMany", err)
		}
		assertUnchanged(t, before, takeSnapshot(t, s))

		bigActor := store.Actor{User: strings.Repeat("u", 880), Fingerprint: "SHA256:abc"}
		if n, err := s.SetActive(bigActor, all[:limit], false); err != nil || n != limit {
			t.Fatalf("SetActive of MaxBatch = %d, %v", n, err)
		}
		if n, err := s.Delete(bigActor, all[:limit]); err != nil || n != limit {
			t.Fatalf("Delete of MaxBatch = %d, %v", n, err)
		}
		left, err := s.List()
		if err != nil || len(left) != 1 || left[0].Name != all[limit] {
			t.Fatalf("after deleting %d: %v, %v", limit, left, err)
		}
	})
}

// TestDeleteTokenWithManyUsageRows: a token used from more addresses than one
// transaction can clear (two and a half times as many) is still deleted, with
// all its usage.
func TestDeleteTokenWithManyUsageRows(t *testing.T) {
	storetest.Each(t, func(t *testing.T, eng storetest.Engine) {
		c := newClock()
		s := openOn(t, eng, c)
		ips := 5*s.ClearChunk()/2 + 1
		seedTokens(t, s, "busy", 1, c.Now(), "", ips)
		keep := mustCreate(t, s, "keep")
		if _, err := s.RecordUsage([]store.UsageDelta{{TokenID: keep.Token.ID, IP: "192.0.2.9", FirstUsedAt: c.Now(), LastUsedAt: c.Now(), Allowed: 1}}); err != nil {
			t.Fatal(err)
		}
		if n := usageKeys(t, s); n != ips+1 {
			t.Fatalf("%d usage records before, want %d", n, ips+1)
		}
		if n, err := s.Delete(admin, []string{"busy-00001"}); err != nil || n != 1 {
			t.Fatalf("Delete = %d, %v", n, err)
		}
		if n := usageKeys(t, s); n != 1 {
			t.Fatalf("%d usage records left, want only keep's 1", n)
		}
		if _, err := s.Get("busy-00001"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleted token: %v", err)
		}
	})
}

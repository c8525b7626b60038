package store_test

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/apptokens/apptokens/internal/secret"
	"github.com/apptokens/apptokens/store"
)

// craftedBackup is the backup of a raw Badger database holding exactly these
// records: what someone could hand to `apptokens restore`.
func craftedBackup(t *testing.T, records map[string][]byte) []byte {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions("").WithInMemory(true).WithLogger(nil).WithMemTableSize(8 << 20).WithValueThreshold(1 << 10))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(txn *badger.Txn) error {
		for k, v := range records {
			if err := txn.Set([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := db.Backup(&buf, 0); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rawToken is a token as Create would store it, for crafting records.
func rawToken(t *testing.T, name string) store.Token {
	t.Helper()
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		t.Fatal(err)
	}
	sec, err := secret.Generate()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 2, 1, 8, 0, 0, 0, time.UTC)
	return store.Token{
		ID: hex.EncodeToString(id[:]), Name: name, Description: "crafted",
		Access: []store.Access{store.AccessSecurityDirector}, Active: true,
		Digest: sec.Digest(), Hint: sec.Hint(), CreatedAt: now, UpdatedAt: now,
	}
}

func records(toks ...store.Token) map[string][]byte {
	out := map[string][]byte{}
	for _, t := range toks {
		for k, v := range store.TokenRecords(t) {
			out[k] = v
		}
	}
	return out
}

func usageRecord(t *testing.T, u store.Usage) (string, []byte) {
	t.Helper()
	b, err := json.Marshal(u)
	if err != nil {
		t.Fatal(err)
	}
	return string(store.UsageKey(u.TokenID, u.IP)), b
}

func eventRecord(t *testing.T, e store.Event) (string, []byte) {
	t.Helper()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	key := binary.BigEndian.AppendUint64([]byte("e/"), uint64(e.Time.UnixNano()))
	return string(binary.BigEndian.AppendUint64(key, 1)), b
}

// TestRestoreRefusesRuleBreakingBackup: a backup crafted outside apptokens that
// breaks any data rule is refused with a one-line error naming the bad record,
// and the store, empty or not, is left exactly as it was.
func TestRestoreRefusesRuleBreakingBackup(t *testing.T) {
	good := rawToken(t, "good")
	cases := []struct {
		name    string
		backup  func() []byte
		kind    error  // also matched, besides ErrInvalidBackup
		mention string // the error names the bad record or value
	}{
		{"escape in name", func() []byte {
			return craftedBackup(t, records(good, rawToken(t, "evil\x1b[2J")))
		}, store.ErrInvalidName, `evil\x1b[2J`},
		{"escape in description", func() []byte {
			bad := rawToken(t, "desc")
			bad.Description = "hi\x1b]0;owned\a"
			return craftedBackup(t, records(good, bad))
		}, store.ErrInvalidDescription, "description"},
		{"no access", func() []byte {
			bad := rawToken(t, "noaccess")
			bad.Access = nil
			return craftedBackup(t, records(good, bad))
		}, store.ErrInvalidAccess, "access"},
		{"names clash case-insensitively", func() []byte {
			return craftedBackup(t, records(rawToken(t, "Feed"), rawToken(t, "feed")))
		}, nil, "name"},
		{"one secret, two tokens", func() []byte {
			twin := rawToken(t, "twin")
			twin.Digest, twin.Hint = good.Digest, good.Hint
			return craftedBackup(t, records(good, twin))
		}, nil, "digest"},
		{"corrupt token record", func() []byte {
			r := records(good)
			r[store.PrefixToken+good.ID] = []byte("\x01junk")
			return craftedBackup(t, r)
		}, nil, good.ID},
		{"name index to nothing", func() []byte {
			r := records(good)
			r["n/ghost"] = []byte("00000000deadbeef")
			return craftedBackup(t, r)
		}, nil, "n/ghost"},
		{"usage with a bad IP", func() []byte {
			r := records(good)
			k, v := usageRecord(t, store.Usage{TokenID: good.ID, IP: "not-an-ip"})
			r[k] = v
			return craftedBackup(t, r)
		}, store.ErrInvalidIP, "not-an-ip"},
		{"escape in audit actor", func() []byte {
			r := records(good)
			k, v := eventRecord(t, store.Event{Time: good.CreatedAt, Actor: "mallory\x1b[31m", Action: store.ActionCreate, Token: "good"})
			r[k] = v
			return craftedBackup(t, r)
		}, nil, "audit"},
		{"unknown record", func() []byte {
			r := records(good)
			r["x/payload"] = []byte("?")
			return craftedBackup(t, r)
		}, nil, "x/payload"},
		{"not a backup", func() []byte { return []byte("hello, I am not a backup at all") }, nil, "not an apptokens backup"},
	}
	for _, tc := range cases {
		backup := tc.backup() // crafted with the parent's t
		t.Run(tc.name, func(t *testing.T) {
			full := openMem(t, nil)
			mustCreate(t, full, "already-here")
			empty := openMem(t, nil)
			for _, target := range []struct {
				s       *store.Store
				replace bool
			}{{full, true}, {empty, false}} {
				before := takeSnapshot(t, target.s)
				err := target.s.Restore(admin, bytes.NewReader(backup), target.replace)
				if !errors.Is(err, store.ErrInvalidBackup) {
					t.Fatalf("Restore = %v, want ErrInvalidBackup", err)
				}
				if tc.kind != nil && !errors.Is(err, tc.kind) {
					t.Errorf("Restore = %v, want it to match %v too", err, tc.kind)
				}
				msg := err.Error()
				if strings.ContainsAny(msg, "\n\r\x1b\a") || !strings.Contains(msg, tc.mention) {
					t.Errorf("message %q: want one clean line mentioning %q", msg, tc.mention)
				}
				assertUnchanged(t, before, takeSnapshot(t, target.s))
			}
		})
	}
}

// TestRestoreCraftedValidBackup: the same crafting yields a backup that is
// accepted when it keeps the rules (so the refusals above are the rules at
// work); usage left behind by a deleted token is not restored.
func TestRestoreCraftedValidBackup(t *testing.T) {
	good := rawToken(t, "Good-1")
	r := records(good)
	k, v := usageRecord(t, store.Usage{TokenID: good.ID, IP: "192.0.2.8", FirstUsedAt: good.CreatedAt, LastUsedAt: good.CreatedAt, Allowed: 4})
	r[k] = v
	orphanKey, orphan := usageRecord(t, store.Usage{TokenID: "00000000deadbeef", IP: "192.0.2.9", Allowed: 1})
	r[orphanKey] = orphan
	k, v = eventRecord(t, store.Event{Time: good.CreatedAt, Actor: "alice", Action: store.ActionCreate, Token: "Good-1", Details: "access=security-director"})
	r[k] = v
	r["m/inactive_after"] = []byte("864000000000000")
	s := openMem(t, nil)
	if err := s.Restore(admin, bytes.NewReader(craftedBackup(t, r)), false); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get("good-1")
	if err != nil || got.ID != good.ID || got.Name != "Good-1" {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	use, err := s.Usage("Good-1")
	if err != nil || len(use) != 1 || use[0].Allowed != 4 {
		t.Fatalf("Usage = %+v, %v", use, err)
	}
	if s.InactiveAfter() != 10*day {
		t.Errorf("policy %v, want 10 days", s.InactiveAfter())
	}
	raw, err := s.DumpKV()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := raw[hex.EncodeToString([]byte(orphanKey))]; ok {
		t.Error("usage of a token not in the backup was restored")
	}
	events, err := s.Audit(0)
	if err != nil || len(events) != 2 || events[0].Action != store.ActionRestore || events[1].Actor != "alice" {
		t.Fatalf("audit = %+v, %v", events, err)
	}
}

// TestRestoreAgainstCreate: Creates of a name the backup holds, racing a
// restore, either come first (and are replaced) or see the name taken: the
// store ends with the backup's one token of that name, never two.
func TestRestoreAgainstCreate(t *testing.T) {
	tok := rawToken(t, "Shared")
	backup := craftedBackup(t, records(tok))
	s := openMem(t, nil)
	for round := range 20 {
		done := make(chan struct{})
		var createErr error
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				_, err := s.Create(admin, store.NewToken{Name: "shared", Access: []store.Access{store.AccessThirdPartyFeeds}})
				if err != nil && !errors.Is(err, store.ErrNameTaken) {
					createErr = err
					return
				}
			}
		}()
		err := s.Restore(admin, bytes.NewReader(backup), true)
		close(done)
		wg.Wait()
		if err != nil || createErr != nil {
			t.Fatalf("round %d: Restore: %v; Create: %v", round, err, createErr)
		}
		list, err := s.List()
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || list[0].ID != tok.ID {
			t.Fatalf("round %d: tokens after restore: %+v", round, list)
		}
	}
}

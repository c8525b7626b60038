package store_test

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/apptokens/apptokens/store"
)

// TestWriteLegacyFixture writes store/testdata/legacy-v2.backup, a backup in
// the previous release's format (Badger's stream, key layout 2), and
// legacy-v2.expect.json, what that store answered through its public API when
// the backup was made. Run once with APPTOKENS_WRITE_LEGACY_FIXTURE=1 on the
// release whose format it records; the files are committed and this
// generator removed (it needs that release's store).
func TestWriteLegacyFixture(t *testing.T) {
	if os.Getenv("APPTOKENS_WRITE_LEGACY_FIXTURE") == "" {
		t.Skip("set APPTOKENS_WRITE_LEGACY_FIXTURE=1 to write the fixture")
	}
	c := newClock()
	s, err := store.Open(store.Options{Dir: t.TempDir(), Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	populate(t, s, c)
	d := "café <b>&amp;</b>\tüber \"quoted\" \\ backslash"
	odd := mustCreate(t, s, "Odd-Chars", store.AccessThirdPartyFeeds)
	if _, err := s.Edit(store.Actor{User: "dave", Fingerprint: "SHA256:xyz"}, "Odd-Chars", store.Edit{Description: &d}); err != nil {
		t.Fatal(err)
	}
	t1 := c.Now().Add(90 * time.Minute)
	if _, err := s.RecordUsage([]store.UsageDelta{
		{TokenID: odd.Token.ID, IP: "192.0.2.1", FirstUsedAt: t1, LastUsedAt: t1.Add(time.Second), Allowed: 3, Denied: 1},
		{TokenID: odd.Token.ID, IP: "192.0.2.1", FirstUsedAt: t1.Add(time.Hour), LastUsedAt: t1.Add(time.Hour + 123456789), Allowed: 2},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetBlocked(admin, "odd-chars", []string{"2001:db8::1"}, true); err != nil {
		t.Fatal(err)
	}
	var backup bytes.Buffer
	if err := s.Backup(&backup); err != nil {
		t.Fatal(err)
	}

	type series struct {
		Token string            `json:"token"`
		IP    string            `json:"ip"`
		Hours []store.HourCount `json:"hours"`
	}
	var expect struct {
		Tokens        []store.Token            `json:"tokens"`
		Usage         map[string][]store.Usage `json:"usage"`
		Series        []series                 `json:"series"`
		Audit         []store.Event            `json:"audit"`
		InactiveAfter time.Duration            `json:"inactive_after"`
	}
	sn := takeSnapshot(t, s)
	expect.Tokens, expect.Usage, expect.Audit, expect.InactiveAfter = sn.tokens, sn.usage, sn.audit, sn.policy
	for _, tok := range sn.tokens {
		ips := []string{""}
		for _, u := range sn.usage[tok.Name] {
			ips = append(ips, u.IP)
		}
		for _, ip := range ips {
			h, err := s.UsageSeries(tok.Name, ip, time.Unix(0, 0))
			if err != nil {
				t.Fatal(err)
			}
			expect.Series = append(expect.Series, series{tok.Name, ip, h})
		}
	}
	js, err := json.MarshalIndent(expect, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("testdata/legacy-v2.backup", backup.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("testdata/legacy-v2.expect.json", append(js, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

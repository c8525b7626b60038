package store

import (
	"reflect"
	"testing"
	"time"

	"github.com/apptokens/apptokens/internal/secret"
)

func TestTokenCodecRoundTrip(t *testing.T) {
	sec, err := secret.Generate()
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 27, 13, 0, 0, 123456789, time.UTC)
	cases := []Token{
		{ID: "0123456789abcdef", Name: "Feed-1", Description: "Zeile 1\nzweite\tZeile ✓", Access: []Access{AccessSecurityDirector, AccessThirdPartyFeeds},
			Active: true, Digest: sec.Digest(), Hint: sec.Hint(), CreatedAt: at, UpdatedAt: at.Add(time.Hour), ActivatedAt: at.Add(2 * time.Hour), LastUsedAt: at.Add(3 * time.Hour)},
		{ID: "x", Name: "n", Access: []Access{AccessThirdPartyFeeds}, CreatedAt: at},
	}
	for _, want := range cases {
		var got Token
		if err := decodeToken(encodeToken(&want), &got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
		}
	}
	enc := encodeToken(&cases[0])
	for i := 0; i < len(enc); i++ {
		var got Token
		_ = decodeToken(enc[:i], &got) // a truncated record must not panic
	}
	if err := decodeToken(append([]byte{9}, enc[1:]...), new(Token)); err == nil {
		t.Fatal("unknown codec version accepted")
	}
}

// TestTokenCodecV2: the lifecycle fields round-trip; a version 1 record (the
// previous release's) still decodes, with none of them.
func TestTokenCodecV2(t *testing.T) {
	cur, err := secret.Generate()
	if err != nil {
		t.Fatal(err)
	}
	prev, err := secret.Generate()
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 27, 13, 0, 0, 123456789, time.UTC)
	want := Token{ID: "0123456789abcdef", Name: "feed", Access: []Access{AccessThirdPartyFeeds}, Active: true,
		Digest: cur.Digest(), Hint: cur.Hint(), CreatedAt: at, UpdatedAt: at,
		ExpiresAt: at.Add(90 * 24 * time.Hour), RotatedAt: at.Add(time.Hour),
		OldDigest: prev.Digest(), OldHint: prev.Hint(), OldValidUntil: at.Add(25 * time.Hour)}
	var got Token
	if err := decodeToken(encodeToken(&want), &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
	v1 := encodeTokenVersion(&want, tokenCodecV1)
	if v1[0] != tokenCodecV1 {
		t.Fatal("not a v1 record")
	}
	got = Token{ExpiresAt: at, OldHint: "stale", Allowed: []string{"stale"}} // a reused Token is cleared
	if err := decodeToken(v1, &got); err != nil {
		t.Fatal(err)
	}
	base := want
	base.ExpiresAt, base.RotatedAt, base.OldDigest, base.OldHint, base.OldValidUntil = time.Time{}, time.Time{}, secret.Digest{}, "", time.Time{}
	if !reflect.DeepEqual(got, base) {
		t.Fatalf("v1 record:\n got %+v\nwant %+v", got, base)
	}
	enc := encodeToken(&want)
	for i := 0; i < len(enc); i++ {
		if decodeToken(enc[:i], new(Token)) == nil && i > len(v1) {
			t.Fatalf("a v2 record cut to %d of %d bytes decoded", i, len(enc))
		}
	}
}

func TestStopsAt(t *testing.T) {
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	month := 30 * 24 * time.Hour
	for _, tc := range []struct {
		name  string
		tok   Token
		after time.Duration
		want  time.Time
	}{
		{"never", Token{Active: true, CreatedAt: at}, 0, time.Time{}},
		{"inactivity", Token{Active: true, CreatedAt: at}, month, at.Add(month)},
		{"expiry first", Token{Active: true, CreatedAt: at, ExpiresAt: at.Add(time.Hour)}, month, at.Add(time.Hour)},
		{"inactivity first", Token{Active: true, CreatedAt: at, ExpiresAt: at.Add(2 * month)}, month, at.Add(month)},
		{"deactivated, no expiry", Token{CreatedAt: at}, month, time.Time{}},
		{"deactivated, expiry", Token{CreatedAt: at, ExpiresAt: at.Add(2 * month)}, month, at.Add(2 * month)},
		{"used later", Token{Active: true, CreatedAt: at, LastUsedAt: at.Add(time.Hour)}, month, at.Add(month + time.Hour)},
	} {
		if got := tc.tok.StopsAt(tc.after); !got.Equal(tc.want) {
			t.Errorf("%s: StopsAt = %v, want %v", tc.name, got, tc.want)
		}
	}
}

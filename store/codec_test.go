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

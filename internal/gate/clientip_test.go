package gate

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

func TestClientIP(t *testing.T) {
	trusted := proxies{mustPrefix("10.0.0.0/8"), mustPrefix("fd00::/8")}
	for _, tc := range []struct {
		name   string
		remote string
		hdr    http.Header
		want   string
	}{
		{"socket", "192.0.2.1:5555", nil, "192.0.2.1"},
		{"socket IPv6", "[2001:db8::1]:5555", nil, "2001:db8::1"},
		{"socket IPv4-mapped", "[::ffff:192.0.2.1]:5555", nil, "192.0.2.1"},
		{"untrusted peer's headers ignored", "192.0.2.1:1", http.Header{"X-Forwarded-For": {"203.0.113.9"}, "X-Real-Ip": {"203.0.113.8"}}, "192.0.2.1"},
		{"rightmost untrusted", "10.0.0.1:1", http.Header{"X-Forwarded-For": {"1.1.1.1, 203.0.113.9"}}, "203.0.113.9"},
		{"never the leftmost", "10.0.0.1:1", http.Header{"X-Forwarded-For": {"198.51.100.7, 203.0.113.9, 10.9.9.9"}}, "203.0.113.9"},
		{"several header lines are one list", "10.0.0.1:1", http.Header{"X-Forwarded-For": {"198.51.100.7", "203.0.113.9, 10.0.0.2", "10.0.0.3"}}, "203.0.113.9"},
		{"spaces and empty items", "10.0.0.1:1", http.Header{"X-Forwarded-For": {" 203.0.113.9 ,, "}}, "203.0.113.9"},
		{"IPv6 entry", "[fd00::1]:1", http.Header{"X-Forwarded-For": {"2001:db8::7"}}, "2001:db8::7"},
		{"entry with port", "10.0.0.1:1", http.Header{"X-Forwarded-For": {"[2001:db8::7]:443, 203.0.113.9:8080"}}, "203.0.113.9"},
		// A client's X-Real-IP passed on beside X-Forwarded-For is never believed.
		{"junk stops the walk at the hop right of it", "10.0.0.1:1", http.Header{"X-Forwarded-For": {"203.0.113.9, junk, 10.0.0.7"}, "X-Real-Ip": {"198.51.100.2"}}, "10.0.0.7"},
		{"junk rightmost: the proxy", "10.0.0.1:1", http.Header{"X-Forwarded-For": {"203.0.113.9, junk"}, "X-Real-Ip": {"198.51.100.2"}}, "10.0.0.1"},
		{"junk on a later line", "10.0.0.1:1", http.Header{"X-Forwarded-For": {"203.0.113.9", "[nope, 10.0.0.8", "10.0.0.7"}, "X-Real-Ip": {"198.51.100.2"}}, "10.0.0.8"},
		{"all trusted: the leftmost", "10.0.0.1:1", http.Header{"X-Forwarded-For": {"10.1.1.1, 10.2.2.2"}, "X-Real-Ip": {"198.51.100.2"}}, "10.1.1.1"},
		{"empty X-Forwarded-For: the proxy", "10.0.0.1:1", http.Header{"X-Forwarded-For": {""}, "X-Real-Ip": {"198.51.100.2"}}, "10.0.0.1"},
		{"X-Real-IP without X-Forwarded-For", "10.0.0.1:1", http.Header{"X-Real-Ip": {" 198.51.100.2 "}}, "198.51.100.2"},
		{"no header: the proxy", "10.0.0.1:1", nil, "10.0.0.1"},
		{"bad X-Real-IP: the proxy", "10.0.0.1:1", http.Header{"X-Real-Ip": {"nope"}}, "10.0.0.1"},
		{"not TCP", "@", nil, "invalid IP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &http.Request{RemoteAddr: tc.remote, Header: tc.hdr}
			if r.Header == nil {
				r.Header = http.Header{}
			}
			if got := trusted.clientIP(r); got.String() != tc.want {
				t.Errorf("clientIP = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestBearer(t *testing.T) {
	for _, tc := range []struct {
		in, tok string
		ok      bool
	}{
		{"", "", false},
		{"Basic abc", "", false},
		{"Bearer", "", true},
		{"Bearer abc", "abc", true},
		{"BEARER   abc  ", "abc", true},
		{"bearer\tabc", "abc", true},
		{"Bearerabc", "", false},
		{"Bear abc", "", false},
	} {
		tok, ok := bearer(tc.in)
		if tok != tc.tok || ok != tc.ok {
			t.Errorf("bearer(%q) = %q, %v; want %q, %v", tc.in, tok, ok, tc.tok, tc.ok)
		}
	}
}

func TestRoute(t *testing.T) {
	for _, tc := range []struct {
		path    string
		need    accessSet
		segment string
	}{
		{"/auth", 0, ""},
		{"/auth/", 0, ""},
		{"/auth/security-director", accessSecurityDirector, "security-director"},
		{"/auth/security-director/a/b", accessSecurityDirector, "security-director"},
		{"/auth/third-party-feeds", accessThirdPartyFeeds, "third-party-feeds"},
		{"/auth/third-party-feeds/", accessThirdPartyFeeds, "third-party-feeds"},
		{"/auth/third-party-feeds/x/../..", accessThirdPartyFeeds, "third-party-feeds"},
		// Under /auth/ but no access type: refused whatever the token.
		{"/auth/admin", accessNone, "admin"},
		{"/auth/third-party-feedsx", accessNone, "third-party-feedsx"},
		{"/auth/x/security-director", accessNone, "x"},
		{"/auth//security-director", accessNone, ""},
		{"/auth/Security-Director", accessNone, "Security-Director"},
	} {
		need, segment, ok := route(tc.path)
		if !ok || need != tc.need || segment != tc.segment {
			t.Errorf("route(%q) = %v, %q, %v; want %v, %q", tc.path, need, segment, ok, tc.need, tc.segment)
		}
	}
	for _, path := range []string{"/", "/authz", "/authz/security-director", "/healthz/auth", "/x/auth"} {
		if _, _, ok := route(path); ok {
			t.Errorf("route(%q) is a gate path", path)
		}
	}
}

func TestScopeToken(t *testing.T) {
	long := strings.Repeat("a", 64)
	for s, want := range map[string]bool{
		"admin": true, "feeds-2": true, long: true,
		"": false, long + "a": false, "Admin": false, `a"b`: false, "a b": false, "a,b": false, "é": false,
	} {
		if got := scopeToken(s); got != want {
			t.Errorf("scopeToken(%q) = %v, want %v", s, got, want)
		}
	}
}

// The blocked-IP form agrees for IPv4 and IPv4-mapped IPv6.
func TestBlockKeyUnmaps(t *testing.T) {
	a := blockKeyOf(3, netip.MustParseAddr("192.0.2.1"))
	b := blockKeyOf(3, netip.MustParseAddr("::ffff:192.0.2.1"))
	if a != b {
		t.Error("mapped and plain IPv4 differ")
	}
}

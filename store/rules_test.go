package store_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/storetest"
)

// seedStore gives the rule tests a store with something in it, so that "left
// exactly as it was" is checked against tokens, usage, blocks and audit.
func seedStore(t *testing.T, eng storetest.Engine) *store.Store {
	t.Helper()
	s := openOn(t, eng, nil)
	a := mustCreate(t, s, "Feed-1", store.AccessThirdPartyFeeds)
	mustCreate(t, s, "soc-export", store.AccessSecurityDirector, store.AccessThirdPartyFeeds)
	now := s.Now()
	if _, err := s.RecordUsage([]store.UsageDelta{{TokenID: a.Token.ID, IP: "192.0.2.7", FirstUsedAt: now, LastUsedAt: now, Allowed: 3, Denied: 1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetBlocked(admin, "Feed-1", []string{"198.51.100.9"}, true); err != nil {
		t.Fatal(err)
	}
	return s
}

// fieldError checks that err is a *store.FieldError for field matching kind.
func fieldError(t *testing.T, err error, field string, kind error) *store.FieldError {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("error = %v, want %v", err, kind)
	}
	var fe *store.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T) is not a *store.FieldError", err, err)
	}
	if fe.Field != field {
		t.Errorf("FieldError.Field = %q, want %q", fe.Field, field)
	}
	for _, r := range fe.Error() {
		if unicode.IsControl(r) {
			t.Errorf("message %q holds control character %U", fe.Error(), r)
		}
	}
	return fe
}

func TestCreateNameRules(t *testing.T) {
	storetest.Each(t, func(t *testing.T, eng storetest.Engine) {
		s := seedStore(t, eng)
		access := []store.Access{store.AccessSecurityDirector}
		tests := []struct {
			name    string
			in      string
			kind    error  // nil: accepted
			message string // exact user-facing message when refused
		}{
			{"32 characters", strings.Repeat("a", 31) + "Z", nil, ""},
			{"digits and dashes", "0-9-x", nil, ""},
			{"single character", "x", nil, ""},
			{"leading dash", "-lead", nil, ""},
			{"33 characters", strings.Repeat("b", 33), store.ErrInvalidName, "name is 33 characters long; at most 32 allowed"},
			{"space", "my token", store.ErrInvalidName, `name "my token" may contain only letters, digits and dashes`},
			{"underscore", "my_token", store.ErrInvalidName, `name "my_token" may contain only letters, digits and dashes`},
			{"dot", "my.token", store.ErrInvalidName, `name "my.token" may contain only letters, digits and dashes`},
			{"non-ASCII letter", "café", store.ErrInvalidName, `name "café" may contain only letters, digits and dashes`},
			{"Cyrillic look-alike", "аpi", store.ErrInvalidName, `name "аpi" may contain only letters, digits and dashes`},
			{"empty", "", store.ErrInvalidName, "name is required"},
			{"escape sequence", "a\x1b[31m", store.ErrInvalidName, `name "a\x1b[31m" may contain only letters, digits and dashes`},
			{"newline", "a\nb", store.ErrInvalidName, `name "a\nb" may contain only letters, digits and dashes`},
			{"invalid UTF-8", "a\xffb", store.ErrInvalidName, `name "a\xffb" may contain only letters, digits and dashes`},
			{"long and bad", strings.Repeat("c", 40) + " ", store.ErrInvalidName, `name "` + strings.Repeat("c", 40) + ` " may contain only letters, digits and dashes`},
			{"case-insensitive clash", "feed-1", store.ErrNameTaken, `name "feed-1" is already taken`},
			{"upper-case clash", "FEED-1", store.ErrNameTaken, `name "FEED-1" is already taken`},
			{"exact clash", "soc-export", store.ErrNameTaken, `name "soc-export" is already taken`},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				before := takeSnapshot(t, s)
				c, err := s.Create(admin, store.NewToken{Name: tt.in, Description: "d", Access: access})
				if tt.kind == nil {
					if err != nil {
						t.Fatalf("Create(%q) refused: %v", tt.in, err)
					}
					got, err := s.Get(strings.ToUpper(tt.in))
					if err != nil {
						t.Fatalf("Get after create: %v", err)
					}
					if got.Name != tt.in || got.ID != c.Token.ID {
						t.Fatalf("Get = %+v, want name %q id %s", got, tt.in, c.Token.ID)
					}
					return
				}
				fe := fieldError(t, err, "name", tt.kind)
				if fe.Error() != tt.message {
					t.Errorf("message = %q\nwant      %q", fe.Error(), tt.message)
				}
				if c.Secret != "" || c.Token.ID != "" {
					t.Error("a refused Create returned a token")
				}
				assertUnchanged(t, before, takeSnapshot(t, s))
			})
		}
	})
}

// TestValidateNameMatchesCreate keeps the pure validator (used live by the TUI
// form) and the store in agreement.
func TestValidateNameMatchesCreate(t *testing.T) {
	storetest.Each(t, func(t *testing.T, eng storetest.Engine) {
		s := openOn(t, eng, nil)
		for i, name := range []string{"ok", "not ok", strings.Repeat("z", 32), strings.Repeat("z", 33), "", "a.b", "ß"} {
			_, cerr := s.Create(admin, store.NewToken{Name: name, Access: []store.Access{store.AccessThirdPartyFeeds}})
			verr := store.ValidateName(name)
			if (cerr == nil) != (verr == nil) {
				t.Errorf("%d: Create(%q) = %v but ValidateName = %v", i, name, cerr, verr)
			}
			if verr != nil && cerr.Error() != verr.Error() {
				t.Errorf("%d: messages differ: %q vs %q", i, cerr, verr)
			}
		}
	})
}

func TestDescriptionRules(t *testing.T) {
	storetest.Each(t, func(t *testing.T, eng storetest.Engine) {
		s := seedStore(t, eng)
		tests := []struct {
			name    string
			in      string
			ok      bool
			message string
		}{
			{"empty", "", true, ""},
			{"1024 multi-byte runes", strings.Repeat("é", 1000) + strings.Repeat("日", 23) + "🙂", true, ""},
			{"1024 ASCII", strings.Repeat("x", 1024), true, ""},
			{"newline and tab", "line one\n\tline two\n", true, ""},
			{"1025 multi-byte runes", strings.Repeat("é", 1025), false, "description is 1025 characters long; at most 1024 allowed"},
			{"1025 ASCII", strings.Repeat("x", 1025), false, "description is 1025 characters long; at most 1024 allowed"},
			{"ESC", "red \x1b[31m alert", false, "description may not contain control character U+001B"},
			{"NUL", "a\x00b", false, "description may not contain control character U+0000"},
			{"BEL", "ding\a", false, "description may not contain control character U+0007"},
			{"carriage return", "over\rwrite", false, "description may not contain control character U+000D"},
			{"DEL", "a\x7f", false, "description may not contain control character U+007F"},
			{"C1 CSI U+009B", "a\u009b31m", false, "description may not contain control character U+009B"},
			{"C1 NEL U+0085", "a\u0085b", false, "description may not contain control character U+0085"},
			{"raw C1 byte (invalid UTF-8)", "a\x9b31m", false, "description is not valid UTF-8"},
			{"bidi override", "abc\u202edef", false, "description may not contain control character U+202E"},
			{"control after 1024 runes", strings.Repeat("y", 1030) + "\x1b", false, "description may not contain control character U+001B"},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				// Through Create, with a fresh name each time.
				name := fmt.Sprintf("desc-%02d", i)
				before := takeSnapshot(t, s)
				c, err := s.Create(admin, store.NewToken{Name: name, Description: tt.in, Access: []store.Access{store.AccessSecurityDirector}})
				if tt.ok {
					if err != nil {
						t.Fatalf("Create refused: %v", err)
					}
					got, err := s.Get(name)
					if err != nil {
						t.Fatal(err)
					}
					if got.Description != tt.in || c.Token.Description != tt.in {
						t.Fatal("description not stored as given")
					}
				} else {
					fe := fieldError(t, err, "description", store.ErrInvalidDescription)
					if fe.Error() != tt.message {
						t.Errorf("message = %q\nwant      %q", fe.Error(), tt.message)
					}
					assertUnchanged(t, before, takeSnapshot(t, s))
				}

				// Through Edit of an existing token.
				before = takeSnapshot(t, s)
				desc := tt.in
				got, err := s.Edit(admin, "soc-export", store.Edit{Description: &desc})
				if tt.ok {
					if err != nil {
						t.Fatalf("Edit refused: %v", err)
					}
					if got.Description != tt.in {
						t.Fatal("Edit did not return the new description")
					}
					stored, err := s.Get("soc-export")
					if err != nil || stored.Description != tt.in {
						t.Fatalf("description not stored by Edit (%v)", err)
					}
					return
				}
				fe := fieldError(t, err, "description", store.ErrInvalidDescription)
				if fe.Error() != tt.message {
					t.Errorf("Edit message = %q, want %q", fe.Error(), tt.message)
				}
				assertUnchanged(t, before, takeSnapshot(t, s))
			})
		}
	})
}

func TestAccessRules(t *testing.T) {
	storetest.Each(t, func(t *testing.T, eng storetest.Engine) {
		s := seedStore(t, eng)
		tests := []struct {
			name    string
			in      []store.Access
			want    []store.Access // stored, in display order; nil when refused
			message string
		}{
			{"security director", []store.Access{store.AccessSecurityDirector}, []store.Access{store.AccessSecurityDirector}, ""},
			{"both, reordered", []store.Access{store.AccessThirdPartyFeeds, store.AccessSecurityDirector}, []store.Access{store.AccessSecurityDirector, store.AccessThirdPartyFeeds}, ""},
			{"empty", []store.Access{}, nil, "choose at least one access type (security-director, third-party-feeds)"},
			{"unknown", []store.Access{"admin"}, nil, `unknown access type "admin" (use security-director or third-party-feeds)`},
			{"unknown beside a known one", []store.Access{store.AccessSecurityDirector, "Security Director"}, nil, `unknown access type "Security Director" (use security-director or third-party-feeds)`},
			{"wrong case", []store.Access{"Third-Party-Feeds"}, nil, `unknown access type "Third-Party-Feeds" (use security-director or third-party-feeds)`},
			{"duplicate", []store.Access{store.AccessThirdPartyFeeds, store.AccessThirdPartyFeeds}, nil, "access type third-party-feeds given twice"},
			{"escape in unknown", []store.Access{"\x1b]0;pwned\a"}, nil, `unknown access type "\x1b]0;pwned\a" (use security-director or third-party-feeds)`},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				name := "access-" + string(rune('a'+i))
				before := takeSnapshot(t, s)
				c, err := s.Create(admin, store.NewToken{Name: name, Access: tt.in})
				if tt.want != nil {
					if err != nil {
						t.Fatalf("Create refused: %v", err)
					}
					if !equalAccess(c.Token.Access, tt.want) {
						t.Errorf("stored access %v, want %v", c.Token.Access, tt.want)
					}
				} else {
					fe := fieldError(t, err, "access", store.ErrInvalidAccess)
					if fe.Error() != tt.message {
						t.Errorf("message = %q\nwant      %q", fe.Error(), tt.message)
					}
					assertUnchanged(t, before, takeSnapshot(t, s))
				}

				before = takeSnapshot(t, s)
				got, err := s.Edit(admin, "Feed-1", store.Edit{Access: tt.in})
				if tt.want != nil {
					if err != nil {
						t.Fatalf("Edit refused: %v", err)
					}
					stored, err := s.Get("Feed-1")
					if err != nil {
						t.Fatal(err)
					}
					if !equalAccess(got.Access, tt.want) || !equalAccess(stored.Access, tt.want) {
						t.Errorf("Edit stored %v, want %v", stored.Access, tt.want)
					}
					return
				}
				fe := fieldError(t, err, "access", store.ErrInvalidAccess)
				if fe.Error() != tt.message {
					t.Errorf("Edit message = %q, want %q", fe.Error(), tt.message)
				}
				assertUnchanged(t, before, takeSnapshot(t, s))
			})
		}
	})
}

func TestEditUnknownTokenChangesNothing(t *testing.T) {
	storetest.Each(t, func(t *testing.T, eng storetest.Engine) {
		s := seedStore(t, eng)
		before := takeSnapshot(t, s)
		d := "new"
		_, err := s.Edit(admin, "no-such-token", store.Edit{Description: &d})
		if !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("error = %v, want ErrNotFound", err)
		}
		if want := `no token named "no-such-token": not found`; err.Error() != want {
			t.Errorf("message = %q, want %q", err, want)
		}
		assertUnchanged(t, before, takeSnapshot(t, s))
	})
}

// TestEditNothingChangedWritesNothing: an edit that sets the same values is not
// a change, so it neither writes nor audits.
func TestEditNothingChangedWritesNothing(t *testing.T) {
	storetest.Each(t, func(t *testing.T, eng storetest.Engine) {
		s := seedStore(t, eng)
		tok, err := s.Get("soc-export")
		if err != nil {
			t.Fatal(err)
		}
		before := takeSnapshot(t, s)
		d := tok.Description
		if _, err := s.Edit(admin, "SOC-EXPORT", store.Edit{Description: &d, Access: tok.Access}); err != nil {
			t.Fatal(err)
		}
		assertUnchanged(t, before, takeSnapshot(t, s))
	})
}

// TestSetActiveAndDeleteAllOrNothing: a batch naming one unknown token changes
// none of the others.
func TestSetActiveAndDeleteAllOrNothing(t *testing.T) {
	storetest.Each(t, func(t *testing.T, eng storetest.Engine) {
		s := seedStore(t, eng)
		before := takeSnapshot(t, s)
		if _, err := s.SetActive(admin, []string{"Feed-1", "ghost"}, false); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("SetActive error = %v, want ErrNotFound", err)
		}
		assertUnchanged(t, before, takeSnapshot(t, s))
		if _, err := s.Delete(admin, []string{"soc-export", "ghost"}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Delete error = %v, want ErrNotFound", err)
		}
		assertUnchanged(t, before, takeSnapshot(t, s))
		if _, err := s.SetBlocked(admin, "Feed-1", []string{"10.0.0.1", "not-an-ip"}, true); !errors.Is(err, store.ErrInvalidIP) {
			t.Fatalf("SetBlocked error = %v, want ErrInvalidIP", err)
		}
		assertUnchanged(t, before, takeSnapshot(t, s))
	})
}

func TestCreateAudits(t *testing.T) {
	storetest.Each(t, func(t *testing.T, eng storetest.Engine) {
		s := openOn(t, eng, nil)
		c := mustCreate(t, s, "audited", store.AccessThirdPartyFeeds, store.AccessSecurityDirector)
		ev, err := s.Audit(0)
		if err != nil {
			t.Fatal(err)
		}
		if len(ev) != 1 {
			t.Fatalf("%d audit events, want 1", len(ev))
		}
		e := ev[0]
		if e.Action != store.ActionCreate || e.Token != "audited" || e.Actor != "alice" ||
			e.Details != "access=security-director,third-party-feeds" || !e.Time.Equal(c.Token.CreatedAt) {
			t.Errorf("audit event = %+v", e)
		}
		if strings.Contains(e.Details+e.Token+e.Actor, c.Secret.Reveal()[5:]) {
			t.Error("audit event holds the secret")
		}
	})
}

func equalAccess(a, b []store.Access) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

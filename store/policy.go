package store

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DefaultInactiveAfter is the portal's policy: unused for 30 days, a token becomes Inactive.
const DefaultInactiveAfter = 30 * 24 * time.Hour

// Since is when the inactivity clock started: the latest of creation, last use
// and last activation.
func (t Token) Since() time.Time {
	s := t.CreatedAt
	if t.LastUsedAt.After(s) {
		s = t.LastUsedAt
	}
	if t.ActivatedAt.After(s) {
		s = t.ActivatedAt
	}
	return s
}

// Expired reports whether an active token has gone unused for longer than
// inactiveAfter (0 turns the policy off).
func (t Token) Expired(now time.Time, inactiveAfter time.Duration) bool {
	return t.Active && inactiveAfter > 0 && !now.Before(t.Since().Add(inactiveAfter))
}

// ExpiredAt reports whether the token is past its ExpiresAt at now (from that
// instant on: a token expiring at 12:00 is expired at 12:00).
func (t Token) ExpiredAt(now time.Time) bool {
	return !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt)
}

// StateAt is the token's effective state at now under the inactivity policy:
// StateExpired once ExpiresAt has come (whether active or not), else
// StateInactive when deactivated or unused past inactiveAfter, else StateActive.
func (t Token) StateAt(now time.Time, inactiveAfter time.Duration) State {
	if t.ExpiredAt(now) {
		return StateExpired
	}
	if !t.Active || t.Expired(now, inactiveAfter) {
		return StateInactive
	}
	return StateActive
}

// DaysToInactive is the number of days left, rounded up, before the policy makes
// the token Inactive (a token created now shows 30). ok is false when the policy is
// off or the token is already inactive.
func (t Token) DaysToInactive(now time.Time, inactiveAfter time.Duration) (days int, ok bool) {
	if inactiveAfter <= 0 || t.StateAt(now, inactiveAfter) != StateActive {
		return 0, false
	}
	left := t.Since().Add(inactiveAfter).Sub(now)
	day := 24 * time.Hour
	return int((left + day - 1) / day), true
}

// InactiveAt is when the inactivity policy makes the token Inactive if it is
// not used before (zero when the policy is off or the token is deactivated).
func (t Token) InactiveAt(inactiveAfter time.Duration) time.Time {
	if !t.Active || inactiveAfter <= 0 {
		return time.Time{}
	}
	return t.Since().Add(inactiveAfter)
}

// StopsAt is when the token stops working if nothing changes: the earlier of
// its expiry and becoming inactive (InactiveAt); zero when neither will
// happen, or when it is deactivated and has no expiry. A time already past
// means it has stopped. For "stops working within 7 days" marks and
// `list --expiring`: t.StopsAt(after) is non-zero and before now+7d.
func (t Token) StopsAt(inactiveAfter time.Duration) time.Time {
	in := t.InactiveAt(inactiveAfter)
	switch {
	case t.ExpiresAt.IsZero():
		return in
	case in.IsZero() || t.ExpiresAt.Before(in):
		return t.ExpiresAt
	}
	return in
}

// DefaultDeleteAfter is the portal's fuller rule: unused for 90 days, a token
// is deleted for good.
const DefaultDeleteAfter = 90 * 24 * time.Hour

// DeleteAt is when the auto-delete policy deletes the token if it is not used
// before: Since()+deleteAfter (zero when the policy is off).
func (t Token) DeleteAt(deleteAfter time.Duration) time.Time {
	if deleteAfter <= 0 {
		return time.Time{}
	}
	return t.Since().Add(deleteAfter)
}

// ErrInvalidExpires is matched by a refused expiry (ParseExpires, Create, Edit).
var ErrInvalidExpires = errors.New("invalid expiry")

// ParseExpires reads an expiry as users type it, relative to now: "" or
// "never" is the zero time (never); a duration such as "90d", "12h", "30m" or
// "1d12h" (days are 24 h) is now plus it; an RFC 3339 time
// ("2027-01-31T12:00:00Z") is that time; a bare date ("2027-01-31") is that
// day's midnight UTC. The result must be after now. Errors are one line,
// match ErrInvalidExpires, and are a *FieldError of field "expires".
func ParseExpires(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" || strings.EqualFold(s, "never") {
		return time.Time{}, nil
	}
	var at time.Time
	if d, err := ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, fieldErr("expires", ErrInvalidExpires, "expires must be in the future")
		}
		at = now.Add(d)
	} else if t, err := time.Parse(time.RFC3339, s); err == nil {
		at = t
	} else if t, err := time.Parse(time.DateOnly, s); err == nil {
		at = t
	} else {
		return time.Time{}, fieldErr("expires", ErrInvalidExpires,
			"expires %s: want never, a duration such as 90d or 12h, or a date such as 2027-01-31 or 2027-01-31T12:00:00Z", quote(s))
	}
	if err := checkExpires(at, now); err != nil {
		return time.Time{}, err
	}
	return at.UTC(), nil
}

// checkExpires refuses a non-zero expiry that is not after now.
func checkExpires(at, now time.Time) error {
	if !at.IsZero() && !at.After(now) {
		return fieldErr("expires", ErrInvalidExpires, "expires must be in the future")
	}
	return nil
}

// ParseDuration is time.ParseDuration with days: "90d", "1d12h", "0". A
// negative duration is refused.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	orig := s
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.ParseUint(s[:i], 10, 16)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %s", quote(orig))
		}
		days = time.Duration(n) * 24 * time.Hour
		s = s[i+1:]
		if s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("invalid duration %s", quote(orig))
	}
	return days + d, nil
}

// formatDuration is d as audit details give it: "24h", "90d", "1h30m", "0".
func formatDuration(d time.Duration) string {
	day := 24 * time.Hour
	if d != 0 && d%day == 0 {
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	out := d.String()
	out = strings.TrimSuffix(out, "0s")
	if strings.HasSuffix(out, "h0m") {
		out = strings.TrimSuffix(out, "0m")
	}
	if out == "" {
		return "0"
	}
	return out
}

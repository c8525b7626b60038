package store

import "time"

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

// StateAt is the token's effective state at now under the inactivity policy.
func (t Token) StateAt(now time.Time, inactiveAfter time.Duration) State {
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
